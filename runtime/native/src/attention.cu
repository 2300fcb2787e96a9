// Causal GQA attention over the paged KV cache (bf16 [blocks, kv heads, block size, head dim]), no
// positional embedding. Per step:
//   1. kv_write: the new rows' K and V go to their positions through each sequence's block table;
//   2. sequences with several rows (prefill chunks) run a flash-attention kernel over 64-row query
//      tiles (online softmax; bf16 tensor cores for head dim 128, a CUDA-core kernel otherwise);
//   3. sequences with one row (decode) run split-K: each block takes one KV head's GQA group over a
//      slice of the context, then a combine kernel merges the slices' (max, sum, partial output).
// The decode grid depends only on the batch size, so a decode step can be replayed as a CUDA graph
// while contexts grow: slice sizes are computed on the device from each sequence's context length.
#include "common.cuh"
#include "mma.cuh"
#include "tma.cuh"
#include "wgmma.cuh"

namespace jb {
namespace {

struct Paged {
  const __nv_bfloat16* k;
  const __nv_bfloat16* v;
  int block_size, kv_heads, head_dim;
  const int* meta;
  const int* tables;
  bool head_major;
  /**
   * Where (sequence, position, KV head)'s row of head_dim values starts. A block holds its positions
   * head-major, [KV heads][block size][head dim]: a head's rows of a block are one contiguous run (4 KiB
   * at block size 16, head dim 128), which a bulk copy can take whole; the cp.async kernels run as fast
   * on either (measured). head_major false: the token-major [block size][KV heads][head dim]
   * (JAMBA_KV_LAYOUT=token-major, for comparison).
   */
  __device__ __forceinline__ size_t offset(int seq, int pos, int kvh) const { return offset_in(table_of(seq), pos, kvh); }
  /** Sequence `seq`'s block table. */
  __device__ __forceinline__ const int* table_of(int seq) const { return tables + meta[seq * JB_META_INTS + JB_META_BLOCKS]; }
  /** offset() with the sequence's block table already looked up. */
  __device__ __forceinline__ size_t offset_in(const int* table, int pos, int kvh) const {
    const int block = table[pos / block_size];
    const int in_block = head_major ? kvh * block_size + pos % block_size : (pos % block_size) * kv_heads + kvh;
    return ((size_t)block * block_size * kv_heads + in_block) * head_dim;
  }
};

__global__ void kv_write_kernel(const void* k, int kdt, int kld, const void* v, int vdt, int vld, __nv_bfloat16* ck, __nv_bfloat16* cv, Paged pg,
                                const int* row_seq) {
  pdl_enter();
  const int r = blockIdx.x;
  const int seq = row_seq[r];
  const int* m = pg.meta + seq * JB_META_INTS;
  const int pos = m[JB_META_CACHED] + (r - m[JB_META_ROW_START]);
  const int width = pg.kv_heads * pg.head_dim;
  for (int c = threadIdx.x; c < width; c += blockDim.x) {
    const size_t dst = pg.offset(seq, pos, c / pg.head_dim) + c % pg.head_dim;
    ck[dst] = __float2bfloat16_rn(load_as_float(k, kdt, (size_t)r * kld + c));
    cv[dst] = __float2bfloat16_rn(load_as_float(v, vdt, (size_t)r * vld + c));
  }
}

/**
 * Any head dim (a multiple of 8, up to 256): one warp per (query row, head), keys one at a time with an
 * online softmax. Correct everywhere; the tensor-core kernels below are the fast paths.
 */
__global__ void attention_rows_kernel(const void* q, int qdt, int qld, Paged pg, int heads, float scale, const int* row_seq, const int* rows,
                                      int num_rows, __nv_bfloat16* out, int out_ld) {
  pdl_enter();
  // rows: the step rows to compute (nullptr: rows 0..num_rows-1).
  const int warp_global = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  if (warp_global >= num_rows * heads) return;
  const int r = rows ? rows[warp_global / heads] : warp_global / heads;
  const int h = warp_global % heads;
  const int kvh = h / (heads / pg.kv_heads);
  const int seq = row_seq[r];
  const int* m = pg.meta + seq * JB_META_INTS;
  const int pos = m[JB_META_CACHED] + (r - m[JB_META_ROW_START]);
  constexpr int kMax = 8;  // head dims up to 256
  float qv[kMax], acc[kMax];
#pragma unroll
  for (int j = 0; j < kMax; j++) {
    const int d = lane + 32 * j;
    qv[j] = d < pg.head_dim ? load_as_float(q, qdt, (size_t)r * qld + h * pg.head_dim + d) * scale : 0.f;
    acc[j] = 0.f;
  }
  float mx = -INFINITY, l = 0.f;
  for (int key = 0; key <= pos; key++) {
    const size_t off = pg.offset(seq, key, kvh);
    float s = 0.f;
#pragma unroll
    for (int j = 0; j < kMax; j++) {
      const int d = lane + 32 * j;
      if (d < pg.head_dim) s += qv[j] * __bfloat162float(pg.k[off + d]);
    }
    s = warp_sum(s);
    const float nm = fmaxf(mx, s);
    const float corr = __expf(mx - nm), p = __expf(s - nm);
    l = l * corr + p;
#pragma unroll
    for (int j = 0; j < kMax; j++) {
      const int d = lane + 32 * j;
      acc[j] = acc[j] * corr + (d < pg.head_dim ? p * __bfloat162float(pg.v[off + d]) : 0.f);
    }
    mx = nm;
  }
#pragma unroll
  for (int j = 0; j < kMax; j++) {
    const int d = lane + 32 * j;
    if (d < pg.head_dim) out[(size_t)r * out_ld + h * pg.head_dim + d] = __float2bfloat16_rn(acc[j] / l);
  }
}

// --- online softmax over mma accumulators (the tensor-core kernels) -------------------------------------

/**
 * Sets to -inf the scores of keys a row must not see, in the layout online_softmax takes: s[j][e] is key
 * key0 + 8j + 2t + (e & 1) of row g (e < 2) or g + 8, whose last visible key is `last` (row g) or
 * last + row_step (row g + 8): 8 for causal rows, 0 for decode rows that share a context.
 */
template <int J>
__device__ __forceinline__ void mask_keys_after(float (&s)[J][4], int key0, int t4, int last, int row_step) {
#pragma unroll
  for (int j = 0; j < J; j++)
#pragma unroll
    for (int e = 0; e < 4; e++)
      if (key0 + 8 * j + 2 * t4 + (e & 1) > last + (e >> 1) * row_step) s[j][e] = -INFINITY;
}

/**
 * One tile's step of the online softmax for a thread's two rows (g and g+8) of m16n8 accumulator
 * fragments (mma.cuh's C layout; wgmma's D is the same, repeated): s[j] holds columns 8j + 2t, 8j + 2t + 1
 * of both rows, raw scores with masked entries at -inf. Base 2 with c2 = scale · log2 e (scale > 0, so the
 * maximum of the raw scores is the maximum of the scaled ones). Updates the rows' maxima (raw) and sums,
 * returns in corr the factor by which the rows' earlier output must shrink, and leaves P in bf16 as the A
 * fragments of P·V: pf[kk] covers columns 16kk … 16kk+15.
 */
template <int J>
__device__ __forceinline__ void online_softmax(float (&s)[J][4], float c2, float (&mrow)[2], float (&lrow)[2], float (&corr)[2], uint32_t (&pf)[J / 2][4]) {
  float mx[2] = {-INFINITY, -INFINITY}, nmax[2], rsum[2] = {0.f, 0.f};
#pragma unroll
  for (int j = 0; j < J; j++) {
    mx[0] = fmaxf(mx[0], fmaxf(s[j][0], s[j][1]));
    mx[1] = fmaxf(mx[1], fmaxf(s[j][2], s[j][3]));
  }
#pragma unroll
  for (int hr = 0; hr < 2; hr++) {
    mx[hr] = fmaxf(mx[hr], __shfl_xor_sync(0xffffffffu, mx[hr], 1));
    mx[hr] = fmaxf(mx[hr], __shfl_xor_sync(0xffffffffu, mx[hr], 2));
    const float nm = fmaxf(mrow[hr], mx[hr]);
    nmax[hr] = nm == -INFINITY ? 0.f : nm * c2;  // a row that has seen no key: exp2 gives 0, not NaN
    corr[hr] = fast_exp2(mrow[hr] * c2 - nmax[hr]);
    mrow[hr] = nm;
  }
#pragma unroll
  for (int j = 0; j < J; j++) {
    const float p0 = fast_exp2(fmaf(s[j][0], c2, -nmax[0])), p1 = fast_exp2(fmaf(s[j][1], c2, -nmax[0]));
    const float p2 = fast_exp2(fmaf(s[j][2], c2, -nmax[1])), p3 = fast_exp2(fmaf(s[j][3], c2, -nmax[1]));
    rsum[0] += p0 + p1;
    rsum[1] += p2 + p3;
    pf[j / 2][(j & 1) * 2] = mma::pack_bf16x2(p0, p1);
    pf[j / 2][(j & 1) * 2 + 1] = mma::pack_bf16x2(p2, p3);
  }
#pragma unroll
  for (int hr = 0; hr < 2; hr++) {
    rsum[hr] += __shfl_xor_sync(0xffffffffu, rsum[hr], 1);
    rsum[hr] += __shfl_xor_sync(0xffffffffu, rsum[hr], 2);
    lrow[hr] = lrow[hr] * corr[hr] + rsum[hr];
  }
}

/** Scales a thread's two rows of m16n8 accumulator fragments (the output before this tile's P·V). */
template <int J>
__device__ __forceinline__ void scale_rows(float (&o)[J][4], const float (&corr)[2]) {
#pragma unroll
  for (int j = 0; j < J; j++) {
    o[j][0] *= corr[0];
    o[j][1] *= corr[0];
    o[j][2] *= corr[1];
    o[j][3] *= corr[1];
  }
}

/** Writes a thread's two rows r0 and r0 + 8 of the normalised output (those below `rows`) in bf16; `out` is row 0's. */
template <int J>
__device__ __forceinline__ void store_rows(const float (&o)[J][4], const float (&lrow)[2], int r0, int rows, __nv_bfloat16* out, int ld, int t4) {
#pragma unroll
  for (int hr = 0; hr < 2; hr++) {
    const int r = r0 + hr * 8;
    if (r >= rows) continue;
    const float inv = 1.f / lrow[hr];
#pragma unroll
    for (int j = 0; j < J; j++)
      *reinterpret_cast<uint32_t*>(out + (size_t)r * ld + 8 * j + 2 * t4) = mma::pack_bf16x2(o[j][2 * hr] * inv, o[j][2 * hr + 1] * inv);
  }
}

// --- decode: split-K over the context ------------------------------------------------------------------

constexpr int kDecodeThreads = 128;
// Keys per decode slice, at least: one chunk of the block's loop. A block walks its keys serially, so
// a short context (a 1K-token decode) must still spread over enough blocks to keep the GPU busy.
constexpr int kMinSplitKeys = 128;

__device__ __forceinline__ int splits_for(int ctx, int max_splits) {
  const int want = (ctx + kMinSplitKeys - 1) / kMinSplitKeys;
  return want < max_splits ? (want > 0 ? want : 1) : max_splits;
}

constexpr int kDecodeWarps = kDecodeThreads / 32;

/** The keys [lo, hi) of block (decode sequence, KV head, slice) of a decode kernel; empty past the slices it needs. */
struct DecodeSlice {
  int seq, lo, hi, row;
};

__device__ __forceinline__ DecodeSlice decode_slice(const Paged& pg, const int* decode_seqs, int max_splits) {
  const int seq = decode_seqs[blockIdx.x];
  const int* m = pg.meta + seq * JB_META_INTS;
  const int ctx = m[JB_META_CTX];
  const int splits = splits_for(ctx, max_splits);
  const int per = (ctx + splits - 1) / splits;
  const int lo = (int)blockIdx.z < splits ? blockIdx.z * per : ctx;
  return {seq, lo, min(ctx, lo + per), m[JB_META_ROW_START]};
}



/**
 * Block (decode sequence, KV head, slice): the GQA group's queries against keys [lo, hi), in chunks of
 * 128 keys. Scores: one key per thread (16-byte loads of its K row), which also looks its position up
 * in the block table once and leaves the row's offset in shared memory. Softmax statistics: warp
 * shuffles, then one exchange between the 4 warps (two barriers per chunk). Weighted V sum: each warp
 * takes every 4th key of the chunk and each lane 4 head dims of it (8-byte loads, a V row read
 * coalesced), keys unrolled so that their loads are in flight together; the warps' sums meet in shared
 * memory at the end. Writes per query head: max, sum of exp, partial output.
 */
template <int GROUP>
__global__ void __launch_bounds__(kDecodeThreads) decode_split_kernel(const void* q, int qdt, int qld, Paged pg, int heads, float scale, const int* decode_seqs,
                                                                      int max_splits, float* partial) {
  const int di = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
  const DecodeSlice sl = decode_slice(pg, decode_seqs, max_splits);
  if (sl.lo >= sl.hi) return;
  const int seq = sl.seq, lo = sl.lo, hi = sl.hi, row = sl.row;
  const int hd = pg.head_dim;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

  extern __shared__ __align__(16) float sm[];
  float* qs = sm;                                  // [GROUP][hd], scaled queries
  float* sc = qs + GROUP * hd;                     // [GROUP][128] probabilities of the chunk
  float* stats = sc + GROUP * kDecodeThreads;      // [kDecodeWarps][GROUP] warp maxima, then sums
  float* vsum = stats + kDecodeWarps * GROUP;      // [kDecodeWarps][GROUP][hd] the warps' V sums
  size_t* offs = reinterpret_cast<size_t*>(vsum + kDecodeWarps * GROUP * hd);  // [128] K/V row offsets
  for (int i = threadIdx.x; i < GROUP * hd; i += blockDim.x) {
    const int g = i / hd, d = i % hd;
    qs[i] = load_as_float(q, qdt, (size_t)row * qld + (kvh * GROUP + g) * hd + d) * scale;
  }
  constexpr int kMaxD4 = 2;  // head dims up to 256: 4 per lane, twice
  float mx[GROUP], l[GROUP], acc[GROUP][kMaxD4][4];
#pragma unroll
  for (int g = 0; g < GROUP; g++) {
    mx[g] = -INFINITY;
    l[g] = 0.f;
#pragma unroll
    for (int j = 0; j < kMaxD4; j++) acc[g][j][0] = acc[g][j][1] = acc[g][j][2] = acc[g][j][3] = 0.f;
  }
  __syncthreads();

  for (int base = lo; base < hi; base += kDecodeThreads) {
    const int key = base + threadIdx.x;
    float s[GROUP];
#pragma unroll
    for (int g = 0; g < GROUP; g++) s[g] = -INFINITY;
    if (key < hi) {
#pragma unroll
      for (int g = 0; g < GROUP; g++) s[g] = 0.f;
      const size_t off = pg.offset(seq, key, kvh);
      offs[threadIdx.x] = off;
      const __nv_bfloat16* kr = pg.k + off;
      for (int d = 0; d < hd; d += 8) {
        const uint4 raw = *reinterpret_cast<const uint4*>(kr + d);
        const __nv_bfloat16* kv8 = reinterpret_cast<const __nv_bfloat16*>(&raw);
        float kf[8];
#pragma unroll
        for (int e = 0; e < 8; e++) kf[e] = __bfloat162float(kv8[e]);
#pragma unroll
        for (int g = 0; g < GROUP; g++) {
          // The same q for every thread: two broadcast 16-byte reads per 8 dims.
          const float4 qa = *reinterpret_cast<const float4*>(qs + g * hd + d), qb = *reinterpret_cast<const float4*>(qs + g * hd + d + 4);
          s[g] += qa.x * kf[0] + qa.y * kf[1] + qa.z * kf[2] + qa.w * kf[3] + qb.x * kf[4] + qb.y * kf[5] + qb.z * kf[6] + qb.w * kf[7];
        }
      }
    }
    // Online softmax over the chunk, per query head: the chunk's maximum, then its sum of exp.
#pragma unroll
    for (int g = 0; g < GROUP; g++) {
      const float wm = warp_max(s[g]);
      if (lane == 0) stats[warp * GROUP + g] = wm;
    }
    __syncthreads();
    float corr[GROUP];
#pragma unroll
    for (int g = 0; g < GROUP; g++) {
      float cm = stats[g];
#pragma unroll
      for (int w = 1; w < kDecodeWarps; w++) cm = fmaxf(cm, stats[w * GROUP + g]);
      const float nm = fmaxf(mx[g], cm);
      const float p = key < hi ? __expf(s[g] - nm) : 0.f;
      sc[g * kDecodeThreads + threadIdx.x] = p;
      s[g] = warp_sum(p);
      corr[g] = __expf(mx[g] - nm);
      mx[g] = nm;
    }
    __syncthreads();  // every warp has read the maxima; the probabilities and offsets are in place
#pragma unroll
    for (int g = 0; g < GROUP; g++) {
      if (lane == 0) stats[warp * GROUP + g] = s[g];
#pragma unroll
      for (int j = 0; j < kMaxD4; j++) {
        acc[g][j][0] *= corr[g];
        acc[g][j][1] *= corr[g];
        acc[g][j][2] *= corr[g];
        acc[g][j][3] *= corr[g];
      }
    }
    const int n = min(kDecodeThreads, hi - base);
    // A warp's keys in batches of 8: every V load of a batch is issued before its sums.
    constexpr int kBatch = 8;
    for (int i0 = warp; i0 < n; i0 += kDecodeWarps * kBatch) {
      uint2 raw[kBatch][kMaxD4];
#pragma unroll
      for (int b = 0; b < kBatch; b++) {
        const int i = i0 + b * kDecodeWarps;
#pragma unroll
        for (int j = 0; j < kMaxD4; j++) {
          const int d0 = 4 * lane + 128 * j;
          raw[b][j] = i < n && d0 < hd ? *reinterpret_cast<const uint2*>(pg.v + offs[i] + d0) : make_uint2(0, 0);
        }
      }
#pragma unroll
      for (int b = 0; b < kBatch; b++) {
        const int i = i0 + b * kDecodeWarps;
        if (i >= n) break;
#pragma unroll
        for (int j = 0; j < kMaxD4; j++) {
          const float2 lo2 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw[b][j].x));
          const float2 hi2 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw[b][j].y));
#pragma unroll
          for (int g = 0; g < GROUP; g++) {
            const float pg_ = sc[g * kDecodeThreads + i];
            acc[g][j][0] += pg_ * lo2.x;
            acc[g][j][1] += pg_ * lo2.y;
            acc[g][j][2] += pg_ * hi2.x;
            acc[g][j][3] += pg_ * hi2.y;
          }
        }
      }
    }
    __syncthreads();  // the chunk's sums are written and its probabilities and offsets are read
