// Decode attention over the paged cache, taken apart: where does the tensor-core decode kernel
// (attention.cu decode_mma_kernel) lose against a plain read of the same bytes? Batch 1 over 256K and
// batch 64 over 4K keys, 32 query / 8 KV heads, head dim 128, KV blocks of 16 positions, cold L2.
// Rows: the kernel (and combine) at several split counts with its two copy patterns (a warp's cp.async
// over 512 contiguous bytes, the default, or over 32 bytes of 16 rows); then the loads alone, without the
// arithmetic: both cp.async patterns, bulk copies (256-byte rows into the kernel's padded layout, or
// whole 4 KiB KV block runs) into a ring of stages fed by a copy warp, and plain coalesced loads; the
// kernel and its copies with the cache in L2 (block tables naming 256 blocks, each reused: the cost of the
// arithmetic and the copies' issue without HBM's latency); and a device copy of the same size. The
// tensor-copy kernel (decode_tma_kernel: a copy warp's tensor copies of whole KV block runs) is timed
// beside the kernel and checked against it; `dec_attn tma` runs only those rows.
//   nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr
//        -Iruntime/native/include tools/gpu/decode_attention_microbench.cu -o /tmp/dec_attn && /tmp/dec_attn [tma]
#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "../../runtime/native/src/attention.cu"

#include "bench_common.cuh"

namespace jb {
namespace {

constexpr int kHeads = 32, kKvHeads = 8, kBlock = 16;  // head dim: attention.cu kHd (128)
bool g_failed = false;

/**
 * A block's keys for one KV head: the kernel's stage ring and copies (copy_decode_tile) without the
 * arithmetic (one value read per tile).
 */
template <int STAGES, bool COALESCED>
__global__ void __launch_bounds__(128) cp_async_only_kernel(Paged pg, const int* decode_seqs, int max_splits, float* sink) {
  const DecodeSlice sl = decode_slice(pg, decode_seqs, max_splits);
  if (sl.lo >= sl.hi) return;
  const int kvh = blockIdx.y, tid = threadIdx.x;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __nv_bfloat16* ks = reinterpret_cast<__nv_bfloat16*>(smem_raw);
  __nv_bfloat16* vs = ks + STAGES * kDecTileElems;
  const int* table = pg.table_of(sl.seq);
  auto load = [&](int stage, int key0) { copy_decode_tile<COALESCED>(pg, table, kvh, key0, sl.hi, ks, vs, stage); };
  const int n_tiles = (sl.hi - sl.lo + kDecKeys - 1) / kDecKeys;
  for (int t = 0; t < STAGES - 1; t++) {
    if (t < n_tiles) load(t, sl.lo + t * kDecKeys);
    mma::cp_async_commit();
  }
  float acc = 0.f;
  for (int t = 0; t < n_tiles; t++) {
    mma::cp_async_wait<STAGES - 2>();
    __syncthreads();
    if (t + STAGES - 1 < n_tiles) load((t + STAGES - 1) % STAGES, sl.lo + (t + STAGES - 1) * kDecKeys);
    mma::cp_async_commit();
    acc += __bfloat162float(ks[(t % STAGES) * kDecTileElems + tid * 8]) + __bfloat162float(vs[(t % STAGES) * kDecTileElems + tid * 8]);
  }
  if (acc == 12345.f) sink[0] = acc;
}

/** The same bytes with plain loads: a warp reads 512 contiguous bytes of a KV block's run per load. */
__global__ void __launch_bounds__(128) plain_read_kernel(Paged pg, const int* decode_seqs, int max_splits, float* sink) {
  const DecodeSlice sl = decode_slice(pg, decode_seqs, max_splits);
  if (sl.lo >= sl.hi) return;
  const int kvh = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  uint32_t x = 0;
  // A KV block's run of one head: 16 rows × 256 bytes = 4 KiB = 8 loads of 512 bytes per warp; 8 in flight.
  for (int b0 = sl.lo; b0 < sl.hi; b0 += 4 * kBlock) {
    const int pos = b0 + warp * kBlock;
    if (pos >= sl.hi) break;
    const size_t off = pg.offset(sl.seq, pos, kvh);
    const uint4* k = reinterpret_cast<const uint4*>(pg.k + off);
    const uint4* v = reinterpret_cast<const uint4*>(pg.v + off);
    uint4 r[16];
#pragma unroll
    for (int i = 0; i < 8; i++) {
      r[i] = __ldcs(k + i * 32 + lane);
      r[8 + i] = __ldcs(v + i * 32 + lane);
    }
#pragma unroll
    for (int i = 0; i < 16; i++) x ^= r[i].x ^ r[i].y ^ r[i].z ^ r[i].w;
  }
  if (x == 0x12345u) sink[0] = (float)x;
}

/**
 * The same bytes by bulk copies: the producer warp copies each tile (64 keys of K and of V) into a ring of
 * S stages, counted on the stage's full barrier; the 4 consumer warps wait for it, read one value, and
 * release the stage on its empty barrier. ROWS: a 256-byte copy per key row into padded rows (the
 * kernel's layout), issued by the warp's 32 lanes; else one 4 KiB copy per KV block run, by lane 0.
 */
template <int S, bool ROWS>
__global__ void __launch_bounds__(160) bulk_only_kernel(Paged pg, const int* decode_seqs, int max_splits, float* sink) {
  const DecodeSlice sl = decode_slice(pg, decode_seqs, max_splits);
  if (sl.lo >= sl.hi) return;
  const int kvh = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  constexpr int kStageBytes = ROWS ? 2 * kDecTileElems * 2 : 64 * kHd * 2 * 2;
  uint64_t* full = reinterpret_cast<uint64_t*>(smem_raw + S * kStageBytes);
  uint64_t* empty = full + S;
  if (threadIdx.x == 0) {
    for (int s = 0; s < S; s++) {
      mma::mbar_init(&full[s], 1);
      mma::mbar_init(&empty[s], 4);
    }
    tma::fence_barrier_init();
  }
  __syncthreads();
  const int n_tiles = (sl.hi - sl.lo + 63) / 64;
  if (warp == 4) {
    const int* table = pg.table_of(sl.seq);
    for (int t = 0; t < n_tiles; t++) {
      const int s = t % S;
      if (t >= S) mma::mbar_wait(&empty[s], ((t / S) - 1) & 1);
      const int key0 = sl.lo + t * 64, keys = min(64, sl.hi - key0);
      unsigned char* stage = smem_raw + s * kStageBytes;
      // ROWS: the slice's keys; else whole KV block runs (slices on block boundaries: the caller's splits).
      if (lane == 0) tma::expect_tx(&full[s], (ROWS ? keys : (keys + kBlock - 1) / kBlock * kBlock) * 2 * kHd * 2);
      __syncwarp();
      if constexpr (ROWS) {
        for (int r = lane; r < keys; r += 32) {
          const size_t off = pg.offset_in(table, key0 + r, kvh);
          tma::bulk_copy(stage + r * kDecStride * 2, pg.k + off, kHd * 2, &full[s]);
          tma::bulk_copy(stage + (kDecTileElems + r * kDecStride) * 2, pg.v + off, kHd * 2, &full[s]);
        }
      } else if (lane == 0) {
        for (int b = 0; b * kBlock < keys; b++) {
          const size_t off = pg.offset_in(table, key0 + b * kBlock, kvh);
          unsigned char* dst = stage + b * kBlock * kHd * 2;
          tma::bulk_copy(dst, pg.k + off, kBlock * kHd * 2, &full[s]);
          tma::bulk_copy(dst + kStageBytes / 2, pg.v + off, kBlock * kHd * 2, &full[s]);
        }
      }
    }
    return;
  }
  float acc = 0.f;
  for (int t = 0; t < n_tiles; t++) {
    const int s = t % S;
    mma::mbar_wait(&full[s], (t / S) & 1);
    acc += __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(smem_raw + s * kStageBytes)[threadIdx.x * 8]);
    __syncwarp();
    if (lane == 0) mma::mbar_arrive(&empty[s]);
  }
  if (acc == 12345.f) sink[0] = acc;
}

struct Case {
  const char* name;
  int batch, ctx;
};

struct Setup {
  Paged pg;
  int* decode_seqs;
  __nv_bfloat16* q;
  __nv_bfloat16* out;
  float* partial;
  float* sink;
  double bytes;
};

/**
 * `resident` > 0: the block tables name only that many KV blocks (each reused), so that the cache fits in L2:
 * the same kernel with loads that do not wait on HBM.
 */
Setup make_setup(const Case& c, int max_splits_cap, bool shuffled, int resident = 0) {
  Setup s{};
  const int blocks_per_seq = (c.ctx + kBlock - 1) / kBlock, blocks = blocks_per_seq * c.batch;
  const int stored = resident > 0 ? std::min(resident, blocks) : blocks;
  const size_t elems = (size_t)stored * kKvHeads * kBlock * kHd;
  __nv_bfloat16 *k, *v;
  CHECK(cudaMalloc(&k, elems * 2));
  CHECK(cudaMalloc(&v, elems * 2));
  fill_bf16<<<1024, 256>>>(k, elems, 1.f);
  fill_bf16<<<1024, 256>>>(v, elems, 1.f);
  std::vector<int> table(blocks);
  std::iota(table.begin(), table.end(), 0);
  if (shuffled) {
    std::mt19937 rng(7);
    std::shuffle(table.begin(), table.end(), rng);
  }
  for (int& b : table) b %= stored;
  std::vector<int> meta(c.batch * JB_META_INTS, 0), seqs(c.batch);
  for (int i = 0; i < c.batch; i++) {
    meta[i * JB_META_INTS + JB_META_ROW_START] = i;
    meta[i * JB_META_INTS + JB_META_NUM_ROWS] = 1;
    meta[i * JB_META_INTS + JB_META_BLOCKS] = i * blocks_per_seq;
    meta[i * JB_META_INTS + JB_META_CTX] = c.ctx;
    seqs[i] = i;
  }
  int *dmeta, *dtables;
  CHECK(cudaMalloc(&dmeta, meta.size() * 4));
  CHECK(cudaMalloc(&dtables, table.size() * 4));
  CHECK(cudaMalloc(&s.decode_seqs, seqs.size() * 4));
  CHECK(cudaMemcpy(dmeta, meta.data(), meta.size() * 4, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(dtables, table.data(), table.size() * 4, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(s.decode_seqs, seqs.data(), seqs.size() * 4, cudaMemcpyHostToDevice));
  s.pg = Paged{k, v, kBlock, kKvHeads, kHd, dmeta, dtables, true};
  CHECK(cudaMalloc(&s.q, (size_t)c.batch * kHeads * kHd * 2));
  fill_bf16<<<64, 256>>>(s.q, (size_t)c.batch * kHeads * kHd, 1.f);
  CHECK(cudaMalloc(&s.out, (size_t)c.batch * kHeads * kHd * 2));
  CHECK(cudaMalloc(&s.partial, (size_t)c.batch * kHeads * max_splits_cap * (kHd + 2) * 4));
  CHECK(cudaMalloc(&s.sink, 4));
  s.bytes = 2.0 * blocks * kKvHeads * kBlock * kHd * 2;  // what the kernel reads (from L2 when `resident`)
  CHECK(cudaDeviceSynchronize());
  return s;
}

void free_setup(Setup& s) {
  cudaFree((void*)s.pg.k);
  cudaFree((void*)s.pg.v);
  cudaFree((void*)s.pg.meta);
  cudaFree((void*)s.pg.tables);
  cudaFree(s.decode_seqs);
  cudaFree(s.q);
  cudaFree(s.out);
  cudaFree(s.partial);
  cudaFree(s.sink);
}

/** Shared memory of the 3-stage loads-alone kernels (the kernel's K and V stages, without Q). */
constexpr int kLoadsSmem = 2 * 3 * kDecTileElems * 2;

/** The decode kernel with either copy pattern over `splits` slices per KV head, then its combine. */
template <int STAGES = kDecStages>
void kernel_and_combine(const Setup& s, const Case& c, int splits, bool coalesced) {
  const float scale = 1.f / std::sqrt((float)kHd);
  auto kernel = coalesced ? decode_mma_kernel<true, STAGES> : decode_mma_kernel<false, STAGES>;
  kernel<<<dim3(c.batch, kKvHeads, splits), 128, dec_smem(STAGES), stream()>>>(s.q, JB_DTYPE_BF16, kHeads * kHd, s.pg, kHeads, scale, s.decode_seqs, splits,
                                                                                s.partial);
  if (launch_decode_combine(s.partial, s.decode_seqs, s.pg.meta, c.batch, kHeads, kHd, splits, s.out, kHeads * kHd) != 0) exit(1);
}

/**
 * decode_tma_kernel (slices on 64-key tiles, a copy warp's tensor copies) over `splits` slices per KV head,
 * then the combine; ARITHMETIC false: its copies alone (no combine).
 */
template <bool ARITHMETIC = true>
void tma_kernel_and_combine(const Setup& s, const Case& c, int splits) {
  const float scale = 1.f / std::sqrt((float)kHd);
  static bool allowed = false;
  if (!allowed) {
    CHECK(cudaFuncSetAttribute(decode_tma_kernel<kTmaStages, ARITHMETIC>, cudaFuncAttributeMaxDynamicSharedMemorySize, tma_dec_smem(kTmaStages)));
    allowed = true;
  }
  CUtensorMap kmap, vmap;
  if (kv_tensor_maps(s.pg, kmap, vmap) != 0) exit(1);
  decode_tma_kernel<kTmaStages, ARITHMETIC><<<dim3(c.batch, kKvHeads, splits), 160, tma_dec_smem(kTmaStages), stream()>>>(
      kmap, vmap, s.q, JB_DTYPE_BF16, kHeads * kHd, s.pg, kHeads, scale, s.decode_seqs, splits, s.partial);
  if (ARITHMETIC && launch_decode_combine(s.partial, s.decode_seqs, s.pg.meta, c.batch, kHeads, kHd, splits, s.out, kHeads * kHd) != 0) exit(1);
}

/** Both copy patterns' shared-memory attribute at STAGES stages (2 lets three blocks share an SM, 4 only one). */
template <int STAGES>
void allow_stages() {
  CHECK(cudaFuncSetAttribute(decode_mma_kernel<true, STAGES>, cudaFuncAttributeMaxDynamicSharedMemorySize, dec_smem(STAGES)));
  CHECK(cudaFuncSetAttribute(decode_mma_kernel<false, STAGES>, cudaFuncAttributeMaxDynamicSharedMemorySize, dec_smem(STAGES)));
}

void row(const Case& c, const char* what, int splits, float us, double bytes) {
  printf("%-18s %-52s %6d %9.1f %8.2f\n", c.name, what, splits, us, bytes / us / 1e6);
}

/** The outputs `run` leaves (the output poisoned before, so that one it does not write shows). */
template <typename Run>
std::vector<__nv_bfloat16> outputs_of(const Setup& s, const Case& c, Run run) {
  const size_t n = (size_t)c.batch * kHeads * kHd;
  std::vector<__nv_bfloat16> out(n);
  CHECK(cudaMemset(s.out, 0xff, n * 2));
  run();
  CHECK(cudaMemcpy(out.data(), s.out, n * 2, cudaMemcpyDeviceToHost));
  return out;
}

/** Outputs that are not finite (an output left unwritten shows as the poison's NaN). */
size_t not_finite(const std::vector<__nv_bfloat16>& out) {
  return std::count_if(out.begin(), out.end(), [](__nv_bfloat16 v) { return !std::isfinite(__bfloat162float(v)); });
}

/** Runs `first` then `second` and fails the run unless every output is finite and bitwise the same. */
template <typename First, typename Second>
void check_same(const Setup& s, const Case& c, int splits, const char* between, First first, Second second) {
  const std::vector<__nv_bfloat16> a = outputs_of(s, c, first), b = outputs_of(s, c, second);
  const size_t n = a.size(), bad = not_finite(a);
  size_t differ = 0;
  for (size_t i = 0; i < n; i++) differ += memcmp(&a[i], &b[i], 2) != 0;
  printf("%-18s %s: %zu of %zu outputs differ between %s (%d slices; %zu not finite)\n", c.name, differ || bad ? "FAIL" : "ok  ", differ, n, between, splits, bad);
  if (differ || bad) g_failed = true;
}

/**
 * Runs `reference` then `candidate` (other slice boundaries: another summation order) into the same output
 * and fails the run unless they agree to bf16 rounding: relative L2 error below 1e-2.
 */
template <typename Reference, typename Candidate>
void check_close(const Setup& s, const Case& c, int splits, const char* between, Reference reference, Candidate candidate) {
  const std::vector<__nv_bfloat16> a = outputs_of(s, c, reference), b = outputs_of(s, c, candidate);
  double err = 0, norm = 0;
  const size_t bad_a = not_finite(a), bad_b = not_finite(b);
  for (size_t i = 0; i < a.size(); i++) {
    const double x = __bfloat162float(a[i]), y = __bfloat162float(b[i]);
    err += (x - y) * (x - y);
    norm += x * x;
  }
  const double rel = std::sqrt(err / std::max(norm, 1e-30));
  const bool ok = rel < 1e-2 && bad_a == 0 && bad_b == 0;
  printf("%-18s %s: relative L2 error %.2e between %s (%d slices; %zu and %zu of %zu outputs not finite)\n", c.name, ok ? "ok  " : "FAIL", rel, between, splits,
         bad_a, bad_b, a.size());
  if (!ok) g_failed = true;
}

}  // namespace
}  // namespace jb

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);  // each row as it is measured (a run cut short keeps what it had)
  bench_init();
  Timer timer;
  // The third case: slices and tiles that end inside KV blocks (correctness of the partial tiles).
  const Case cases[] = {{"batch 1 / 256K", 1, 262144}, {"batch 64 / 4K", 64, 4096}, {"batch 3 / 1000", 3, 1000}};
  printf("%-18s %-52s %6s %9s %8s\n", "case", "what", "splits", "µs", "TB/s");
  allow_stages<2>();
  allow_stages<kDecStages>();
  allow_stages<4>();
  CHECK(cudaFuncSetAttribute(cp_async_only_kernel<3, false>, cudaFuncAttributeMaxDynamicSharedMemorySize, kLoadsSmem));
  CHECK(cudaFuncSetAttribute(cp_async_only_kernel<3, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, kLoadsSmem));
  // `tma`: only the backend's kernel against the tensor-copy kernel, at each case's default split count.
  const bool tma_only = argc > 1 && strcmp(argv[1], "tma") == 0;
  for (const Case& c : cases) {
    const int default_splits = std::max(1, 512 / (c.batch * kKvHeads));
    if (tma_only) {
      Setup s = make_setup(c, 256, true);
      const std::vector<int> split_list = c.ctx % (64 * 128) != 0 ? std::vector<int>{1, 3, 7} : std::vector<int>{default_splits};
      for (const int splits : split_list) {
        row(c, "kernel + combine, cp.async over 512 contiguous bytes", splits, timer.median_us([&] { kernel_and_combine(s, c, splits, true); }), s.bytes);
        row(c, "kernel + combine, tensor copies from a copy warp", splits, timer.median_us([&] { tma_kernel_and_combine(s, c, splits); }), s.bytes);
        row(c, "loads alone: the tensor copies (3 stages)", splits, timer.median_us([&] { tma_kernel_and_combine<false>(s, c, splits); }), s.bytes);
        check_close(s, c, splits, "cp.async and tensor copies", [&] { kernel_and_combine(s, c, splits, true); }, [&] { tma_kernel_and_combine(s, c, splits); });
      }
      free_setup(s);
      if (c.ctx % (64 * 128) == 0) {  // both with the cache in L2: their cost without HBM's latency
        Setup l2 = make_setup(c, 256, true, 256);
        row(c, "kernel + combine, cache in L2 (256 blocks)", default_splits, timer.median_us([&] { kernel_and_combine(l2, c, default_splits, true); }), l2.bytes);
        row(c, "tensor-copy kernel + combine, cache in L2 (256 blocks)", default_splits, timer.median_us([&] { tma_kernel_and_combine(l2, c, default_splits); }),
            l2.bytes);
        row(c, "tensor copies alone, cache in L2 (256 blocks)", default_splits, timer.median_us([&] { tma_kernel_and_combine<false>(l2, c, default_splits); }),
            l2.bytes);
        free_setup(l2);
      }
      continue;
    }
    for (const bool shuffled : {true, false}) {
      Setup s = make_setup(c, 256, shuffled);
      const bool odd = c.ctx % (64 * 128) != 0;
      std::vector<int> split_list = odd ? std::vector<int>{1, 3, 7} : c.batch == 1 ? std::vector<int>{33, 64, 128} : std::vector<int>{1, 2};
      if (!shuffled) split_list = {default_splits};
      for (const int splits : split_list) {
        const dim3 grid(c.batch, kKvHeads, splits);
        for (const bool coalesced : {true, false}) {
          char label[96];
          snprintf(label, sizeof label, "kernel + combine, cp.async over %s%s", coalesced ? "512 contiguous bytes" : "16 rows x 32 bytes", shuffled ? "" : " (blocks in order)");
          row(c, label, splits, timer.median_us([&] { kernel_and_combine(s, c, splits, coalesced); }), s.bytes);
        }
        if (!shuffled) continue;
        if (splits == default_splits || odd) {  // other stage counts: the same output, more or fewer blocks per SM
          row(c, "kernel + combine, 512 contiguous bytes, 2 stages", splits, timer.median_us([&] { kernel_and_combine<2>(s, c, splits, true); }), s.bytes);
          row(c, "kernel + combine, 512 contiguous bytes, 4 stages", splits, timer.median_us([&] { kernel_and_combine<4>(s, c, splits, true); }), s.bytes);
          check_same(s, c, splits, "2 and 3 stages", [&] { kernel_and_combine<2>(s, c, splits, true); }, [&] { kernel_and_combine(s, c, splits, true); });
          row(c, "kernel + combine, tensor copies from a copy warp", splits, timer.median_us([&] { tma_kernel_and_combine(s, c, splits); }), s.bytes);
          check_close(s, c, splits, "cp.async and tensor copies", [&] { kernel_and_combine(s, c, splits, true); }, [&] { tma_kernel_and_combine(s, c, splits); });
        }
        // Both fill the stages with the same bytes: identical output.
        check_same(s, c, splits, "the two copy patterns", [&] { kernel_and_combine(s, c, splits, false); }, [&] { kernel_and_combine(s, c, splits, true); });
        if (odd) continue;  // the loads-alone kernels below take whole KV blocks
        row(c, "loads alone: the cp.async pattern (3 stages)", splits, timer.median_us([&] {
              cp_async_only_kernel<3, false><<<grid, 128, kLoadsSmem, stream()>>>(s.pg, s.decode_seqs, splits, s.sink);
            }), s.bytes);
        row(c, "loads alone: cp.async, 512 contiguous bytes per warp copy", splits, timer.median_us([&] {
              cp_async_only_kernel<3, true><<<grid, 128, kLoadsSmem, stream()>>>(s.pg, s.decode_seqs, splits, s.sink);
            }), s.bytes);
        auto bulk = [&](auto kernel, int stages, bool rows) {
          const int smem = stages * (rows ? 2 * kDecTileElems * 2 : 64 * kHd * 4) + 2 * stages * 8;
          CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
          char label[96];
          snprintf(label, sizeof label, "loads alone: bulk copies of %s, %d stages", rows ? "256-byte rows" : "4 KiB block runs", stages);
          row(c, label, splits, timer.median_us([&] { kernel<<<grid, 160, smem, stream()>>>(s.pg, s.decode_seqs, splits, s.sink); }), s.bytes);
        };
        bulk(bulk_only_kernel<3, true>, 3, true);
        if (c.ctx % (splits * 64) == 0) {  // the block-run copies take slices that start on a tile
          bulk(bulk_only_kernel<3, false>, 3, false);
          bulk(bulk_only_kernel<6, false>, 6, false);
        }
        row(c, "loads alone: plain coalesced loads", splits, timer.median_us([&] {
              plain_read_kernel<<<grid, 128, 0, stream()>>>(s.pg, s.decode_seqs, splits, s.sink);
            }), s.bytes);
      }
      free_setup(s);
    }
    if (c.ctx % (64 * 128) != 0) continue;
    {  // The kernel and its copies with the cache in L2 (256 KV blocks, 16 MiB): what they cost without HBM's latency.
      Setup s = make_setup(c, 256, true, 256);
      const int splits = default_splits;
      const dim3 grid(c.batch, kKvHeads, splits);
      row(c, "kernel + combine, cache in L2 (256 blocks)", splits, timer.median_us([&] { kernel_and_combine(s, c, splits, true); }), s.bytes);
      row(c, "tensor-copy kernel + combine, cache in L2 (256 blocks)", splits, timer.median_us([&] { tma_kernel_and_combine(s, c, splits); }), s.bytes);
      row(c, "loads alone, cache in L2 (256 blocks)", splits, timer.median_us([&] {
            cp_async_only_kernel<3, true><<<grid, 128, kLoadsSmem, stream()>>>(s.pg, s.decode_seqs, splits, s.sink);
          }), s.bytes);
      free_setup(s);
    }
    // The ceiling: one contiguous buffer of the same size read by a plain streaming kernel (cudaMemcpy's rate is for copies).
    {
      Setup s = make_setup(c, 1, false);
      const size_t n16 = (size_t)(s.bytes / 2 / 16);
      const uint4* k = reinterpret_cast<const uint4*>(s.pg.k);
      row(c, "cudaMemcpyAsync K -> V (reads and writes the bytes of K)", 0, timer.median_us([&] {
            CHECK(cudaMemcpyAsync((void*)s.pg.v, (const void*)k, n16 * 16, cudaMemcpyDeviceToDevice, stream()));
          }), (double)n16 * 32);
      free_setup(s);
    }
  }
  CHECK(cudaGetLastError());
  if (g_failed) printf("FAIL: outputs that should be bitwise the same differ (the FAIL lines above)\n");
  return g_failed ? 1 : 0;
}