#pragma unroll
    for (int g = 0; g < GROUP; g++) {
      float total = 0.f;
#pragma unroll
      for (int w = 0; w < kDecodeWarps; w++) total += stats[w * GROUP + g];
      l[g] = l[g] * corr[g] + total;
    }
    __syncthreads();  // stats is rewritten by the next chunk
  }
  // The warps' V sums meet; partial[di][head][split] = (max, sum, acc[hd]).
#pragma unroll
  for (int g = 0; g < GROUP; g++)
#pragma unroll
    for (int j = 0; j < kMaxD4; j++) {
      const int d0 = 4 * lane + 128 * j;
      if (d0 >= hd) continue;
      float* dst = vsum + (warp * GROUP + g) * hd + d0;
      dst[0] = acc[g][j][0];
      dst[1] = acc[g][j][1];
      dst[2] = acc[g][j][2];
      dst[3] = acc[g][j][3];
    }
  __syncthreads();
  auto out = [&](int g) { return partial + (((size_t)di * heads + kvh * GROUP + g) * max_splits + split) * (hd + 2); };
  if (threadIdx.x == 0) {
#pragma unroll
    for (int g = 0; g < GROUP; g++) {
      out(g)[0] = mx[g];
      out(g)[1] = l[g];
    }
  }
  for (int i = threadIdx.x; i < GROUP * hd; i += blockDim.x) {
    const int g = i / hd, d = i % hd;
    float o = 0.f;
#pragma unroll
    for (int w = 0; w < kDecodeWarps; w++) o += vsum[(w * GROUP + g) * hd + d];
    out(g)[2 + d] = o;
  }
}

// Decode on tensor cores (head dim 128, GQA groups up to 16): the group's queries are the rows of one
// 16-row mma tile (rows past the group zero), so a decode step runs the prefill kernel's inner loop.
constexpr int kDecKeys = 64;                 // keys per K/V tile, 16 per warp
constexpr int kDecStages = 3;
constexpr int kDecStride = 136;              // bf16 per shared row: 128 + 8, conflict-free ldmatrix
constexpr int kDecTileElems = kDecKeys * kDecStride;
/** Dynamic shared memory of decode_mma_kernel with `stages` K/V stages, and the queries' tile. */
constexpr int dec_smem(int stages) { return 2 * stages * kDecTileElems * 2 + 16 * kDecStride * 2; }
constexpr int kDecSmem = dec_smem(kDecStages);

/**
 * Issues the cp.async copies of keys key0 … key0 + 63 (those below `hi`; the others zero-filled) of KV head
 * `kvh` into stage `stage` of the padded K and V tiles, from the 128 threads of a block. COALESCED: a
 * warp's cp.async takes two keys' whole rows, 32 lanes × 16 bytes (512 contiguous bytes in head-major
 * blocks; each thread looks up its 8 keys' offsets in the block table); else a pair of threads per key,
 * so that a warp's cp.async takes 32 bytes of each of 16 rows. The copies alone: 3.9 against 2.6 TB/s at
 * batch 1 over 256K (tools/gpu/decode_attention_microbench.cu).
 */
template <bool COALESCED>
__device__ __forceinline__ void copy_decode_tile(const Paged& pg, const int* table, int kvh, int key0, int hi, __nv_bfloat16* ks, __nv_bfloat16* vs,
                                                 int stage) {
  const int tid = threadIdx.x;
  if constexpr (COALESCED) {
    // Chunk i·128 + tid of the tile's 64 rows × 16 chunks: key 8i + tid/16, 16-byte column tid % 16.
    const int col = (tid & 15) * 8;
#pragma unroll
    for (int i = 0; i < 8; i++) {
      const int r = 8 * i + (tid >> 4);
      const bool valid = key0 + r < hi;
      const size_t off = valid ? pg.offset_in(table, key0 + r, kvh) + col : 0;
      const int at = stage * kDecTileElems + r * kDecStride + col;
      mma::cp_async16(ks + at, pg.k + off, valid);
      mma::cp_async16(vs + at, pg.v + off, valid);
    }
  } else {
    // A pair of threads per key, copying its row's 16-byte chunks 2c and 2c + 1 together (whole sectors).
    const int r = tid >> 1, sub = tid & 1, key = key0 + r;
    const bool valid = key < hi;
    const size_t off = valid ? pg.offset_in(table, key, kvh) : 0;
    const int row = stage * kDecTileElems + r * kDecStride;
    for (int c = 0; c < 8; c++) {
      const int e = (2 * c + sub) * 8;
      mma::cp_async16(ks + row + e, pg.k + off + e, valid);
      mma::cp_async16(vs + row + e, pg.v + off + e, valid);
    }
  }
}

/**
 * The start of a tensor-core decode block: the GQA group's queries (row `row` of q, KV head `kvh`) as the
 * rows of a 16-row bf16 tile in `qs` ([16][kDecStride], rows past the group zero), by every thread of
 * the block; the caller then synchronizes and takes each warp's A fragments with decode_query_fragments.
 */
__device__ __forceinline__ void stage_decode_queries(__nv_bfloat16* qs, const void* q, int qdt, int qld, size_t row, int kvh, int group) {
  for (int i = threadIdx.x; i < 16 * 128; i += blockDim.x) {
    const int r = i >> 7, d = i & 127;
    qs[r * kDecStride + d] = __float2bfloat16_rn(r < group ? load_as_float(q, qdt, row * qld + (kvh * group + r) * 128 + d) : 0.f);
  }
}

/** A warp's A fragments of the staged queries, for the 8 k steps of head dim 128. */
__device__ __forceinline__ void decode_query_fragments(const __nv_bfloat16* qs, uint32_t (&qf)[8][4]) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int kk = 0; kk < 8; kk++) mma::ldmatrix_x4(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], qs + (lane & 15) * kDecStride + kk * 16 + (lane >> 4) * 8);
}

/**
 * One warp's step of a tensor-core decode block over its 16 keys of a K/V tile, which start at key `key0`
 * (those from `hi` on are masked): S = Q·Kᵀ (16 × 16) and O += P·V (16 × 128) on mma.m16n8k16 with the
 * online softmax. `k_at(r, d0)` / `v_at(r, d0)`: where dims d0 … d0 + 7 of the warp's key r sit in shared memory.
 */
template <typename KAt, typename VAt>
__device__ __forceinline__ void decode_tile_step(const uint32_t (&qf)[8][4], KAt k_at, VAt v_at, int key0, int hi, float c2, float (&o)[16][4], float (&mrow)[2],
                                                 float (&lrow)[2]) {
  const int lane = threadIdx.x & 31, t4 = lane & 3;
  // S (16 queries × this warp's 16 keys): n-tile j = keys 8j … 8j+7; ldmatrix_x4 brings two k steps.
  float sc[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
#pragma unroll
  for (int j = 0; j < 2; j++)
#pragma unroll
    for (int kk = 0; kk < 8; kk += 2) {
      uint32_t b0, b1, b2, b3;
      mma::ldmatrix_x4(b0, b1, b2, b3, k_at(j * 8 + (lane & 7), (kk + (lane >> 4)) * 16 + ((lane >> 3) & 1) * 8));
      mma::mma_bf16(sc[j], qf[kk], b0, b1);
      mma::mma_bf16(sc[j], qf[kk + 1], b2, b3);
    }
  mask_keys_after(sc, key0, t4, hi - 1, 0);
  float corr[2];
  uint32_t pf[1][4];
  online_softmax(sc, c2, mrow, lrow, corr, pf);
  scale_rows(o, corr);
  // O += P·V over the warp's 16 keys: ldmatrix_x4_trans brings V for two 8-dim n-tiles.
#pragma unroll
  for (int j = 0; j < 16; j += 2) {
    uint32_t b0, b1, b2, b3;
    mma::ldmatrix_x4_trans(b0, b1, b2, b3, v_at(lane & 15, (j + (lane >> 4)) * 8));
    mma::mma_bf16(o[j], pf[0], b0, b1);
    mma::mma_bf16(o[j + 1], pf[0], b2, b3);
  }
}

/**
 * The end of a tensor-core decode block: its four warps' (max, sum, O) over their keys meet in `smem`
 * (free, at least 33 KiB: [4][16 rows][128] fp32 partials, then [4][16] maxima and [4][16] sums), and the
 * group's rows go to the slice's records for decode_combine_kernel: `record` is the first query head's, the
 * next heads' max_splits records apart, each (max in natural units, sum, O[128]). Every thread of the
 * block calls it; `holds` marks those of the four warps that hold fragments.
 */
__device__ __forceinline__ void store_decode_partial(unsigned char* smem, const float (&o)[16][4], const float (&mrow)[2], const float (&lrow)[2], bool holds,
                                                     int group, float scale, float* record, int max_splits) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
  float* ow = reinterpret_cast<float*>(smem);  // [4][16][128]
  float* stats = ow + 4 * 16 * 128;            // [4][16] max (natural units), then [4][16] sums
  if (holds) {
#pragma unroll
    for (int j = 0; j < 16; j++) {
      *reinterpret_cast<float2*>(ow + (warp * 16 + g) * 128 + 8 * j + 2 * t4) = make_float2(o[j][0], o[j][1]);
      *reinterpret_cast<float2*>(ow + (warp * 16 + g + 8) * 128 + 8 * j + 2 * t4) = make_float2(o[j][2], o[j][3]);
    }
    if (t4 == 0) {
#pragma unroll
      for (int hr = 0; hr < 2; hr++) {
        stats[warp * 16 + g + 8 * hr] = mrow[hr] * scale;
        stats[64 + warp * 16 + g + 8 * hr] = lrow[hr];
      }
    }
  }
  __syncthreads();
  for (int i = tid; i < group * 128; i += blockDim.x) {
    const int r = i >> 7, d = i & 127;
    float gm = -INFINITY;
#pragma unroll
    for (int w = 0; w < 4; w++) gm = fmaxf(gm, stats[w * 16 + r]);
    float acc = 0.f, sum = 0.f;
#pragma unroll
    for (int w = 0; w < 4; w++) {
      const float f = stats[w * 16 + r] == -INFINITY ? 0.f : __expf(stats[w * 16 + r] - gm);
      acc += f * ow[(w * 16 + r) * 128 + d];
      sum += f * stats[64 + w * 16 + r];
    }
    float* dst = record + (size_t)r * max_splits * (128 + 2);
    if (d == 0) {
      dst[0] = gm;
      dst[1] = sum;
    }
    dst[2 + d] = acc;
  }
}

/**
 * Block (decode sequence, KV head, slice) over keys [lo, hi): K/V tiles of 64 keys stream through STAGES
 * shared-memory stages with cp.async (three in the backend: two tiles in flight while one is used;
 * copy_decode_tile; the microbenchmark times others). Warp w
 * takes keys 16w … 16w+15 of every tile:
 * S = Q·Kᵀ (16 × 16) and O += P·V (16 × 128) on mma.m16n8k16 with its own online softmax; the four warps'
 * (max, sum, O) meet in shared memory at the end. Writes per query head the slice's (max, sum, O), as
 * decode_split_kernel does, for decode_combine_kernel.
 */
template <bool COALESCED, int STAGES = kDecStages>
__global__ void __launch_bounds__(128) decode_mma_kernel(const void* q, int qdt, int qld, Paged pg, int heads, float scale, const int* decode_seqs,
                                                         int max_splits, float* partial) {
  static_assert(STAGES >= 2, "the warps' partials reuse two stages' shared memory");
  pdl_enter();
  const int di = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
  const DecodeSlice sl = decode_slice(pg, decode_seqs, max_splits);
  if (sl.lo >= sl.hi) return;
  const int seq = sl.seq, lo = sl.lo, hi = sl.hi, row = sl.row;
  const int group = heads / pg.kv_heads;
  const int warp = threadIdx.x >> 5;

  extern __shared__ __align__(16) unsigned char smem_raw[];
  __nv_bfloat16* ks = reinterpret_cast<__nv_bfloat16*>(smem_raw);  // [stage][64 keys][136]
  __nv_bfloat16* vs = ks + STAGES * kDecTileElems;
  __nv_bfloat16* qs = vs + STAGES * kDecTileElems;              // [16][136]
  stage_decode_queries(qs, q, qdt, qld, row, kvh, group);
  const int* table = pg.table_of(seq);
  auto load = [&](int stage, int key0) { copy_decode_tile<COALESCED>(pg, table, kvh, key0, hi, ks, vs, stage); };
  const int n_tiles = (hi - lo + kDecKeys - 1) / kDecKeys;
  for (int t = 0; t < STAGES - 1; t++) {
    if (t < n_tiles) load(t, lo + t * kDecKeys);
    mma::cp_async_commit();
  }
  __syncthreads();  // the queries are in place
  uint32_t qf[8][4];
  decode_query_fragments(qs, qf);

  float o[16][4];
#pragma unroll
  for (int j = 0; j < 16; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
  float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};
  const float c2 = scale * kLog2e;
  for (int t = 0; t < n_tiles; t++) {
    mma::cp_async_wait<STAGES - 2>();
    __syncthreads();  // tile t is in place for every thread, and every warp is done with tile t - 1's stage
    if (t + STAGES - 1 < n_tiles) load((t + STAGES - 1) % STAGES, lo + (t + STAGES - 1) * kDecKeys);
    mma::cp_async_commit();
    const __nv_bfloat16* kt = ks + (t % STAGES) * kDecTileElems + warp * 16 * kDecStride;
    const __nv_bfloat16* vt = vs + (t % STAGES) * kDecTileElems + warp * 16 * kDecStride;
    decode_tile_step(
        qf, [&](int r, int d0) { return kt + r * kDecStride + d0; }, [&](int r, int d0) { return vt + r * kDecStride + d0; }, lo + t * kDecKeys + warp * 16, hi,
        c2, o, mrow, lrow);
  }
  // The warps' (max, sum, O) meet: the pipeline's stages become [warp][16 rows][128] fp32 partials.
  mma::cp_async_wait<0>();
  __syncthreads();
  store_decode_partial(smem_raw, o, mrow, lrow, true, group, scale, partial + (((size_t)di * heads + kvh * group) * max_splits + split) * (128 + 2), max_splits);
}

// --- decode on Hopper: K/V tiles by tensor copies from a copy warp ------------------------------------
//
// The cp.async kernel above issues its copies from the warps that compute, 16 per thread per tile, each
// behind a block-table lookup: from L2 it still takes 325 µs where its loads alone take 205 (batch 1 over
// 256K, tools/gpu/decode_attention_microbench.cu). Here a fifth warp copies each KV block's run of a
// head (block size × 256 bytes, contiguous in the head-major cache) with two tensor copies, one per
// 64-dim half, stored with the 128-byte swizzle so that ldmatrix reads them without bank conflicts; the
// four computing warps only wait on the stage's barrier. H200, batch 1 over 256K / batch 64 over 4K: 310 /
// 294 µs against 354 / 340 for the cp.async kernel (cuDNN 246 / 247).

constexpr int kTmaStages = 3;
constexpr int kTmaHalf = kDecKeys * 128;  // bytes of a tile's 64-dim half: 64 keys × 128 bytes
constexpr int kTmaTile = 2 * kTmaHalf;    // one K or V tile (16 KiB)
/** Dynamic shared memory of decode_tma_kernel: K and V stages, the queries' tile, the barriers, and slack to align to 1 KiB. */
constexpr int tma_dec_smem(int stages) { return 2 * stages * kTmaTile + 16 * kDecStride * 2 + 2 * stages * 8 + 1024; }

#ifdef JB_TMA
/** Byte offset of the 16-byte chunk holding dims d0 … d0 + 7 of key `r` in a swizzled K or V tile. */
__device__ __forceinline__ int tma_tile_offset(int r, int d0) { return (d0 >> 6) * kTmaHalf + wgmma::swizzled_chunk(r, (d0 & 63) >> 3); }
#endif

/** Whether the tensor-copy kernels can take a cache with these blocks: head-major runs of whole swizzle groups that tile 64 keys. */
bool tma_kv_fits(const Paged& pg) {
  return pg.head_major && pg.head_dim == 128 && pg.block_size >= 8 && (kDecKeys % pg.block_size == 0 || pg.block_size % kDecKeys == 0);
}

/**
 * A copy warp's tensor copies of one K/V tile, keys key0 … key0 + KEYS - 1 of KV head `kvh` (KEYS a multiple
 * of the runs below): each KV block's run of the head (min(block size, 64) keys) is two copies per tensor,
 * one per 64-dim half, into stages `kst` / `vst` laid out [half][KEYS keys][128 bytes] with the 128-byte
 * swizzle, counted on `bar`. Runs that start at `end` or later are not copied; their V rows are zeroed
 * instead (stale shared memory might hold a NaN, which a zero probability does not cancel; the cache past a
 * context is zeroed or holds earlier rows). The lanes look their blocks up, then `wait_free()` (the stage's
 * release), then lane 0 arrives on `bar` with the bytes to expect and the lanes issue the copies.
 */
template <int KEYS, typename WaitFree>
__device__ __forceinline__ void tma_copy_kv_tile(const CUtensorMap* kmap, const CUtensorMap* vmap, const Paged& pg, const int* table, int kvh, int key0, int end,
                                                 unsigned char* kst, unsigned char* vst, uint64_t* bar, WaitFree wait_free) {
#ifdef JB_TMA
  constexpr int kPerLane = (4 * KEYS / 8 + 31) / 32;  // copies a lane issues at most (runs of at least 8 keys)
  const int lane = threadIdx.x & 31, bs = pg.block_size, rows = min(bs, 64), runs = KEYS / rows;
  const int live = min(runs, ceil_div(end - key0, rows)), copies = 4 * live;
  int row[kPerLane];  // copy c = lane + 32j: run c / 4, V if bit 1, the half by bit 0
#pragma unroll
  for (int j = 0; j < kPerLane; j++) {
    const int c = lane + 32 * j, pos = key0 + (c >> 2) * rows;
    row[j] = c < copies ? (table[pos / bs] * pg.kv_heads + kvh) * bs + pos % bs : 0;
  }
  wait_free();
  if (live < runs) {
    for (int i = live * rows * 8 + lane; i < KEYS * 8; i += 32) {  // 16-byte chunk i of a half's rows from the first run not copied
      *reinterpret_cast<uint4*>(vst + i * 16) = make_uint4(0, 0, 0, 0);
      *reinterpret_cast<uint4*>(vst + KEYS * 128 + i * 16) = make_uint4(0, 0, 0, 0);
    }
    tma::fence_proxy_async();  // before the copies (and reads) of the async proxy
  }
  if (lane == 0) tma::expect_tx(bar, live * rows * 512);
  __syncwarp();
#pragma unroll
  for (int j = 0; j < kPerLane; j++) {
    const int c = lane + 32 * j;
    if (c >= copies) continue;
    const bool is_v = c & 2;
    const int half = c & 1;
    tma::load_2d((is_v ? vst : kst) + half * KEYS * 128 + (c >> 2) * rows * 128, is_v ? vmap : kmap, half * 64, row[j], bar);
  }
#endif
}

/**
 * Block (decode sequence, KV head, slice) as decode_mma_kernel, with its slices starting on 64-key tiles
 * (so that every copy is a block's run from a key on) and 160 threads: warps 0-3 compute as there; warp 4
 * copies tile t + STAGES - 1 while they use tile t (tma_copy_kv_tile, from the maps `kmap` and `vmap`: the
 * caches as rows of 128 dims, boxes of min(block size, 64) rows × 64 dims), `full` and `empty` barriers per
 * stage. ARITHMETIC false: the copies alone (a microbenchmark's).
 */
template <int STAGES = kTmaStages, bool ARITHMETIC = true>
__global__ void __launch_bounds__(160) decode_tma_kernel(const __grid_constant__ CUtensorMap kmap, const __grid_constant__ CUtensorMap vmap, const void* q,
                                                         int qdt, int qld, Paged pg, int heads, float scale, const int* decode_seqs, int max_splits,
                                                         float* partial) {
  static_assert(STAGES >= 2, "the warps' partials reuse two stages' shared memory");
#ifdef JB_TMA  // sm_90 (its mbarrier waits and tensor copies); launched there only
  pdl_enter();
  const int di = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
  const int seq = decode_seqs[di];
  const int* m = pg.meta + seq * JB_META_INTS;
  const int ctx = m[JB_META_CTX], splits = splits_for(ctx, max_splits);
  if (split >= splits) return;  // decode_combine_kernel reads the slices below `splits` only
  const int per = ceil_div(ceil_div(ctx, splits), kDecKeys) * kDecKeys;
  const int lo = min(ctx, split * per), hi = min(ctx, lo + per);
  const int group = heads / pg.kv_heads;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  float* record = partial + (((size_t)di * heads + kvh * group) * max_splits + split) * (128 + 2);
  if (lo == hi) {
    // Tile-aligned slices can leave the last ones empty: an empty record weighs nothing in the combine.
    for (int i = tid; i < group * 130; i += blockDim.x) record[(size_t)(i / 130) * max_splits * 130 + i % 130] = i % 130 == 0 ? -INFINITY : 0.f;
    return;
  }

  extern __shared__ unsigned char smem_raw[];
  unsigned char* ks = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));  // [stage][half][64 keys][128 B]
  unsigned char* vs = ks + STAGES * kTmaTile;
  __nv_bfloat16* qs = reinterpret_cast<__nv_bfloat16*>(vs + STAGES * kTmaTile);  // [16][136]
  uint64_t* full = reinterpret_cast<uint64_t*>(qs + 16 * kDecStride);
  uint64_t* empty = full + STAGES;
  if (tid == 0) {
    for (int s = 0; s < STAGES; s++) {
      mma::mbar_init(&full[s], 1);
      mma::mbar_init(&empty[s], 4);
    }
    tma::fence_barrier_init();
  }
  stage_decode_queries(qs, q, qdt, qld, m[JB_META_ROW_START], kvh, group);
  __syncthreads();  // the barriers and the queries are in place
  const int n_tiles = ceil_div(hi - lo, kDecKeys);
  float o[16][4];
  float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};
  if (warp == 4) {
    const int* table = pg.table_of(seq);
    for (int t = 0; t < n_tiles; t++) {
      const int s = t % STAGES;
      tma_copy_kv_tile<kDecKeys>(&kmap, &vmap, pg, table, kvh, lo + t * kDecKeys, hi, ks + s * kTmaTile, vs + s * kTmaTile, &full[s], [&] {
        if (t >= STAGES) mma::mbar_wait(&empty[s], ((t / STAGES) - 1) & 1);
      });
    }
  } else {
    uint32_t qf[8][4];
    decode_query_fragments(qs, qf);
#pragma unroll
    for (int j = 0; j < 16; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
    const float c2 = scale * kLog2e;
    for (int t = 0; t < n_tiles; t++) {
      const int s = t % STAGES, key0 = lo + t * kDecKeys + warp * 16;
      mma::mbar_wait(&full[s], (t / STAGES) & 1);
      if constexpr (!ARITHMETIC) {  // the microbenchmark's loads alone: each stage released as it lands
        __syncwarp();
        if (lane == 0) mma::mbar_arrive(&empty[s]);
        continue;
      }
      const unsigned char* kt = ks + s * kTmaTile;
      const unsigned char* vt = vs + s * kTmaTile;
      decode_tile_step(
          qf, [&](int r, int d0) { return kt + tma_tile_offset(warp * 16 + r, d0); }, [&](int r, int d0) { return vt + tma_tile_offset(warp * 16 + r, d0); }, key0,
          hi, c2, o, mrow, lrow);
      __syncwarp();
      if (lane == 0) mma::mbar_arrive(&empty[s]);
    }
  }
  __syncthreads();  // every tile consumed: the stages are free
  if constexpr (ARITHMETIC) store_decode_partial(ks, o, mrow, lrow, warp < 4, group, scale, record, max_splits);
#endif
}

/** Dynamic shared memory of decode_split_kernel for a GQA group and head dim (see its layout). */
size_t decode_smem_bytes(int group, int hd) {
  return (size_t)(group * hd + group * kDecodeThreads + kDecodeWarps * group + kDecodeWarps * group * hd) * sizeof(float) + kDecodeThreads * sizeof(size_t) + 8;
}

constexpr int kCombineThreads = 512;  // at most; also the most slices it merges (a weight per thread)

/** Σ over slices first, first + stride, ... of slice output `d` times its weight, four loads in flight. */
__device__ __forceinline__ float weighted_slices(const float* base, int rec, const float* weight, int splits, int d, int first, int stride) {
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  int s = first;
  for (; s + 3 * stride < splits; s += 4 * stride)
#pragma unroll
    for (int u = 0; u < 4; u++) acc[u] += base[(size_t)(s + u * stride) * rec + 2 + d] * weight[s + u * stride];
  for (; s < splits; s += stride) acc[0] += base[(size_t)s * rec + 2 + d] * weight[s];
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

/**
 * Block (decode sequence, head): merges the slices' records (max, sum, unnormalized output). Each thread
 * takes a slice's weight exp(m - max) / total; then the block splits into groups of `hd` threads (4 at
 * head dim 128), each summing every 4th slice, and the groups' sums meet in shared memory. (One thread
 * walking all slices in turn paid a memory round trip per slice: 64 at batch 1 over 256K.)
 */
__global__ void __launch_bounds__(kCombineThreads) decode_combine_kernel(const float* partial, const int* decode_seqs, const int* meta, int heads, int hd,
                                                                         int max_splits, __nv_bfloat16* out, int out_ld) {
  __shared__ float weight[kCombineThreads];
  __shared__ float sums[kCombineThreads];
  __shared__ float scratch[32];
  pdl_enter();
  const int di = blockIdx.x, h = blockIdx.y, tid = threadIdx.x;
  const int* m = meta + decode_seqs[di] * JB_META_INTS;
  const int splits = splits_for(m[JB_META_CTX], max_splits), rec = hd + 2;
  const float* base = partial + ((size_t)di * heads + h) * max_splits * rec;
  const float mine = tid < splits ? base[(size_t)tid * rec] : -INFINITY;
  const float gm = block_max(mine, scratch);
  const float w = mine != -INFINITY ? __expf(mine - gm) : 0.f;  // empty slices (and threads past them) weigh 0
  const float total = block_sum(w == 0.f ? 0.f : w * base[(size_t)tid * rec + 1], scratch);
  if (tid < splits) weight[tid] = w / total;
  __syncthreads();
  __nv_bfloat16* dst = out + (size_t)m[JB_META_ROW_START] * out_ld + h * hd;
  const int groups = max(1, min((int)blockDim.x / hd, splits)), grp = tid / hd;
  if (groups == 1) {
    for (int d = tid; d < hd; d += blockDim.x) dst[d] = __float2bfloat16_rn(weighted_slices(base, rec, weight, splits, d, 0, 1));
    return;
  }
  if (grp < groups) sums[tid] = weighted_slices(base, rec, weight, splits, tid - grp * hd, grp, groups);
  __syncthreads();
  if (tid < hd) {
    float o = 0.f;
    for (int g = 0; g < groups; g++) o += sums[g * hd + tid];
    dst[tid] = __float2bfloat16_rn(o);
  }
}

/** The serial merge decode_combine_kernel replaced (JAMBA_DECODE_COMBINE=serial, for comparison): a thread per output dim walks the slices. */
__global__ void decode_combine_serial_kernel(const float* partial, const int* decode_seqs, const int* meta, int heads, int hd, int max_splits,
                                             __nv_bfloat16* out, int out_ld) {
  pdl_enter();
  const int di = blockIdx.x, h = blockIdx.y;
  const int* m = meta + decode_seqs[di] * JB_META_INTS;
  const int splits = splits_for(m[JB_META_CTX], max_splits);
  const float* base = partial + ((size_t)di * heads + h) * max_splits * (hd + 2);
  float gm = -INFINITY;
  for (int s = 0; s < splits; s++) gm = fmaxf(gm, base[s * (hd + 2)]);
  float total = 0.f;
  for (int s = 0; s < splits; s++) total += base[s * (hd + 2) + 1] * __expf(base[s * (hd + 2)] - gm);
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float o = 0.f;
    for (int s = 0; s < splits; s++) o += base[s * (hd + 2) + 2 + d] * __expf(base[s * (hd + 2)] - gm);
    out[(size_t)m[JB_META_ROW_START] * out_ld + h * hd + d] = __float2bfloat16_rn(o / total);
  }
}

/**
 * The merge of the decode slices: up to four groups of head-dim threads and a thread per slice
 * (JAMBA_DECODE_COMBINE=serial: the serial kernel, 128 threads).
 */
int launch_decode_combine(const float* partial, const int* decode_seqs, const int* meta, int num_decode, int heads, int head_dim, int max_splits,
                          __nv_bfloat16* out, int out_ld) {
  static const bool serial = env_is("JAMBA_DECODE_COMBINE", "serial");
  if (max_splits > kCombineThreads) return fail("attention: more decode slices than the combine merges");
  const int threads = serial ? 128 : std::min(kCombineThreads, 32 * ceil_div(std::max(head_dim * std::min(4, max_splits), max_splits), 32));
  return launch_pdl("decode combine", serial ? decode_combine_serial_kernel : decode_combine_kernel, dim3(num_decode, heads), threads, 0, partial, decode_seqs, meta,
                    heads, head_dim, max_splits, out, out_ld);
}

// --- prefill: flash attention with bf16 tensor cores (head dim 128) --------------------------------------

constexpr int kTileQ = 64, kTileK = 64, kHd = 128, kStride = kHd + 8;

/**
 * Block (64-row query tile of one sequence, query head), 4 warps of 16 rows. K/V tiles of 64 keys come
 * from the paged cache with cp.async (two stages); S = Q·Kᵀ and O += P·V on mma.m16n8k16; the causal
 * mask applies on the tiles that cross the diagonal.
 */
__global__ void __launch_bounds__(128) prefill_fa_kernel(const __nv_bfloat16* q, int qld, Paged pg, int heads, float scale, const int* tiles,
                                                         __nv_bfloat16* out, int out_ld) {
  pdl_enter();
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __nv_bfloat16* qs = reinterpret_cast<__nv_bfloat16*>(smem_raw);
  __nv_bfloat16* ks = qs + kTileQ * kStride;  // [2][64][136]
  __nv_bfloat16* vs = ks + 2 * kTileK * kStride;
  const int seq = tiles[2 * blockIdx.x], row0 = tiles[2 * blockIdx.x + 1];
  const int h = blockIdx.y, kvh = h / (heads / pg.kv_heads);
  const int* m = pg.meta + seq * JB_META_INTS;
  const int seg_start = m[JB_META_ROW_START], seg_rows = m[JB_META_NUM_ROWS], cached = m[JB_META_CACHED];
  const int rows = min(kTileQ, seg_start + seg_rows - row0);
  const int pos0 = cached + (row0 - seg_start);  // position of the tile's first row
  const int last_key = pos0 + rows - 1;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t4 = lane & 3;

  // Q tile (rows past the segment are zero).
  for (int c = tid; c < kTileQ * (kHd / 8); c += 128) {
    const int r = c / (kHd / 8), cc = c % (kHd / 8);
    const bool valid = r < rows;
    mma::cp_async16(qs + r * kStride + cc * 8, q + (size_t)(valid ? row0 + r : row0) * qld + h * kHd + cc * 8, valid);
  }
  auto load_kv = [&](int stage, int key0) {
    for (int c = tid; c < kTileK * (kHd / 8); c += 128) {
      const int r = c / (kHd / 8), cc = c % (kHd / 8);
      const int key = key0 + r;
      const bool valid = key <= last_key;
      const size_t off = valid ? pg.offset(seq, key, kvh) : 0;
      mma::cp_async16(ks + (stage * kTileK + r) * kStride + cc * 8, pg.k + off + cc * 8, valid);
      mma::cp_async16(vs + (stage * kTileK + r) * kStride + cc * 8, pg.v + off + cc * 8, valid);
    }
  };
  load_kv(0, 0);
  mma::cp_async_commit();

  const int n_tiles = last_key / kTileK + 1;
  uint32_t qf[kHd / 16][4];
  float o[kHd / 8][4];
#pragma unroll
  for (int j = 0; j < kHd / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
  float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};
  const int my_row0 = warp * 16 + g;  // rows my_row0 and my_row0 + 8 of the tile
  const float c2 = scale * kLog2e;  // softmax in base 2

  for (int kt = 0; kt < n_tiles; kt++) {
    if (kt + 1 < n_tiles) load_kv((kt + 1) & 1, (kt + 1) * kTileK);
    mma::cp_async_commit();
    mma::cp_async_wait<1>();
    __syncthreads();
    if (kt == 0) {
#pragma unroll
      for (int kk = 0; kk < kHd / 16; kk++)
        mma::ldmatrix_x4(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], qs + (warp * 16 + (lane & 15)) * kStride + kk * 16 + (lane >> 4) * 8);
    }
    const __nv_bfloat16* kt_s = ks + (kt & 1) * kTileK * kStride;
    const __nv_bfloat16* vt_s = vs + (kt & 1) * kTileK * kStride;
    float s[kTileK / 8][4];
#pragma unroll
    for (int j = 0; j < kTileK / 8; j++) {
      s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < kHd / 16; kk++) {
        uint32_t b0, b1;
        mma::ldmatrix_x2(b0, b1, kt_s + (j * 8 + (lane & 7)) * kStride + kk * 16 + ((lane >> 3) & 1) * 8);
        mma::mma_bf16(s[j], qf[kk], b0, b1);
      }
    }
    // Mask (causal, and keys past the context), then the online softmax.
    mask_keys_after(s, kt * kTileK, t4, pos0 + my_row0, 8);
    float corr[2];
    uint32_t pf[kTileK / 16][4];
    online_softmax(s, c2, mrow, lrow, corr, pf);
    scale_rows(o, corr);
    // O += P·V: P (16×64) as A fragments, V (64×128) through ldmatrix.trans.
#pragma unroll
    for (int kk = 0; kk < kTileK / 16; kk++) {
#pragma unroll
      for (int j = 0; j < kHd / 8; j++) {
        uint32_t b0, b1;
        mma::ldmatrix_x2_trans(b0, b1, vt_s + (kk * 16 + (lane & 15)) * kStride + j * 8);
        mma::mma_bf16(o[j], pf[kk], b0, b1);
      }
    }
    __syncthreads();
  }
  store_rows(o, lrow, my_row0, rows, out + (size_t)row0 * out_ld + h * kHd, out_ld, t4);
}

// --- prefill on Hopper: warpgroup MMA (head dim 128, GQA groups of even size) -----------------------------

constexpr int kWgKeys = 128;                     // keys per K/V tile
constexpr int kWgStages = 3;                     // K/V tiles in shared memory: one in use, two in flight
constexpr int kWgHalf = kWgKeys * 128;           // bytes of one 64-dim column block of a K/V tile
constexpr int kWgQBytes = 2 * 64 * 128;          // one warpgroup's Q tile: 64 rows, two column blocks
constexpr int kWgKvBytes = 2 * kWgHalf;          // one K or V tile
constexpr int kWgBars = 2 * kWgQBytes + 2 * kWgStages * kWgKvBytes;  // offset of the stages' barriers
constexpr int kWgSmem = kWgBars + 2 * kWgStages * 8 + 1024;           // + barriers, + alignment

#if defined(JB_WGMMA)
/** One work item of the wgmma prefill kernel: a 64-row query tile and a pair of query heads. */
struct PrefillItem {
  int seq, row0, rows, pos0, last_key, n_tiles, pair;
};

/**
 * Item `i` of `pairs × num_tiles`, longest first: the host sorts the tile list by its last key, ascending
 * (step-payload.ts), so that persistent blocks meet the short tiles last.
 */
__device__ __forceinline__ PrefillItem prefill_item(int i, int pairs, const int* tiles, int num_tiles, const Paged& pg) {
  PrefillItem it;
  const int tile = num_tiles - 1 - i / pairs;
  it.pair = i % pairs;
  it.seq = tiles[2 * tile];
  it.row0 = tiles[2 * tile + 1];
  const int* m = pg.meta + it.seq * JB_META_INTS;
  const int seg_start = m[JB_META_ROW_START], seg_rows = m[JB_META_NUM_ROWS], cached = m[JB_META_CACHED];
  it.rows = min(64, seg_start + seg_rows - it.row0);
  it.pos0 = cached + (it.row0 - seg_start);
  it.last_key = it.pos0 + it.rows - 1;
  it.n_tiles = it.last_key / kWgKeys + 1;
  return it;
}

/**
 * The item a persistent block takes on its k-th round, or -1 past the last: rounds go back and forth
 * across the blocks (block b takes items b, 2G - 1 - b, 2G + b, ...), so that over the longest-first list
 * each block's share of keys comes out even.
 */
__device__ __forceinline__ int prefill_item_index(int k, int items) {
  const int g = gridDim.x, b = blockIdx.x;
  const int i = k * g + ((k & 1) ? g - 1 - b : b);
  return i < items ? i : -1;
}
#endif

/**
 * Blocks of two warpgroups, each a query head of a pair that shares a KV head, over work items (a 64-row
 * query tile of one sequence and a pair of heads: prefill_item); both heads read the same K/V tiles, so
 * each 128-key tile is loaded once for two heads. A block takes items until none is left (persistent, when
 * the grid is smaller than the items): the next item's K/V tiles and Q tile are copied while it finishes
 * the current one, so a block's start (barriers, Q, the first tiles) is paid once per SM, not per item.
 * Every operand in shared memory is stored as 64-dim column blocks of 128-byte rows with the 128-byte
 * swizzle (wgmma.cuh). S = Q·Kᵀ takes Q and K from shared memory; the probabilities stay in registers as
 * the A operand of O += P·V, whose B (V, keys × dims) is read MN-major.
 *
 * K/V tiles pass through three stages guarded by mbarriers instead of block-wide barriers (a block's
 * running tile count names the stage and phase, across its items), so that the two warpgroups drift apart
 * and one's softmax overlaps the other's MMAs: each warpgroup copies half of every tile's keys with cp.async
 * (each key's cache offset looked up once) and arrives on the stage's "full" barrier when its copies land;
 * after its P·V it arrives on the stage's "empty" barrier, which the copies of the tile two ahead wait for.
 * TMA: a warp of a third warpgroup makes the copies instead (tma_copy_kv_tile from `kmap` / `vmap`, into
 * the same swizzled column blocks) and the "full" barrier counts their bytes; the warpgroups only wait and
 * release.
 * PINGPONG: the warpgroups take turns to issue their MMAs (below).
 */
template <bool PINGPONG, bool TMA>
__global__ void __launch_bounds__(TMA ? 384 : 256, 1) prefill_wgmma_kernel(const __grid_constant__ CUtensorMap kmap, const __grid_constant__ CUtensorMap vmap,
                                                                          const __nv_bfloat16* q, int qld, Paged pg, int heads, float scale, const int* tiles,
                                                                          int num_tiles, __nv_bfloat16* out, int out_ld) {
  pdl_enter();
#if defined(JB_WGMMA)
  extern __shared__ __align__(16) unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024 - (mma::smem_addr(smem_raw) & 1023)) & 1023);
  const int tid = threadIdx.x, wg = tid >> 7, wtid = tid & 127;
  unsigned char* qs = smem + wg * kWgQBytes;
  unsigned char* ks = smem + 2 * kWgQBytes;  // [stage][column block][key][128 bytes]
  unsigned char* vs = ks + kWgStages * kWgKvBytes;
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + kWgBars);
  uint64_t* empty = full + kWgStages;
  const int pairs = heads / 2, items = num_tiles * pairs, group = heads / pg.kv_heads;
  if (tid == 0) {
    for (int st = 0; st < kWgStages; st++) {
      mma::mbar_init(full + st, TMA ? 1 : 256);
      mma::mbar_init(empty + st, 256);
    }
    tma::fence_barrier_init();
  }
  __syncthreads();  // the barriers are initialised

  // TMA: the third warpgroup lends its registers to the two that compute (setmaxnreg: 128 × 40 + 256 × 232
  // = 384 × 168, the block's allocation under its launch bounds), and one of its warps makes the copies.
  if (TMA && wg == 2) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory");
    if (wtid >= 32) return;
    // The copy warp: every item's tiles in turn, each a stage ahead of the warpgroups' release of it.
    int g = 0;
    for (int k = 0;; k++) {
      const int i = prefill_item_index(k, items);
      if (i < 0) break;
      const PrefillItem it = prefill_item(i, pairs, tiles, num_tiles, pg);
      const int* table = pg.table_of(it.seq);
      for (int t = 0; t < it.n_tiles; t++, g++) {
        const int st = g % kWgStages;
        tma_copy_kv_tile<kWgKeys>(&kmap, &vmap, pg, table, 2 * it.pair / group, t * kWgKeys, it.last_key + 1, ks + st * kWgKvBytes, vs + st * kWgKvBytes,
                                  full + st, [&] {
                                    if (g >= kWgStages) mma::mbar_wait(empty + st, (g / kWgStages - 1) & 1);
                                  });
      }
    }
    return;  // the warpgroups synchronize among themselves from here on (named barriers 1 to 4)
  }
  if (TMA) asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n" ::: "memory");
  // This warpgroup's Q tile of `it`: thread → row wtid / 2, column block wtid % 2 (rows past the segment zero).
  auto load_q = [&](const PrefillItem& it) {
    const int r = wtid >> 1, blk = wtid & 1;
    const bool valid = r < it.rows;
    const __nv_bfloat16* src = q + (size_t)(valid ? it.row0 + r : it.row0) * qld + (2 * it.pair + wg) * 128 + blk * 64;
    for (int c = 0; c < 8; c++) mma::cp_async16(qs + blk * 8192 + wgmma::swizzled_chunk(r, c), src + c * 8, valid);
    mma::cp_async_commit();
  };

  const int warp = wtid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  const int my_row0 = warp * 16 + g;  // rows my_row0 and my_row0 + 8 of the tile
  const float c2 = scale * kLog2e;    // softmax in base 2
  const uint32_t q_addr = mma::smem_addr(qs), k_addr = mma::smem_addr(ks), v_addr = mma::smem_addr(vs);
  float o[64], s[64];
  // The same registers in m16n8 fragment order (online_softmax): s4[j][e] = s[4j + e].
  float (&s4)[16][4] = *reinterpret_cast<float (*)[16][4]>(s);
  float (&o4)[16][4] = *reinterpret_cast<float (*)[16][4]>(o);
  uint32_t pf[8][4];
  int base = 0;  // tiles of the block's earlier items: tile t of this one is the block's tile base + t

  int k = 0, i = prefill_item_index(0, items);
  if (i < 0) return;
  PrefillItem it = prefill_item(i, pairs, tiles, num_tiles, pg);
  load_q(it);
  for (;;) {
    const int n_tiles = it.n_tiles, pos0 = it.pos0, last_key = it.last_key;
    // Without TMA: this warpgroup's half of tile t's keys, a pair of threads per key (64·wg + wtid / 2),
    // which copy its row's 16-byte chunks 2c and 2c + 1 together (whole 32-byte sectors per instruction);
    // keys past the last row zero. Waits for the stage to be free, arrives on its "full" barrier when the
    // copies land.
    auto load_half = [&](int t) {
      const int gt = base + t, st = gt % kWgStages, r = 64 * wg + (wtid >> 1), sub = wtid & 1, key = t * kWgKeys + r;
      if (gt >= kWgStages) mma::mbar_wait(empty + st, (gt / kWgStages - 1) & 1);
      const bool valid = key <= last_key;
      const size_t off = valid ? pg.offset(it.seq, key, 2 * it.pair / group) : 0;
      for (int c = 0; c < 8; c++) {
        const int chunk = 2 * c + sub, dst = st * kWgKvBytes + (chunk >> 3) * kWgHalf + wgmma::swizzled_chunk(r, chunk & 7);
        mma::cp_async16(ks + dst, pg.k + off + chunk * 8, valid);
        mma::cp_async16(vs + dst, pg.v + off + chunk * 8, valid);
      }
      mma::cp_async_arrive(full + st);
    };
    if (!TMA)
      for (int t = 0; t < kWgStages - 1 && t < n_tiles; t++) load_half(t);
    mma::cp_async_wait<0>();  // the Q tile (the K/V copies are tracked by the barriers, not by groups)
    wgmma::fence_shared();
    asm volatile("bar.sync %0, 128;\n" ::"r"(3 + wg) : "memory");  // this warpgroup's Q tile is in place

    float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};
    // S(t) = Q·K(t)ᵀ over the 128 head dims, 16 at a time: dims 64·b + 16·k4 are k16 step k4 of column block b.
    auto issue_s = [&](int t) {
      const int stage = (base + t) % kWgStages;
#pragma unroll
      for (int kk = 0; kk < 8; kk++) {
        const int blk = kk >> 2, k4 = kk & 3;
        wgmma::mma_ss_n128(s, wgmma::b_desc(q_addr + blk * 8192, k4), wgmma::b_desc(k_addr + stage * kWgKvBytes + blk * kWgHalf, k4), kk > 0);
      }
    };
    // O += P(t)·V(t): keys 16kk … 16kk+15 are rows 16kk … of V's two column blocks (MN-major B).
    auto issue_pv = [&](int t) {
#pragma unroll
      for (int kk = 0; kk < 8; kk++)
        wgmma::mma_n128<1>(o, pf[kk], wgmma::mn_desc(v_addr + ((base + t) % kWgStages) * kWgKvBytes + kk * 2048, kWgHalf), t > 0 || kk > 0);
    };
    auto wait_full = [&](int t) {
      mma::mbar_wait(full + (base + t) % kWgStages, ((base + t) / kWgStages) & 1);
      wgmma::fence_shared();  // the copies (generic proxy) before the MMAs' reads (async proxy)
    };
    // Ping-pong: the warpgroups take turns to issue their MMAs (named barriers 1 and 2), so that one's
    // softmax runs while the tensor cores work on the other's MMAs. Warpgroup 1 lets warpgroup 0 go first;
    // each item's turns balance, so the next item starts the same way.
    auto my_turn = [&]() {
      if (PINGPONG) asm volatile("bar.sync %0, 256;\n" ::"r"(1 + wg) : "memory");
    };
    auto their_turn = [&](bool last) {
      if (PINGPONG && !(last && wg == 1)) asm volatile("bar.arrive %0, 256;\n" ::"r"(2 - wg) : "memory");
    };
    if (PINGPONG && wg == 1) their_turn(false);

    // S(t) is in: causal mask (only on tiles that reach past the first row's position), online softmax,
    // the output so far rescaled (at t = 0 the scale is 0 and P·V overwrites it).
    auto softmax_tile = [&](int t) {
      const int key0 = t * kWgKeys;
      if (key0 + kWgKeys - 1 > pos0) mask_keys_after(s4, key0, t4, pos0 + my_row0, 8);
      float corr[2];
      online_softmax(s4, c2, mrow, lrow, corr, pf);
      scale_rows(o4, corr);
    };
    // After a turn's MMAs: tile t's stage is released, and the tile two ahead goes to the stage of tile
    // t - 1 once both warpgroups are done with it.
    auto finish_tile = [&](int t) {
      wgmma::wait<0>();
      mma::mbar_arrive(empty + (base + t) % kWgStages);
      if (!TMA && t + kWgStages - 1 < n_tiles) load_half(t + kWgStages - 1);
    };
    wait_full(0);
    my_turn();
    wgmma::fence();
    issue_s(0);
    wgmma::commit();
    their_turn(false);
    wgmma::wait<0>();
    // Each turn issues P(t)·V(t) and S(t + 1); the last tile's turn only its P·V.
    for (int kt = 0; kt + 1 < n_tiles; kt++) {
      softmax_tile(kt);
      wait_full(kt + 1);
      my_turn();
      wgmma::fence();
      issue_pv(kt);
      issue_s(kt + 1);
      wgmma::commit();
      their_turn(false);
      finish_tile(kt);
    }
    // Every S of this item is done, so the Q tile is free: the next item's copies go now.
    i = prefill_item_index(++k, items);
    if (i >= 0) load_q(prefill_item(i, pairs, tiles, num_tiles, pg));
    softmax_tile(n_tiles - 1);
    my_turn();
    wgmma::fence();
    issue_pv(n_tiles - 1);
    wgmma::commit();
    their_turn(true);
    finish_tile(n_tiles - 1);
    store_rows(o4, lrow, my_row0, it.rows, out + (size_t)it.row0 * out_ld + (2 * it.pair + wg) * 128, out_ld, t4);
    if (i < 0) break;
    base += n_tiles;
    it = prefill_item(i, pairs, tiles, num_tiles, pg);  // read again rather than held through the last tile
  }
#else
  __trap();  // launched only on sm_90 (use_wgmma_attention)
#endif
}

/**
 * The warpgroup-MMA prefill kernel on sm_90 (causal prefill, 32/8 heads, against the mma.sync kernel's
 * 1.03 ms / 3.79 s at 4K / 256K: 0.73 ms / 2.33 s with block-wide barriers per tile, 0.53 ms / – with the
 * mbarrier stages, 0.48 ms / 1.53 s with the ping-pong); JAMBA_ATTENTION_PREFILL_KERNEL=mma keeps the
 * mma.sync one, JAMBA_ATTENTION_PINGPONG=0 drops the turns (for comparison).
 */
bool use_wgmma_attention(int group) {
  static const bool on = sm_version() == 90 && !env_is("JAMBA_ATTENTION_PREFILL_KERNEL", "mma");
  return on && group % 2 == 0;
}

/**
 * The tensor-core decode kernel for head dim 128 (batch 1 over 256K 562 → 469 µs, batch 64 over 4K 523 →
 * 451 µs against the CUDA-core kernel); JAMBA_ATTENTION_DECODE_KERNEL=cores keeps the CUDA-core one (for comparison).
 */
bool use_mma_decode(int group, int head_dim) {
  static const bool on = !env_is("JAMBA_ATTENTION_DECODE_KERNEL", "cores");
  return on && head_dim == 128 && group <= 16;
}

/**
 * The caches' tensor maps for tma_copy_kv_tile, encoded per call (a host function of a few µs; a captured
 * graph keeps the maps in its parameters). Their row count is the largest a 32-bit coordinate names
 * rather than the pool's: the kernels only ask for rows of blocks in the tables.
 */
int kv_tensor_maps(const Paged& pg, CUtensorMap& kmap, CUtensorMap& vmap) {
  const uint32_t box_rows = std::min(pg.block_size, 64);
  const uint64_t rows = (uint64_t(1) << 31) - 1;
  if (!tma::encode_bf16_2d(&kmap, pg.k, 128, rows, 256, 64, box_rows) || !tma::encode_bf16_2d(&vmap, pg.v, 128, rows, 256, 64, box_rows))
    return fail("attention: the driver did not encode the caches' tensor maps");
  return 0;
}

/**
 * The warpgroup-MMA prefill kernel: with the warpgroups taking turns (JAMBA_ATTENTION_PINGPONG=0: not) and
 * its K/V tiles by a copy warp's tensor copies where the cache's blocks fit them, in persistent blocks
 * (H100, 4K / 32K / 128K / 256K: 0.331 / 17.5 / 300 / 1181 ms against 0.441 / 24.3 / 393 / 1558 with the
 * warpgroups' own cp.async copies, which JAMBA_PREFILL_COPIES=cp.async keeps, as the kernel without the
 * turns always does; JAMBA_PREFILL_PERSISTENT=0 launches a block per item).
 */
int launch_prefill_wgmma(const Mat& q, const Paged& pg, int heads, float scale, const int* tiles, int num_tiles, __nv_bfloat16* out, int out_ld) {
  static const bool pingpong = !env_is("JAMBA_ATTENTION_PINGPONG", "0");
  static const bool cp_async = env_is("JAMBA_PREFILL_COPIES", "cp.async");
  static const bool persistent = !env_is("JAMBA_PREFILL_PERSISTENT", "0");
  const bool tma = pingpong && !cp_async && tma_kv_fits(pg);
  CUtensorMap kmap{}, vmap{};
  if (tma && kv_tensor_maps(pg, kmap, vmap) != 0) return -1;
  auto kernel = tma ? prefill_wgmma_kernel<true, true> : pingpong ? prefill_wgmma_kernel<true, false> : prefill_wgmma_kernel<false, false>;
  const int allowed = tma ? allow_smem<prefill_wgmma_kernel<true, true>>(kWgSmem)
                          : pingpong ? allow_smem<prefill_wgmma_kernel<true, false>>(kWgSmem) : allow_smem<prefill_wgmma_kernel<false, false>>(kWgSmem);
  if (allowed != 0) return -1;
  // One block an SM (its shared memory); with the copy warp a block runs items until none is left.
  const int items = num_tiles * (heads / 2), grid = tma && persistent ? std::min(items, num_sms()) : items;
  return launch_pdl("prefill attention (wgmma)", kernel, grid, tma ? 384 : 256, kWgSmem, kmap, vmap, as<__nv_bfloat16>(q.ptr), q.ld, pg, heads, scale, tiles,
                    num_tiles, out, out_ld);
}

/**
 * Copies for the tensor-core decode kernel: tensor copies from a copy warp (decode_tma_kernel) on sm_90
 * where the cache's blocks fit them, else a warp's cp.async over two keys' rows; JAMBA_DECODE_COPIES=
 * coalesced or pairs (the older cp.async pattern) picks a cp.async one everywhere, for comparison.
 */
enum class DecodeCopies { tma, coalesced, pairs };

DecodeCopies decode_copies(const Paged& pg) {
  static const bool coalesced = env_is("JAMBA_DECODE_COPIES", "coalesced");
  static const bool pairs = env_is("JAMBA_DECODE_COPIES", "pairs");
  if (!coalesced && !pairs && sm_version() >= 90 && tma_kv_fits(pg)) return DecodeCopies::tma;
  return pairs ? DecodeCopies::pairs : DecodeCopies::coalesced;
}

/** decode_tma_kernel over the grid. */
int launch_decode_tma(const Mat& q, const Paged& pg, int heads, float scale, const int* decode_seqs, dim3 grid, int max_splits, float* partial) {
  CUtensorMap kmap, vmap;
  if (kv_tensor_maps(pg, kmap, vmap) != 0) return -1;
  constexpr int smem = tma_dec_smem(kTmaStages);
  if (allow_smem<decode_tma_kernel<kTmaStages>>(smem) != 0) return -1;
  return launch_pdl("decode attention (tma)", decode_tma_kernel<kTmaStages>, grid, 160, smem, kmap, vmap, as<void>(q.ptr), q.dtype, q.ld, pg, heads, scale,
                    decode_seqs, max_splits, partial);
}

int launch_decode(int group, const Mat& q, const Paged& pg, int heads, float scale, const int* decode_seqs, int num_decode, int max_splits, float* partial) {
  dim3 grid(num_decode, pg.kv_heads, max_splits);
  if (use_mma_decode(group, pg.head_dim)) {
    const DecodeCopies copies = decode_copies(pg);
    if (copies == DecodeCopies::tma) return launch_decode_tma(q, pg, heads, scale, decode_seqs, grid, max_splits, partial);
    const bool coalesced = copies == DecodeCopies::coalesced;
    auto kernel = coalesced ? decode_mma_kernel<true> : decode_mma_kernel<false>;
    if ((coalesced ? allow_smem<decode_mma_kernel<true>>(kDecSmem) : allow_smem<decode_mma_kernel<false>>(kDecSmem)) != 0) return -1;
    return launch_pdl("decode attention (mma)", kernel, grid, 128, kDecSmem, as<void>(q.ptr), q.dtype, q.ld, pg, heads, scale, decode_seqs, max_splits, partial);
  }
  const size_t smem = decode_smem_bytes(group, pg.head_dim);
  const void* qp = as<void>(q.ptr);
#define JB_DECODE(G)                                                                                                            \
  case G:                                                                                                                       \
    decode_split_kernel<G><<<grid, kDecodeThreads, smem, stream()>>>(qp, q.dtype, q.ld, pg, heads, scale, decode_seqs, max_splits, partial); \
    break;
  switch (group) {
    JB_DECODE(1)
    JB_DECODE(2)
    JB_DECODE(3)
    JB_DECODE(4)
    JB_DECODE(6)
    JB_DECODE(8)
    default:
      return fail("decode attention: unsupported GQA group " + std::to_string(group));
  }
#undef JB_DECODE
  JB_LAUNCHED("decode attention");
  return 0;
}

}  // namespace

namespace ops {

int attention(Args& a) {
  const Mat q = a.mat(), k = a.mat(), v = a.mat();
  const uint64_t cache_k = a.ptr(), cache_v = a.ptr();
  const int block_size = a.i(), heads = a.i(), kv_heads = a.i(), head_dim = a.i();
  const float scale = a.f();
  const uint64_t meta = a.ptr();
  const int seqs = a.i();
  const uint64_t row_seq = a.ptr(), tables = a.ptr(), prefill_tiles = a.ptr();
  const int num_tiles = a.i();
  const uint64_t decode_seqs = a.ptr();
  const int num_decode = a.i(), max_splits = a.i();
  const uint64_t partial = a.ptr(), out = a.ptr();
  (void)seqs;
  if (q.rows == 0) return 0;
  static const bool head_major = !env_is("JAMBA_KV_LAYOUT", "token-major");
  Paged pg{as<__nv_bfloat16>(cache_k), as<__nv_bfloat16>(cache_v), block_size, kv_heads, head_dim, as<int>(meta), as<int>(tables), head_major};
  const int out_ld = heads * head_dim;

  if (launch_pdl("kv write", kv_write_kernel, q.rows, 256, 0, as<void>(k.ptr), k.dtype, k.ld, as<void>(v.ptr), v.dtype, v.ld, as<__nv_bfloat16>(cache_k),
                 as<__nv_bfloat16>(cache_v), pg, as<int>(row_seq)) != 0)
    return -1;

  const int group = heads / kv_heads;
  const bool prefill_fast = num_tiles == 0 || (head_dim == kHd && q.dtype == JB_DTYPE_BF16 && q.ld % 8 == 0 && q.ptr % 16 == 0);
  const bool decode_fast = num_decode == 0 || use_mma_decode(group, head_dim) || (head_dim % 8 == 0 && head_dim <= 256 && (group <= 4 || group == 6 || group == 8));
  if (!prefill_fast || !decode_fast) {
    // The general kernel over every row of the step (any head dim, any group).
    const int warps = 4;
    return launch_pdl("attention (rows)", attention_rows_kernel, ceil_div(q.rows * heads, warps), 32 * warps, 0, as<void>(q.ptr), q.dtype, q.ld, pg, heads, scale,
                      as<int>(row_seq), nullptr, q.rows, as<__nv_bfloat16>(out), out_ld);
  }
  if (num_tiles > 0 && use_wgmma_attention(group)) {
    if (launch_prefill_wgmma(q, pg, heads, scale, as<int>(prefill_tiles), num_tiles, as<__nv_bfloat16>(out), out_ld) != 0) return -1;
  } else if (num_tiles > 0) {
    const int smem = (kTileQ + 4 * kTileK) * kStride * 2;
    if (allow_smem<prefill_fa_kernel>(smem) != 0) return -1;
    if (launch_pdl("prefill attention", prefill_fa_kernel, dim3(num_tiles, heads), 128, smem, as<__nv_bfloat16>(q.ptr), q.ld, pg, heads, scale,
                   as<int>(prefill_tiles), as<__nv_bfloat16>(out), out_ld) != 0)
      return -1;
  }
  if (num_decode > 0) {
    if (launch_decode(group, q, pg, heads, scale, as<int>(decode_seqs), num_decode, max_splits, as<float>(partial)) != 0) return -1;
    if (launch_decode_combine(as<float>(partial), as<int>(decode_seqs), as<int>(meta), num_decode, heads, head_dim, max_splits, as<__nv_bfloat16>(out), out_ld) != 0)
      return -1;
  }
  return 0;
}

}  // namespace ops
}  // namespace jb
