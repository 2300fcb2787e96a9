// Mixture of experts with ExpertsInt8: the router (fp32 softmax over all experts, top-k, no
// renormalisation), the routing books, and grouped GEMMs whose int8 weights are dequantized inside the
// kernel: int8 → bf16 in registers (exact), bf16 tensor-core mma with fp32 accumulation, then the
// per-output-channel scale. The same kernel runs bf16 weights (no scale) and dense int8 linears.
//
//   moe(x) = Σ_j w[t,j] · down_e(silu(gate_e(x)) ⊙ up_e(x)),  e = experts[t,j]
//   1. align: count the (token, slot) pairs per expert, sort them by expert, cut each expert's run into
//      BM-row tiles (the tile map lets one launch cover every expert without a host round trip);
//   2. gated GEMM: per tile, gate and up in the same k-loop (two B operands share each A fragment),
//      epilogue silu(gate)·up → h [pairs, ffn] bf16;
//   3. down GEMM over h, epilogue × routing weight → partial [pairs, hidden] fp32 at the pair's index;
//   4. reduce: out[t] = Σ_j partial[t·k + j] in slot order (deterministic, no atomics).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <type_traits>

#include "common.cuh"
#include "int8_tiles.cuh"
#include "mma.cuh"
#include "tma.cuh"
#include "wgmma.cuh"

namespace jb {
namespace {

enum Mode { GATED = 0, DOWN = 1, DENSE = 2 };

struct GemmParams {
  const __nv_bfloat16* a;
  int lda;
  // The streamed kernel's fp16 path (F16): the rows of a as fp16, row r at a16 + r·k, scaled by powers
  // of two, and their inverses: one per row for the gated GEMM's input (indexed like a, through a_rows),
  // one per row and 64-column block for the down projection's (a_inv_scale[r·⌈k/64⌉ + block]), whose
  // producer writes each block without waiting for the rest of its row.
  const __half* a16;
  const float* a_inv_scale;
  const int* a_rows;  // sorted row → row of a (nullptr: the same row)
  int k, n;
  const uint64_t* table;  // per expert: gate, up, down, gate scale, up scale, down scale (nullptr: w0/s0)
  int slot;               // first weight slot used (gate 0 or down 2)
  const void* w0;
  const float* s0;
  const int* tile_expert;
  const int* tile_start;
  const int* offsets;
  const int* num_tiles;
  int m;  // rows (dense)
  __nv_bfloat16* h;
  float* partial;
  const int* pair_index;
  const float* route_w;
  void* out;
  int out_dtype;
  const float* bias;
  int pairs;  // rows of one partial slice (split-K of the down projection)
  // The expert of every tile when nothing is routed (a dense MLP), else -1: its weights are known before
  // the kernel before this one ends, so the streamed kernel prefetches them (common.cuh, PDL).
  int known_expert;
  // The wgmma kernel's block order (grouped_block): row tiles taken in groups of this many, each group's
  // tiles for one output block after another; 0 or 1: output blocks fastest.
  int tile_group;
};

/** The 16 bytes of weight row n from column k on: bf16 weights are row-major, int8 ones tiled (int8_tiles.cuh). */
template <bool INT8>
__device__ __forceinline__ const unsigned char* weight_chunk(const unsigned char* w, int n, int k, int K) {
  if constexpr (INT8) return w + int8_tile_offset(n, k, int8_padded_cols(K));
  else return w + ((size_t)n * K + k) * 2;
}

template <bool INT8, int MODE, int BM, int BN, int BK, int WM, int WN, int STAGES>
struct GemmConfig {
  static constexpr int kThreads = 32 * WM * WN;
  static constexpr int kMats = MODE == GATED ? 2 : 1;
  static constexpr int kElem = INT8 ? 1 : 2;
  static constexpr int kAStride = BK + 8;                    // bf16 elements per A row in smem (16 B pad)
  static constexpr int kBStride = BK + 16 / kElem;           // elements per B row in smem (16 B pad)
  static constexpr int kABytes = BM * kAStride * 2;
  static constexpr int kBBytes = BN * kBStride * kElem;
  static constexpr int kStageBytes = kABytes + kMats * kBBytes;
  // int8 weights are dequantized once per k tile into this bf16 tile, which the warps then read
  // with ldmatrix: each weight is converted once per block, not once per warp that uses it.
  static constexpr int kQStride = BK + 8;
  static constexpr int kQBytes = INT8 ? kMats * BN * kQStride * 2 : 0;
  static constexpr int kSmem = STAGES * kStageBytes + kQBytes;
  static constexpr int kWarpM = BM / WM, kWarpN = BN / WN;
  static constexpr int kMT = kWarpM / 16, kNT = kWarpN / 8;
  static constexpr int kBN = BN;
  static_assert(kWarpM % 16 == 0 && kWarpN % 8 == 0 && BK % 16 == 0, "tile shape");
};

/** This block's rows (a tile of one expert's run, or of all rows) and that expert's weights; false: no tile. */
/** Expert `expert`'s weights of the GEMM's matrix `j`. */
__device__ __forceinline__ const void* expert_weight(const GemmParams& p, int expert, int j) {
  return p.table ? reinterpret_cast<const void*>(p.table[expert * 6 + p.slot + j]) : p.w0;
}

template <int MATS>
__device__ __forceinline__ bool block_tile(const GemmParams& p, int tile, int rows_per_tile, int& row0, int& row_end, const void* (&w)[2], const float* (&s)[2]) {
  int expert = 0;
  if (p.tile_expert) {
    if (tile >= *p.num_tiles) return false;
    expert = p.tile_expert[tile];
    row0 = p.tile_start[tile];
    row_end = min(row0 + rows_per_tile, p.offsets[expert + 1]);
  } else {
    row0 = tile * rows_per_tile;
    if (row0 >= p.m) return false;
    row_end = min(row0 + rows_per_tile, p.m);
  }
#pragma unroll
  for (int j = 0; j < MATS; j++) {
    w[j] = expert_weight(p, expert, j);
    s[j] = p.table ? reinterpret_cast<const float*>(p.table[expert * 6 + 3 + p.slot + j]) : p.s0;
  }
  return true;
}

/**
 * The (row tile, output block) of a block of a grid launched as (output blocks, row tiles, splits): of
 * `blocks_x` output blocks, this block's is `block_x` (blockIdx.x, or a cluster's index when the blocks
 * of a cluster share one row tile). Blocks start in launch order, so the blocks resident at once are a
 * window of consecutive ids. With output blocks fastest that window spans one or two row tiles and every
 * output block: each tile's rows stay in L2 for all of them, but each tile streams its expert's weights
 * again from memory. Taking the tiles in groups (vLLM's GROUP_SIZE_M) puts a group's tiles — several of
 * one expert, at prefill sizes — on the same output blocks at once, so they share those weights in L2 too.
 */
[[maybe_unused]] __device__ __forceinline__ void grouped_block(int group, int block_x, int blocks_x, int& tile, int& nblk) {
  if (group <= 1) {
    tile = blockIdx.y;
    nblk = block_x;
    return;
  }
  const int per_group = group * blocks_x, id = blockIdx.y * blocks_x + block_x;
  const int first = id / per_group * group, size = min((int)gridDim.y - first, group), in = id % per_group;
  tile = first + in % size;
  nblk = in / size;
}

template <bool INT8, int MODE, int BM, int BN, int BK, int WM, int WN, int STAGES>
__global__ void __launch_bounds__(32 * WM * WN) grouped_gemm(GemmParams p) {
  pdl_enter();
  using C = GemmConfig<INT8, MODE, BM, BN, BK, WM, WN, STAGES>;
  extern __shared__ __align__(16) unsigned char smem[];

  int row0, row_end;
  const void* w[2];
  const float* s[2];
  if (!block_tile<C::kMats>(p, blockIdx.y, BM, row0, row_end, w, s)) return;
  const int n0 = blockIdx.x * BN;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int warp_m = warp / WN, warp_n = warp % WN;
  const int K = p.k, N = p.n;
  // Split-K (blockIdx.z of gridDim.z; GATED and DOWN only): this block's slice of the k tiles.
  const int all_tiles = (K + BK - 1) / BK, per = (all_tiles + gridDim.z - 1) / gridDim.z;
  const int kt0 = blockIdx.z * per, k_tiles = max(0, min(all_tiles, kt0 + per) - kt0);

  auto a_tile = [&](int stage) { return reinterpret_cast<__nv_bfloat16*>(smem + stage * C::kStageBytes); };
  auto b_tile = [&](int stage, int mat) { return smem + stage * C::kStageBytes + C::kABytes + mat * C::kBBytes; };

  auto load = [&](int stage, int kt) {
    const int k0 = (kt0 + kt) * BK;
    constexpr int a_chunks_per_row = BK / 8;
    __nv_bfloat16* as_ = a_tile(stage);
    for (int c = tid; c < BM * a_chunks_per_row; c += C::kThreads) {
      const int r = c / a_chunks_per_row, cc = c % a_chunks_per_row;
      const int row = row0 + r, kk = k0 + cc * 8;
      const bool valid = row < row_end && kk < K;
      const int src_row = valid ? (p.a_rows ? p.a_rows[row] : row) : 0;
      mma::cp_async16(as_ + r * C::kAStride + cc * 8, p.a + (size_t)src_row * p.lda + (valid ? kk : 0), valid);
    }
    constexpr int b_chunk_elems = 16 / C::kElem;
    constexpr int b_chunks_per_row = BK / b_chunk_elems;
#pragma unroll
    for (int j = 0; j < C::kMats; j++) {
      unsigned char* bs = b_tile(stage, j);
      const unsigned char* wb = static_cast<const unsigned char*>(w[j]);
      for (int c = tid; c < BN * b_chunks_per_row; c += C::kThreads) {
        const int r = c / b_chunks_per_row, cc = c % b_chunks_per_row;
        const int n = n0 + r, kk = k0 + cc * b_chunk_elems;
        const bool valid = n < N && kk < K;
        mma::cp_async16(bs + (r * C::kBStride + cc * b_chunk_elems) * C::kElem, weight_chunk<INT8>(wb, valid ? n : 0, valid ? kk : 0, K), valid);
      }
    }
  };

  float acc[C::kMats][C::kMT][C::kNT][4];
#pragma unroll
  for (int j = 0; j < C::kMats; j++)
#pragma unroll
    for (int i = 0; i < C::kMT; i++)
#pragma unroll
      for (int t = 0; t < C::kNT; t++)
#pragma unroll
        for (int q = 0; q < 4; q++) acc[j][i][t][q] = 0.f;

#pragma unroll
  for (int st = 0; st < STAGES - 1; st++) {
    if (st < k_tiles) load(st, st);
    mma::cp_async_commit();
  }

  const int g = lane >> 2, t4 = lane & 3;
  for (int kt = 0; kt < k_tiles; kt++) {
    mma::cp_async_wait<STAGES - 2>();
    __syncthreads();
    const int pre = kt + STAGES - 1;
    if (pre < k_tiles) load(pre % STAGES, pre);
    mma::cp_async_commit();

    const int stage = kt % STAGES;
    const __nv_bfloat16* as_ = a_tile(stage);
    if constexpr (INT8) {
      __nv_bfloat16* bq = reinterpret_cast<__nv_bfloat16*>(smem + STAGES * C::kStageBytes);
      constexpr int chunks = BN * BK / 16;  // 16 int8 per chunk
#pragma unroll
      for (int j = 0; j < C::kMats; j++) {
        const unsigned char* bs = b_tile(stage, j);
        for (int c = tid; c < chunks; c += C::kThreads) {
          const int r = c / (BK / 16), cc = c % (BK / 16);
          const uint4 raw = *reinterpret_cast<const uint4*>(bs + r * C::kBStride + cc * 16);
          const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
          uint4 lo, hi;
          uint32_t* out = reinterpret_cast<uint32_t*>(&lo);
          uint32_t* out2 = reinterpret_cast<uint32_t*>(&hi);
#pragma unroll
          for (int w4 = 0; w4 < 2; w4++) {
            out[2 * w4] = mma::i8x2_to_bf16x2(words[w4] & 0xffffu);
            out[2 * w4 + 1] = mma::i8x2_to_bf16x2(words[w4] >> 16);
            out2[2 * w4] = mma::i8x2_to_bf16x2(words[w4 + 2] & 0xffffu);
            out2[2 * w4 + 1] = mma::i8x2_to_bf16x2(words[w4 + 2] >> 16);
          }
          __nv_bfloat16* dst = bq + (j * BN + r) * C::kQStride + cc * 16;
          *reinterpret_cast<uint4*>(dst) = lo;
          *reinterpret_cast<uint4*>(dst + 8) = hi;
        }
      }
      __syncthreads();
    }
#pragma unroll
    for (int kk = 0; kk < BK / 16; kk++) {
      uint32_t af[C::kMT][4];
#pragma unroll
      for (int i = 0; i < C::kMT; i++) {
        const int r = warp_m * C::kWarpM + i * 16 + (lane & 15);
        mma::ldmatrix_x4(af[i][0], af[i][1], af[i][2], af[i][3], as_ + r * C::kAStride + kk * 16 + (lane >> 4) * 8);
      }
#pragma unroll
      for (int j = 0; j < C::kMats; j++) {
        const __nv_bfloat16* bb;
        int stride;
        if constexpr (INT8) {
          bb = reinterpret_cast<const __nv_bfloat16*>(smem + STAGES * C::kStageBytes) + j * BN * C::kQStride;
          stride = C::kQStride;
        } else {
          bb = reinterpret_cast<const __nv_bfloat16*>(b_tile(stage, j));
          stride = C::kBStride;
        }
#pragma unroll
        for (int t = 0; t < C::kNT; t++) {
          const int nrow = warp_n * C::kWarpN + t * 8;
          uint32_t b0, b1;
          mma::ldmatrix_x2(b0, b1, bb + (nrow + (lane & 7)) * stride + kk * 16 + ((lane >> 3) & 1) * 8);
#pragma unroll
          for (int i = 0; i < C::kMT; i++) mma::mma_bf16(acc[j][i][t], af[i], b0, b1);
        }
      }
    }
    if constexpr (INT8) __syncthreads();  // the bf16 tile is rewritten next iteration
  }
  mma::cp_async_wait<0>();

  // Epilogue.
#pragma unroll
  for (int i = 0; i < C::kMT; i++) {
#pragma unroll
    for (int t = 0; t < C::kNT; t++) {
#pragma unroll
      for (int q = 0; q < 4; q++) {
        const int row = row0 + warp_m * C::kWarpM + i * 16 + g + (q >= 2 ? 8 : 0);
        const int n = n0 + warp_n * C::kWarpN + t * 8 + 2 * t4 + (q & 1);
        if (row >= row_end || n >= N) continue;
        const float v0 = acc[0][i][t][q] * (s[0] ? s[0][n] : 1.f);
        if constexpr (MODE == GATED) {
          const float v1 = acc[C::kMats - 1][i][t][q] * (s[C::kMats - 1] ? s[C::kMats - 1][n] : 1.f);
          if (gridDim.z == 1) {
            p.h[(size_t)row * N + n] = __float2bfloat16_rn(silu(v0) * v1);
          } else {  // a K slice: scaled gate and up sums, finished by gated_finish_kernel
            float* part = p.partial + ((size_t)blockIdx.z * p.pairs + row) * 2 * N;
            part[n] = v0;
            part[N + n] = v1;
          }
        } else if constexpr (MODE == DOWN) {
          const int pair = p.pair_index[row];
          p.partial[((size_t)blockIdx.z * p.pairs + pair) * N + n] = p.route_w ? v0 * p.route_w[pair] : v0;
        } else {
          store_from_float(p.out, p.out_dtype, (size_t)row * N + n, v0 + (p.bias ? p.bias[n] : 0.f));
        }
      }
    }
  }
}

/**
 * One output of the kernels that compute outᵀ = W·xᵀ, already scaled: output channel n of `out_row` (the
 * token row; for the down projection the row's pair index). v0 is gate (or the only matrix), v1 up; the
 * split index is blockIdx.z.
 */
template <int MODE>
__device__ __forceinline__ void store_scaled(const GemmParams& p, float v0, float v1, int out_row, int n) {
  const int N = p.n;
  if constexpr (MODE == GATED) {
    if (gridDim.z == 1) {
      p.h[(size_t)out_row * N + n] = __float2bfloat16_rn(silu(v0) * v1);
    } else {  // a K slice: scaled gate and up sums, finished by gated_finish_kernel
      float* part = p.partial + ((size_t)blockIdx.z * p.pairs + out_row) * 2 * N;
      part[n] = v0;
      part[N + n] = v1;
    }
  } else if constexpr (MODE == DOWN) {
    p.partial[((size_t)blockIdx.z * p.pairs + out_row) * N + n] = v0;
  } else {
    store_from_float(p.out, p.out_dtype, (size_t)out_row * N + n, v0 + (p.bias ? p.bias[n] : 0.f));
  }
}

/** The row `store_scaled` writes for token row `row`, and the factor its outputs take (the routing weight). */
template <int MODE>
__device__ __forceinline__ int output_row(const GemmParams& p, int row, float& row_factor) {
  if constexpr (MODE == DOWN) {
    const int pair = p.pair_index[row];
    row_factor = p.route_w ? p.route_w[pair] : 1.f;
    return pair;
  }
  row_factor = 1.f;
  return row;
}

/** store_scaled for a raw output of channel n (per-channel scales s: gate's, or the only matrix's, and up's) of token row `row`. */
template <int MODE, int MATS>
__device__ __forceinline__ void store_transposed(const GemmParams& p, const float* const (&s)[2], float v0, float v1, int row, int row_end, int n) {
  if (row >= row_end || n >= p.n) return;
  float f;
  const int out_row = output_row<MODE>(p, row, f);
  store_scaled<MODE>(p, v0 * f * (s[0] ? s[0][n] : 1.f), v1 * (s[MATS - 1] ? s[MATS - 1][n] : 1.f), out_row, n);
}

/**
 * Few rows per group (decode, small batches): the weights are the mma's A operand (16 output channels
 * per warp, dequantized from int8 in registers) and the tokens its B operand (TN per tile, in n8 steps),
 * computing outᵀ = W·xᵀ. Every weight byte read feeds TN tokens and no mma lane is wasted on padding
 * rows of weights; a block covers 64 output channels (per matrix) over the whole K with a deep cp.async
 * pipeline, since this regime is bound by weight bytes.
 */
template <bool INT8, int MODE, int TN, int WARPS>
struct SwapConfig {
  static constexpr int kWarps = WARPS, kThreads = 32 * WARPS, kRows = 16 * kWarps;
  static constexpr int kMats = MODE == GATED ? 2 : 1;
  static constexpr int kElem = INT8 ? 1 : 2;
  // Wide token tiles (prefill) hold their activations in a shallower, narrower pipeline.
  static constexpr int BK = INT8 && TN < 64 ? 128 : 64;
  static constexpr int kStages = TN < 64 ? 4 : 3;
  static constexpr int kWStride = BK + 16 / kElem;  // elements
  static constexpr int kXStride = BK + 8;           // bf16 elements
  static constexpr int kWBytes = kRows * kWStride * kElem;
  static constexpr int kXBytes = TN * kXStride * 2;
  static constexpr int kStageBytes = kMats * kWBytes + kXBytes;
  static constexpr int kSmem = kStages * kStageBytes;
};

template <bool INT8, int MODE, int TN, int WARPS>
__global__ void __launch_bounds__(32 * WARPS) swapped_gemm(GemmParams p) {
  pdl_enter();
  using C = SwapConfig<INT8, MODE, TN, WARPS>;
  constexpr int BK = C::BK;
  extern __shared__ __align__(16) unsigned char smem[];
  int row0, row_end;
  const void* w[2];
  const float* s[2];
  if (!block_tile<C::kMats>(p, blockIdx.y, TN, row0, row_end, w, s)) return;
  const int n0 = blockIdx.x * C::kRows;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
  const int K = p.k, N = p.n;
  // Split-K (blockIdx.z of gridDim.z): this block's slice of the k tiles.
  const int all_tiles = (K + BK - 1) / BK, per = (all_tiles + gridDim.z - 1) / gridDim.z;
  const int kt0 = blockIdx.z * per, k_tiles = max(0, min(all_tiles, kt0 + per) - kt0);
  auto w_tile = [&](int stage, int mat) { return smem + stage * C::kStageBytes + mat * C::kWBytes; };
  auto x_tile = [&](int stage) { return reinterpret_cast<__nv_bfloat16*>(smem + stage * C::kStageBytes + C::kMats * C::kWBytes); };

  auto load = [&](int stage, int kt) {
    const int k0 = (kt0 + kt) * BK;
    constexpr int w_chunk = 16 / C::kElem, w_chunks = BK / w_chunk;
#pragma unroll
    for (int j = 0; j < C::kMats; j++) {
      unsigned char* ws = w_tile(stage, j);
      const unsigned char* wg = static_cast<const unsigned char*>(w[j]);
      for (int c = tid; c < C::kRows * w_chunks; c += C::kThreads) {
        const int r = c / w_chunks, cc = c % w_chunks, n = n0 + r, kk = k0 + cc * w_chunk;
        const bool valid = n < N && kk < K;
        mma::cp_async16(ws + (r * C::kWStride + cc * w_chunk) * C::kElem, weight_chunk<INT8>(wg, valid ? n : 0, valid ? kk : 0, K), valid);
      }
    }
    __nv_bfloat16* xs = x_tile(stage);
    constexpr int x_chunks = BK / 8;
    for (int c = tid; c < TN * x_chunks; c += C::kThreads) {
      const int r = c / x_chunks, cc = c % x_chunks, row = row0 + r, kk = k0 + cc * 8;
      const bool valid = row < row_end && kk < K;
      const int src = valid ? (p.a_rows ? p.a_rows[row] : row) : 0;
      mma::cp_async16(xs + r * C::kXStride + cc * 8, p.a + (size_t)src * p.lda + (valid ? kk : 0), valid);
    }
  };

  float acc[C::kMats][TN / 8][4];
#pragma unroll
  for (int j = 0; j < C::kMats; j++)
#pragma unroll
    for (int t = 0; t < TN / 8; t++) acc[j][t][0] = acc[j][t][1] = acc[j][t][2] = acc[j][t][3] = 0.f;

#pragma unroll
  for (int st = 0; st < C::kStages - 1; st++) {
    if (st < k_tiles) load(st, st);
    mma::cp_async_commit();
  }
  for (int kt = 0; kt < k_tiles; kt++) {
    mma::cp_async_wait<C::kStages - 2>();
    __syncthreads();
    const int pre = kt + C::kStages - 1;
    if (pre < k_tiles) load(pre % C::kStages, pre);
    mma::cp_async_commit();
    const int stage = kt % C::kStages;
    const __nv_bfloat16* xs = x_tile(stage);
#pragma unroll
    for (int kk = 0; kk < BK / 16; kk++) {
      uint32_t xb[TN / 8][2];
#pragma unroll
      for (int t = 0; t < TN / 8; t++) mma::ldmatrix_x2(xb[t][0], xb[t][1], xs + (t * 8 + (lane & 7)) * C::kXStride + kk * 16 + ((lane >> 3) & 1) * 8);
#pragma unroll
      for (int j = 0; j < C::kMats; j++) {
        uint32_t a[4];
        if constexpr (INT8) {
          const unsigned char* base = w_tile(stage, j) + (warp * 16 + g) * C::kWStride + kk * 16 + 2 * t4;
          a[0] = mma::i8x2_to_bf16x2(*reinterpret_cast<const uint16_t*>(base));
          a[1] = mma::i8x2_to_bf16x2(*reinterpret_cast<const uint16_t*>(base + 8 * C::kWStride));
          a[2] = mma::i8x2_to_bf16x2(*reinterpret_cast<const uint16_t*>(base + 8));
          a[3] = mma::i8x2_to_bf16x2(*reinterpret_cast<const uint16_t*>(base + 8 * C::kWStride + 8));
        } else {
          const __nv_bfloat16* ws = reinterpret_cast<const __nv_bfloat16*>(w_tile(stage, j));
          mma::ldmatrix_x4(a[0], a[1], a[2], a[3], ws + (warp * 16 + (lane & 15)) * C::kWStride + kk * 16 + (lane >> 4) * 8);
        }
#pragma unroll
        for (int t = 0; t < TN / 8; t++) mma::mma_bf16(acc[j][t], a, xb[t][0], xb[t][1]);
      }
    }
  }
  mma::cp_async_wait<0>();

  // acc[j][t]: rows (output channels) warp*16 + g (+8 for q >= 2), tokens t*8 + 2*t4 (+1 for odd q).
#pragma unroll
  for (int t = 0; t < TN / 8; t++)
#pragma unroll
    for (int q = 0; q < 4; q++)
      store_transposed<MODE, C::kMats>(p, s, acc[0][t][q], acc[C::kMats - 1][t][q], row0 + t * 8 + 2 * t4 + (q & 1), row_end, n0 + warp * 16 + g + (q >= 2 ? 8 : 0));
}

/**
 * Many rows per group on Hopper (prefill, int8 weights): the swapped product outᵀ = W·xᵀ on warpgroup
 * MMAs. Each warpgroup owns 64 output channels (per matrix), whose int8 weights it dequantizes from
 * shared memory into A fragments in registers; the TN tokens of the tile are the B operand, a bf16 tile
 * in shared memory (128-byte swizzle, wgmma.cuh) that the tensor cores read directly, so no warp loads
 * token fragments. WGS warpgroups share each token tile. The k loop is software-pipelined: while the
 * MMAs of k tile t run, the warpgroup dequantizes tile t+1 into the other set of A registers.
 */
template <int MODE, int TN, int WGS, bool WIDE = false, bool MC = false>
struct WgConfig {
  // WIDE (down projection or dense GEMM): each warpgroup covers two 64-channel slots of the one matrix, as
  // the gated GEMM covers gate and up, so that 128 channels share each token tile in one warpgroup.
  static_assert(!WIDE || MODE != GATED, "the gated GEMM has two matrices already");
  static constexpr int kMats = MODE == GATED || WIDE ? 2 : 1;
  static constexpr int kThreads = 128 * WGS, kRows = 64 * WGS, BK = 64, kStages = 4;
  static constexpr int kBlockN = WIDE ? 2 * kRows : kRows;  // output channels per block
  static constexpr int kWStride = BK + 16;  // int8 bytes per weight row in shared memory (16 B pad)
  static constexpr int kXBytes = TN * 128;  // the token tile: 64 bf16 per row, first in a stage (1024-aligned)
  static constexpr int kWBytes = kRows * kWStride;
  static constexpr int kStageBytes = (kXBytes + kMats * kWBytes + 1023) / 1024 * 1024;
  // MC: each stage's token tile arrives by tensor copies counted on its `full` mbarrier; its `empty` one
  // counts the two blocks of the cluster done with it. After the stages, 16 bytes a stage.
  static constexpr int kSmem = kStages * kStageBytes + (MC ? 16 * kStages : 0) + 1024;  // + slack to align the first stage
  // 16-byte chunks each thread copies per k tile: its column chunk is fixed (tid % chunks per row).
  static constexpr int kWChunks = kRows * (BK / 16) / kThreads, kXChunks = TN * (BK / 8) / kThreads;
  static_assert(kWChunks * kThreads == kRows * (BK / 16) && kXChunks * kThreads == TN * (BK / 8), "copy split");
};

template <int MODE, int TN, int WGS, bool F16, bool WIDE = false, bool MC = false>
__global__ void __launch_bounds__(128 * WGS) wgmma_gemm(GemmParams p, const __grid_constant__ CUtensorMap xmap) {
  pdl_enter();
#if defined(JB_WGMMA)
  using C = WgConfig<MODE, TN, WGS, WIDE, MC>;
  constexpr int BK = C::BK, kMats = C::kMats, S = C::kStages;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024 - (mma::smem_addr(smem_raw) & 1023)) & 1023);
  int row0, row_end;
  const void* w[2];
  const float* s[2];
  // MC: the two blocks of a cluster (blockIdx.x 2c and 2c + 1) take one row tile and neighbouring output
  // blocks; each copies half of every token tile into both (multicast), so L2 sends it once for the two.
  int tile, nblk;
  const uint32_t rank = MC ? blockIdx.x & 1 : 0;
  grouped_block(p.tile_group, MC ? blockIdx.x >> 1 : blockIdx.x, MC ? gridDim.x >> 1 : gridDim.x, tile, nblk);
  if constexpr (MC) nblk = 2 * nblk + rank;
  if (!block_tile<WIDE ? 1 : kMats>(p, tile, TN, row0, row_end, w, s)) return;  // both blocks of a cluster, or neither
  const int n0 = nblk * C::kBlockN;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
  const int K = p.k, N = p.n;
  // WIDE: slot 1 is the matrix's rows kRows further on, a whole number of 16-row tile strips (int8_tiles.cuh);
  // its scales are the matrix's, indexed by the full channel as the outputs are.
  int slot_row[2] = {0, 0};
  if constexpr (WIDE) {
    slot_row[1] = C::kRows;
    w[1] = static_cast<const unsigned char*>(w[0]) + (size_t)(C::kRows / kInt8TileRows) * (int8_padded_cols(K) / kInt8TileCols) * kInt8TileBytes;
    s[1] = s[0];
  }
  const int all_tiles = (K + BK - 1) / BK, per = (all_tiles + gridDim.z - 1) / gridDim.z;
  const int kt0 = blockIdx.z * per, k_tiles = max(0, min(all_tiles, kt0 + per) - kt0);
  auto x_tile = [&](int stage) { return smem + stage * C::kStageBytes; };
  auto w_tile = [&](int stage, int mat) { return smem + stage * C::kStageBytes + C::kXBytes + mat * C::kWBytes; };
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + S * C::kStageBytes);
  uint64_t* empty = full + S;
  if constexpr (MC) {
    if (tid == 0) {
#pragma unroll
      for (int st = 0; st < S; st++) {
        mma::mbar_init(&full[st], 1);
        mma::mbar_init(&empty[st], 2);
      }
      tma::fence_barrier_init();
    }
    tma::cluster_sync();  // the partner's barriers are set before anything arrives on them
  }
  // MC, thread 0: this block's half of tile kt's token rows, into stage `stage` of both blocks. Rows past
  // the input and columns past K arrive as zeros; rows past the tile's end are read and never stored.
  auto load_x = [&](int stage, int kt) {
    tma::expect_tx(&full[stage], C::kXBytes);
    tma::load_2d_multicast(x_tile(stage) + rank * (C::kXBytes / 2), &xmap, (kt0 + kt) * BK, row0 + (int)rank * (TN / 2), &full[stage], 0x3);
  };

  // What this thread copies, fixed over the k loop: weight rows tid/4 + i·threads/4 at 16-byte column
  // chunk tid % 4 (their tiled offsets advance 1 KiB per k tile, int8_tiles.cuh), and token rows
  // tid/8 + i·threads/8 at chunk tid % 8. Each copy's source is kept as a 32-bit offset from a base that
  // advances per k tile, so a copy costs one address instruction; a row past the matrix or the tile reads
  // nothing (size 0) from an offset of row 0. Weight tiles are zero-padded to a multiple of 64 columns,
  // so no weight copy checks K; a token chunk past K is zero-filled.
  const int w_cc = tid % (BK / 16), x_cc = tid % (BK / 8);
  auto w_copy_row = [&](int i) { return tid / (BK / 16) + i * (C::kThreads / (BK / 16)); };
  auto x_copy_row = [&](int i) { return tid / (BK / 8) + i * (C::kThreads / (BK / 8)); };
  uint32_t w_off[C::kWChunks];
  bool w_ok[kMats][C::kWChunks];
#pragma unroll
  for (int i = 0; i < C::kWChunks; i++) {
    const int n = n0 + w_copy_row(i);
#pragma unroll
    for (int j = 0; j < kMats; j++) w_ok[j][i] = n + slot_row[j] < N;
    w_off[i] = (uint32_t)int8_tile_offset(w_ok[0][i] ? n : 0, (kt0 * BK) + w_cc * 16, int8_padded_cols(K));
  }
  // Token offsets in elements of a (or a16), below 2^32 (the launcher checks).
  const int x_ld = F16 ? K : p.lda;
  uint32_t x_off[C::kXChunks];
  bool x_ok[C::kXChunks];
#pragma unroll
  for (int i = 0; i < C::kXChunks; i++) {
    const int row = row0 + x_copy_row(i);
    x_ok[i] = row < row_end;
    x_off[i] = (uint32_t)(x_ok[i] ? (p.a_rows ? p.a_rows[row] : row) : 0) * (uint32_t)x_ld + (uint32_t)(kt0 * BK + x_cc * 8);
  }
  auto load = [&](int stage, int kt) {
#pragma unroll
    for (int j = 0; j < kMats; j++) {
      unsigned char* ws = w_tile(stage, j) + w_cc * 16;
      const unsigned char* wg = static_cast<const unsigned char*>(w[j]) + (size_t)kt * kInt8TileBytes;
#pragma unroll
      for (int i = 0; i < C::kWChunks; i++) mma::cp_async16(ws + w_copy_row(i) * C::kWStride, wg + w_off[i], w_ok[j][i]);
    }
    if constexpr (!MC) {  // MC: thread 0 copies token tiles, one k tile later than the weights (step)
      unsigned char* xs = x_tile(stage);
      const bool k_ok = (kt0 + kt) * BK + x_cc * 8 < K;
      const uint16_t* xg = (F16 ? reinterpret_cast<const uint16_t*>(p.a16) : reinterpret_cast<const uint16_t*>(p.a)) + kt * BK;
#pragma unroll
      for (int i = 0; i < C::kXChunks; i++) mma::cp_async16(xs + wgmma::swizzled_chunk(x_copy_row(i), x_cc), xg + x_off[i], x_ok[i] && k_ok);
    }
  };

  // This lane's weight rows in the block: warp w holds rows 16w + g and 16w + g + 8 (warp w % 4 of
  // warpgroup w / 4, whose 64 rows start at 64·(w / 4)).
  const int w_row = warp * 16 + g;
  using AFrags = uint32_t[kMats][BK / 16][4];
  auto dequantize = [&](int stage, AFrags& a) {
#pragma unroll
    for (int j = 0; j < kMats; j++) {
      const unsigned char* base = w_tile(stage, j) + w_row * C::kWStride + 2 * t4;
#pragma unroll
      for (int kk = 0; kk < BK / 16; kk++) {
        const uint32_t two[4] = {*reinterpret_cast<const uint16_t*>(base + kk * 16), *reinterpret_cast<const uint16_t*>(base + 8 * C::kWStride + kk * 16),
                                 *reinterpret_cast<const uint16_t*>(base + kk * 16 + 8), *reinterpret_cast<const uint16_t*>(base + 8 * C::kWStride + kk * 16 + 8)};
#pragma unroll
        for (int i = 0; i < 4; i++) a[j][kk][i] = F16 ? mma::i8x2_to_f16x2(two[i]) : mma::i8x2_to_bf16x2(two[i]);
      }
    }
  };

  float acc[kMats][TN / 2];  // set by the first MMAs (which ignore its old value), or zeroed below

  // One k tile: its MMAs (A in `cur`) start; once the previous tile's MMAs are done, every warpgroup
  // has left the stage that the next load overwrites; then tile kt+1 is dequantized into `next` while
  // this tile's MMAs run. Groups of cp.async: one per tile, S - 1 ahead.
  auto step = [&](int kt, AFrags& cur, AFrags& next) {
    const uint32_t xs = mma::smem_addr(x_tile(kt % S));
    if constexpr (MC) mma::mbar_wait(&full[kt % S], (kt / S) & 1);
    wgmma::fence();
#pragma unroll
    for (int kk = 0; kk < BK / 16; kk++)
#pragma unroll
      for (int j = 0; j < kMats; j++) wgmma::mma<TN, F16>(acc[j], cur[j][kk], wgmma::b_desc(xs, kk), kt > 0 || kk > 0);
    wgmma::commit();
    wgmma::wait<1>();
    if (kt + 1 < k_tiles) {
      mma::cp_async_wait<S - 3>();
      wgmma::fence_shared();
      __syncthreads();
      // MC: every warpgroup is done with tile kt - 1 (each waited for its MMAs before the barrier), which
      // both blocks' `empty` count. A token tile lands in both blocks, so its stage is refilled only once
      // the partner is done with it too; waiting for that one step later than this block's own release
      // (tile kt + S - 2 into the stage of tile kt - 2) leaves the partner a step of slack instead of
      // holding the two blocks in lockstep. The arrivals and the wait are at the CTA's scope, as a consumer's
      // release is in CUTLASS's cluster pipelines: the MMAs that read the stage are complete (waited for before
      // the barrier), so there is no read left to order, and a release or acquire at cluster scope fences memory
      // on every k tile (ncu: "Stall Membar" a sixth of each warp's cycles; the pairs ran ~1.6x slower with it).
      if (MC && tid == 0 && kt > 0) {
        tma::arrive_cluster(&empty[(kt - 1) % S], 0);
        tma::arrive_cluster(&empty[(kt - 1) % S], 1);
        if (kt + S - 2 < k_tiles) {
          if (kt >= 2) mma::mbar_wait(&empty[(kt - 2) % S], ((kt - 2) / S) & 1);
          load_x((kt + S - 2) % S, kt + S - 2);
        }
      }
      if (kt + S - 1 < k_tiles) load((kt + S - 1) % S, kt + S - 1);
      mma::cp_async_commit();
      dequantize((kt + 1) % S, next);
    }
  };

#pragma unroll
  for (int st = 0; st < S - 1; st++) {
    if (st < k_tiles) {
      load(st, st);
      if (MC && tid == 0) load_x(st, st);
    }
    mma::cp_async_commit();
  }
  AFrags a0, a1;
  if (k_tiles > 0) {
    mma::cp_async_wait<S - 2>();
    wgmma::fence_shared();
    __syncthreads();
    dequantize(0, a0);
  }
  for (int kt = 0; kt < k_tiles; kt += 2) {
    step(kt, a0, a1);
    if (kt + 1 < k_tiles) step(kt + 1, a1, a0);
  }
  wgmma::wait<0>();
  if constexpr (MC) tma::cluster_sync();  // no arrival or copy reaches this block's shared memory after it exits
  if (k_tiles == 0) {  // a K slice past the end: its partial sums are zero
#pragma unroll
    for (int j = 0; j < kMats; j++)
#pragma unroll
      for (int i = 0; i < TN / 2; i++) acc[j][i] = 0.f;
  }
  mma::cp_async_wait<0>();

  // acc[j][4·o + q]: channel w_row (+8 for q >= 2) of matrix (or WIDE: slot) j, token 8·o + 2·t4 (+1 for
  // odd q): mma's C layout. The lane's four channels and their scales are fixed; each row's factors
  // (F16: the inverse of its input scale, sums of rows scaled by powers of two, GemmParams::a16; the
  // routing weight) are read once for its two channels.
  float scale[kMats][2];
  bool n_ok[kMats][2];
#pragma unroll
  for (int j = 0; j < kMats; j++)
#pragma unroll
    for (int hi = 0; hi < 2; hi++) {
      const int n = n0 + w_row + 8 * hi + slot_row[j];
      n_ok[j][hi] = n < N;
      scale[j][hi] = s[j] && n_ok[j][hi] ? s[j][n] : 1.f;
    }
#pragma unroll
  for (int o = 0; o < TN / 8; o++)
#pragma unroll
    for (int odd = 0; odd < 2; odd++) {
      const int row = row0 + o * 8 + 2 * t4 + odd;
      if (row >= row_end) continue;
      float f;
      const int out_row = output_row<MODE>(p, row, f);
      if constexpr (F16) f *= p.a_inv_scale[p.a_rows ? p.a_rows[row] : row];
#pragma unroll
      for (int hi = 0; hi < 2; hi++) {
        const int q = odd + 2 * hi, n = n0 + w_row + 8 * hi;
        if constexpr (WIDE) {
#pragma unroll
          for (int j = 0; j < 2; j++)
            if (n_ok[j][hi]) store_scaled<MODE>(p, acc[j][4 * o + q] * f * scale[j][hi], 0.f, out_row, n + slot_row[j]);
        } else if (n_ok[0][hi]) {
          store_scaled<MODE>(p, acc[0][4 * o + q] * f * scale[0][hi], acc[kMats - 1][4 * o + q] * f * scale[kMats - 1][hi], out_row, n);
        }
      }
    }
#else
  __trap();  // launched only on sm_90 (use_wgmma)
#endif
}

/** 16 bytes of weights that are read once: not kept in L1; PREFETCH asks L2 for the whole 256-byte block. */
template <bool PREFETCH = false>
__device__ __forceinline__ uint4 load_streamed(const void* p) {
  uint4 r;
  if constexpr (PREFETCH)
    asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];\n" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
  else
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
  return r;
}

__device__ __forceinline__ uint32_t word(const uint4& v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }

/**
 * Few rows per group with int8 weights (decode): a weight-streaming kernel. Each warp owns 16 output
 * channels (per matrix), whose tiles (int8_tiles.cuh) are one contiguous run along K: it reads them
 * straight into registers with fully coalesced 16-byte loads, kBatch k-blocks in flight, with no shared
 * memory and no barriers; the (at most TN) tokens of its tile come through L1. In each 64-wide k-block,
 * lane (g, t4) holds k = 16·t4 … 16·t4+15 of rows g and g+8, and mma step j uses its bytes 4j … 4j+3 as
 * the mma's k {2t4, 2t4+1, 2t4+8, 2t4+9}: K is permuted inside the block, and the tokens' values are read
 * with the same permutation, so every dot product is unchanged. Grid: (tiles, row blocks, K splits),
 * tiles fastest so that the tiles of one expert read its rows while they are in L2.
 *
 * ptxas places a batch's loads next to their first use (the gated GEMM at 8 rows: 64 registers, 4 of the
 * batch's 24 loads issued before its first mma), so a warp has less in flight than the batch. PIPE
 * holds two batches in registers and issues the next one's loads before this one is computed, which keeps
 * them together (all 24 loads of a batch of 4 ahead of the mma): the default (streamed_pipe below).
 */
template <int MODE, int TN, int WARPS, int BATCH, bool PREFETCH, bool CONVERT, bool F16, bool PIPE = false>
__global__ void __launch_bounds__(32 * WARPS) streamed_gemm(GemmParams p) {
  constexpr int kMats = MODE == GATED ? 2 : 1, kOct = TN / 8, kBatch = BATCH;
  constexpr bool kBlockScales = F16 && MODE == DOWN;  // GemmParams::a_inv_scale
  int row0, row_end;
  const void* w[2];
  const float* s[2];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
  const int K = p.k, N = p.n;
  const int n_base = (blockIdx.y * WARPS + warp) * 16;
  const int k_blocks = int8_padded_cols(K) / kInt8TileCols, per = (k_blocks + gridDim.z - 1) / gridDim.z;
  const int kb0 = blockIdx.z * per, kb1 = min(k_blocks, kb0 + per);
  if (p.known_expert >= 0 && blockIdx.x == 0 && n_base < N && kb0 < kb1 && lane % 8 == 0) {
    // A dense MLP: the warp's first k-block heads for L2 while the kernel before finishes.
#pragma unroll
    for (int j = 0; j < kMats; j++) {
      const unsigned char* tile =
          static_cast<const unsigned char*>(expert_weight(p, p.known_expert, j)) + ((size_t)(n_base / kInt8TileRows) * k_blocks + kb0) * kInt8TileBytes + lane * 16;
      prefetch_l2(tile);
      prefetch_l2(tile + 512);
    }
  }
  pdl_enter();
  if (!block_tile<kMats>(p, blockIdx.x, TN, row0, row_end, w, s)) return;
  if (n_base >= N) return;
  // This warp's 16 rows are one run of tiles along K (int8_tiles.cuh); the lane's bytes of rows g and
  // g+8 are at lane·16 in the two halves of each tile.
  const unsigned char* w_run[kMats];
#pragma unroll
  for (int j = 0; j < kMats; j++) w_run[j] = static_cast<const unsigned char*>(w[j]) + (size_t)(n_base / kInt8TileRows) * k_blocks * kInt8TileBytes + lane * 16;
  const uint16_t* x_row[kOct];  // bf16 or, with F16, fp16 bits
  bool x_ok[kOct];
#pragma unroll
  for (int o = 0; o < kOct; o++) {
    const int row = row0 + o * 8 + g;
    x_ok[o] = row < row_end;
    const size_t src = x_ok[o] ? (p.a_rows ? p.a_rows[row] : row) : 0;
    x_row[o] = F16 ? reinterpret_cast<const uint16_t*>(p.a16 + src * K) : reinterpret_cast<const uint16_t*>(p.a + src * p.lda);
  }

  float acc[kMats][kOct][4];
#pragma unroll
  for (int j = 0; j < kMats; j++)
#pragma unroll
    for (int o = 0; o < kOct; o++) acc[j][o][0] = acc[j][o][1] = acc[j][o][2] = acc[j][o][3] = 0.f;

  // kBlockScales: this lane's C columns are tokens 2·t4 and 2·t4 + 1 of each octet; their rows' scales.
  const float* inv_row[kOct][2];
  if constexpr (kBlockScales) {
#pragma unroll
    for (int o = 0; o < kOct; o++)
#pragma unroll
      for (int c = 0; c < 2; c++) {
        const int row = row0 + o * 8 + 2 * t4 + c;
        inv_row[o][c] = p.a_inv_scale + (size_t)(row < row_end ? row : row0) * k_blocks;  // past the tile: discarded
      }
  }

  const uint4 zero = make_uint4(0, 0, 0, 0);
  using WBatch = uint4[kBatch][kMats][2];
  using XBatch = uint4[kBatch][kOct][2];
  // The weights and tokens of k-blocks kb … kb + kBatch − 1 (zero past the slice: no loads issued).
  auto load_batch = [&](int kb, WBatch& wv, XBatch& xv) {
#pragma unroll
    for (int u = 0; u < kBatch; u++) {
      const int k = (kb + u) * 64 + t4 * 16;
      const bool in_split = kb + u < kb1;
#pragma unroll
      for (int j = 0; j < kMats; j++) {
        const unsigned char* tile = w_run[j] + (size_t)(kb + u) * kInt8TileBytes;
        wv[u][j][0] = in_split ? load_streamed<PREFETCH>(tile) : zero;
        wv[u][j][1] = in_split ? load_streamed<PREFETCH>(tile + 512) : zero;
      }
#pragma unroll
      for (int o = 0; o < kOct; o++) {
        // Columns past K are zero in the weights' padding; the tokens' rows end at K (K % 16 == 0, so
        // a 16-wide chunk is all in or all out).
        const bool ok = in_split && k < K && x_ok[o];
        xv[u][o][0] = ok ? __ldg(reinterpret_cast<const uint4*>(x_row[o] + k)) : zero;
        xv[u][o][1] = ok ? __ldg(reinterpret_cast<const uint4*>(x_row[o] + k + 8)) : zero;
      }
    }
  };
  auto compute_batch = [&](int kb, const WBatch& wv, const XBatch& xv) {
#pragma unroll
    for (int u = 0; u < kBatch; u++) {
      // kBlockScales: the k-block's sums apart, then scaled into acc (1 / scale: a power of two, exact).
      float part[kMats][kOct][4];
      float(&sums)[kMats][kOct][4] = kBlockScales ? part : acc;
      if constexpr (kBlockScales) {
#pragma unroll
        for (int j = 0; j < kMats; j++)
#pragma unroll
          for (int o = 0; o < kOct; o++) part[j][o][0] = part[j][o][1] = part[j][o][2] = part[j][o][3] = 0.f;
      }
#pragma unroll
      for (int step = 0; step < 4; step++)
#pragma unroll
        for (int j = 0; j < kMats; j++) {
          const uint32_t lo = word(wv[u][j][0], step), hi = word(wv[u][j][1], step);
          // a = {row g k 0-1, row g+8 k 0-1, row g k 2-3, row g+8 k 2-3} of the lane's four bytes per row.
          // CONVERT false feeds the raw bytes (wrong results): tools/gpu/moe_microbench.cu times the
          // dequantization's share that way.
          uint32_t a[4] = {lo, hi, lo >> 16, hi >> 16};
          if constexpr (CONVERT && F16) {
            mma::i8x4_to_f16x2x2(lo, a[0], a[2]);
            mma::i8x4_to_f16x2x2(hi, a[1], a[3]);
          } else if constexpr (CONVERT) {
            mma::i8x4_to_bf16x2x2(lo, a[0], a[2]);
            mma::i8x4_to_bf16x2x2(hi, a[1], a[3]);
          }
#pragma unroll
          for (int o = 0; o < kOct; o++) {
            const uint32_t b0 = word(xv[u][o][step / 2], (step % 2) * 2), b1 = word(xv[u][o][step / 2], (step % 2) * 2 + 1);
            mma::mma_16816<F16>(sums[j][o], a, b0, b1);
          }
        }
      if constexpr (kBlockScales) {
        const int blk = min(kb + u, k_blocks - 1);  // past the slice the weights were zero
#pragma unroll
        for (int o = 0; o < kOct; o++) {
          const float inv0 = __ldg(inv_row[o][0] + blk), inv1 = __ldg(inv_row[o][1] + blk);
#pragma unroll
          for (int j = 0; j < kMats; j++)
#pragma unroll
            for (int q = 0; q < 4; q++) acc[j][o][q] += part[j][o][q] * (q & 1 ? inv1 : inv0);
        }
      }
    }
  };
  if constexpr (PIPE) {
    // Two batches in registers: the next one's loads fly while this one is computed.
    WBatch wa, wb;
    XBatch xa, xb;
    if (kb0 < kb1) load_batch(kb0, wa, xa);
    for (int kb = kb0; kb < kb1; kb += 2 * kBatch) {
      load_batch(kb + kBatch, wb, xb);
      compute_batch(kb, wa, xa);
      if (kb + kBatch >= kb1) break;
      load_batch(kb + 2 * kBatch, wa, xa);
      compute_batch(kb + kBatch, wb, xb);
    }
  } else {
    for (int kb = kb0; kb < kb1; kb += kBatch) {
      WBatch wv;
      XBatch xv;
      load_batch(kb, wv, xv);
      compute_batch(kb, wv, xv);
    }
  }

#pragma unroll
  for (int o = 0; o < kOct; o++)
#pragma unroll
    for (int q = 0; q < 4; q++) {
      const int row = row0 + o * 8 + 2 * t4 + (q & 1);
      // F16 with a scale per row: the sums are of the scaled rows; 1 / scale is a power of two, so exact.
      const float inv = F16 && !kBlockScales && row < row_end ? p.a_inv_scale[p.a_rows ? p.a_rows[row] : row] : 1.f;
      store_transposed<MODE, kMats>(p, s, acc[0][o][q] * inv, acc[kMats - 1][o][q] * inv, row, row_end, n_base + g + (q >= 2 ? 8 : 0));
    }
}

// More k-blocks in flight where fewer tokens leave registers free (this regime is bound by weight bytes).
constexpr int streamed_batch(int tn) { return tn == 8 ? 4 : 2; }

template <int MODE, int TN, bool F16 = false, int WARPS = 4, int BATCH = streamed_batch(TN), bool PREFETCH = true, bool CONVERT = true, bool PIPE = false>
int launch_streamed(const GemmParams& p, int tiles, int splits) {
  return launch_pdl("grouped gemm (streamed)", streamed_gemm<MODE, TN, WARPS, BATCH, PREFETCH, CONVERT, F16, PIPE>, dim3(tiles, ceil_div(p.n, 16 * WARPS), splits),
                    32 * WARPS, 0, p);
}

/**
 * Two batches in registers (PIPE), the whole batch each: the default. H100, same call (2026-12-07): the MoE
 * at 8 tokens 617 against 634 µs with one batch, other counts within 0.5%; decode device time at batch 8
 * 15.18 against 15.32 ms, batch 1 and 64 unchanged. It passed the op conformance at both profiles and the HF
 * fixtures (2026-12-07, H100). Its case is the H200, whose faster memory needs more in flight.
 * JAMBA_MOE_STREAMED_PIPE=off|half overrides: one batch, or two of half the batch (for comparison).
 */
int streamed_pipe() {
  static const int pipe = env_is("JAMBA_MOE_STREAMED_PIPE", "off") ? 0 : env_is("JAMBA_MOE_STREAMED_PIPE", "half") ? 1 : 2;
  return pipe;
}

template <int MODE, int TN, bool F16, int WARPS = 4>
int launch_streamed_piped(const GemmParams& p, int tiles, int splits) {
  constexpr int kBatch = streamed_batch(TN);
  if (streamed_pipe() == 1) return launch_streamed<MODE, TN, F16, WARPS, kBatch / 2, true, true, true>(p, tiles, splits);
  if (streamed_pipe() == 2) return launch_streamed<MODE, TN, F16, WARPS, kBatch, true, true, true>(p, tiles, splits);
  return launch_streamed<MODE, TN, F16, WARPS>(p, tiles, splits);
}

/**
 * Warps per block of the streamed down projection in 16-row tiles: 4, or 8 with
 * JAMBA_MOE_STREAMED_DOWN_WARPS=8. The warps of a block read the same token rows through L1, and the
 * down projection reads 2 KiB of them per 1 KiB of weights each k-block (the gated GEMM 1 per 1): at 64
 * tokens on an H100 the down ran at 2.80 TB/s against the gated GEMM's 3.04 (ncu). Measured: the MoE at 64
 * tokens 997 µs with 8 against 995–997 with 4 (H100, 2026-12-06), so 4 stays; kept as a switch for sweeps.
 */
int streamed_down_warps() {
  static const int warps = env_is("JAMBA_MOE_STREAMED_DOWN_WARPS", "8") ? 8 : 4;
  return warps;
}

template <int MODE, int TN>
int launch_streamed(bool f16, const GemmParams& p, int tiles, int splits) {
  if constexpr (MODE == DOWN && TN == 16)
    if (streamed_down_warps() == 8) return f16 ? launch_streamed_piped<MODE, TN, true, 8>(p, tiles, splits) : launch_streamed_piped<MODE, TN, false, 8>(p, tiles, splits);
  return f16 ? launch_streamed_piped<MODE, TN, true>(p, tiles, splits) : launch_streamed_piped<MODE, TN, false>(p, tiles, splits);
}

/**
 * The most K slices of the streamed kernel: 16 for a single row tile (a dense MLP of up to 16 rows, whose
 * few output warps must spread further: 1 token 80.5 → 70.6 µs, 16 tokens 97.0 → 88.2), 8 otherwise (MoE at
 * 1 token, two tiles: 121 µs with 8, 130 with 16). geometry.ts sizes the partial sums for 16 slices up to 16
 * pairs. JAMBA_MOE_STREAMED_SPLITS=8 caps single tiles at 8 too (for comparison).
 */
int streamed_split_cap(int tiles) {
  static const bool eight = env_is("JAMBA_MOE_STREAMED_SPLITS", "8");
  return tiles == 1 && !eight ? 16 : 8;
}

/**
 * Which int8 kernels take fp16 inputs scaled per row or block (int8 → fp16 takes 3 instructions per pair
 * of weights against 4 to bf16, mma.cuh): 0 none, 1 the streamed kernel, 2 the wgmma kernel's MoE gated
 * GEMM too. 1: at prefill sizes the fp16 copy of x costs the align kernel more than the instruction saves
 * (H100, 2026-12-06, same machine, three rounds, MoE at 1024 / 4096 tokens 2004–2009 / 6544–6691 µs
 * against 2046–2052 / 6748–6873 with 2; prefill 4K 16.8–17.1K against 16.8K tok/s; 8–256 tokens within
 * 3 µs). JAMBA_MOE_F16=0|streamed|all overrides (for comparison).
 */
int f16_kernels() {
  static const int level = env_is("JAMBA_MOE_F16", "0") ? 0 : env_is("JAMBA_MOE_F16", "all") ? 2 : 1;
  return level;
}

/**
 * The largest token tile whose streamed down projection reads fp16 h (scaled per 64 channels, each
 * k-block's sums apart, a cost that grows with the tile): 8 (Mini decode at batch 16 14.56 ms against
 * 14.69 with 16, its dense MLPs at 16 rows 87 against 93 µs; at 32 rows 110 against 134).
 * JAMBA_MOE_F16_DOWN_ROWS=0|8|16|32 overrides (for comparison).
 */
int f16_down_rows() {
  static const int rows = [] {
    const char* v = getenv("JAMBA_MOE_F16_DOWN_ROWS");
    return v ? std::atoi(v) : 8;
  }();
  return rows;
}

/** The streamed kernel for int8 weights at few rows per group; JAMBA_MOE_DECODE_KERNEL=swapped picks the older one (for comparison). */
bool use_streamed() {
  static const bool streamed = !env_is("JAMBA_MOE_DECODE_KERNEL", "swapped");
  return streamed;
}

template <bool INT8, int MODE, int TN, int WARPS = 4>
int launch_swapped(const GemmParams& p, int tiles, int splits) {
  using C = SwapConfig<INT8, MODE, TN, WARPS>;
  auto kernel = swapped_gemm<INT8, MODE, TN, WARPS>;
  if (allow_smem<swapped_gemm<INT8, MODE, TN, WARPS>>(C::kSmem) != 0) return -1;
  return launch_pdl("grouped gemm (swapped)", kernel, dim3(ceil_div(p.n, C::kRows), tiles, splits), C::kThreads, C::kSmem, p);
}

/**
 * The warpgroup-MMA kernel for int8 weights where it runs (sm_90), from 64 rows per group on (Mini,
 * ExpertsInt8, against the swapped mma.sync kernel: MoE at 4096 tokens 7.45 against 12.45 ms, 1024
 * tokens 2.43 against 3.97; dense MLP at 4096 3.34 against 5.87 ms, at 64 tokens 127 against 185 µs).
 * JAMBA_MOE_PREFILL_KERNEL=swapped|large keeps the mma.sync kernels (for comparison).
 */
bool use_wgmma() {
  static const bool on = sm_version() == 90 && !env_is("JAMBA_MOE_PREFILL_KERNEL", "swapped") && !env_is("JAMBA_MOE_PREFILL_KERNEL", "large");
  return on;
}

/** `groups` of the wgmma launchers: 1 or 2 warpgroups a block, or this: one warpgroup over two 64-channel slots (WgConfig's WIDE). */
constexpr int kWideWarpgroup = -1;

/**
 * `groups` of the wgmma launchers: blocks in clusters of two, on neighbouring output blocks, sharing each
 * token tile by multicast tensor copies (WgConfig's MC); two warpgroups a block for the down projection,
 * one (gate and up) for the gated GEMM, whose input rows are first gathered in sorted order (gather_rows).
 */
constexpr int kMulticastPair = -2;

/**
 * Warpgroups per block of the wgmma kernel (64 output channels each, sharing the block's token tile).
 * One (per block of a pair at an MoE's 128-token tiles, below): two blocks share an SM and overlap each other's barriers (Mini,
 * ExpertsInt8: MoE at 4096 tokens 7.45 against 7.60 ms with two, dense MLP 3.34 against 3.48 ms, at 128
 * tokens 138 against 182 µs; MoE at 256 tokens 1150 against 1300 µs). Two for a dense MLP's 64-token
 * tile, whose every k step otherwise reads as many token bytes as weight bytes (H100, 2026-12-06, dense
 * MLP at 48 / 64 tokens: 113 / 115 µs with two and the gated GEMM unsplit, against 127 / 137 before).
 * An MoE's 128-token tiles (and then its tail tiles) in multicast pairs (kMulticastPair), with the down
 * projection's (wgmma_down_groups): each token tile crosses L2 once for two blocks, which L2's output to the
 * SMs bounds (ncu, twenty-fourth session). H100, 2026-12-07, µs, three rounds, default before / pairs: MoE at
 * 1024 tokens 2000–2007 / 1981–1987, at 4096 6535–6640 / 6313–6386; at 256 (64-row tiles) 1155–1158 against
 * 1173–1175 in pairs, so not there. JAMBA_WGMMA_GROUPS=1|2|mc forces it (for comparison; with
 * JAMBA_WGMMA_DOWN_GROUPS=2, `1` is the plan before pairs at 128-row tiles).
 */
int wgmma_groups(int tn, int experts) {
  static const int forced = env_is("JAMBA_WGMMA_GROUPS", "2") ? 2 : env_is("JAMBA_WGMMA_GROUPS", "1") ? 1 : env_is("JAMBA_WGMMA_GROUPS", "mc") ? kMulticastPair : 0;
  if (tn != 64 && tn != 128) return 1;
  if (forced) return forced;
  if (tn == 128 && experts > 1) return kMulticastPair;
  return tn == 64 && experts == 1 ? 2 : 1;
}

/** Output channels per block of the wgmma kernel for `groups` (wgmma_groups, kWideWarpgroup, kMulticastPair). */
inline int wgmma_block_channels(int groups) { return groups == kWideWarpgroup || groups == kMulticastPair ? 128 : 64 * groups; }

/**
 * Warpgroups per block of the wgmma kernel's down projection, or kWideWarpgroup. Its k tiles copy 16 KiB
 * of h per 4 KiB of weights when one warpgroup covers 64 channels; sharing each token tile among 128
 * channels halves that. At 128-row tiles two warpgroups a block (127 registers a thread: still two blocks
 * an SM), at 64-row tiles of an MoE one warpgroup over two 64-channel slots (`wide`, the gated GEMM's
 * registers); a dense MLP's 64-row tile already takes two (wgmma_groups). H100, 2026-12-06, µs, same
 * machine, two rounds, one warpgroup / two / wide: MoE at 1024 tokens 2366–2391 / 2204–2223 / 2267–2271,
 * at 4096 7700–7760 / 6981–7127 / 6912–6967, at 256 (64-row tiles) 1177 / 1187–1192 / 1160–1164; dense MLP
 * at 256 / 1024 / 4096 rows 275 / 891–928 / 3403–3440 against 252–254 / 833–857 / 3055–3095 with two, and
 * at 64 rows 120 with two against 132 wide; prefill 4K / 32K 15452 / 15332 → 16694 / 16389 tok/s; decode
 * unchanged; four warpgroups at 128-row tiles: MoE at 4096 tokens 6650–6683 against 6519–6530 µs (H100, 2026-12-06).
 * An MoE's 128-row tiles in multicast pairs, as its gated GEMM's (wgmma_groups; alone, at 4096 tokens 6458 µs
 * against 6535–6579 for two warpgroups and 6313–6386 with both GEMMs in pairs, H100, 2026-12-07).
 * JAMBA_WGMMA_DOWN_GROUPS=1|2|4|wide|mc forces one (for comparison; mc: kMulticastPair).
 */
int wgmma_down_groups(int tn, int experts) {
  static const int forced = env_is("JAMBA_WGMMA_DOWN_GROUPS", "mc")     ? kMulticastPair
                            : env_is("JAMBA_WGMMA_DOWN_GROUPS", "4")    ? 4
                            : env_is("JAMBA_WGMMA_DOWN_GROUPS", "2")    ? 2
                            : env_is("JAMBA_WGMMA_DOWN_GROUPS", "1")    ? 1
                            : env_is("JAMBA_WGMMA_DOWN_GROUPS", "wide") ? kWideWarpgroup
                                                                        : 0;
  if (tn != 64 && tn != 128) return 1;
  if (forced == 4 && tn != 128) return 2;  // four warpgroups only over 128-row tiles
  if (forced) return forced;
  if (tn == 128) return experts > 1 ? kMulticastPair : 2;
  return experts == 1 ? wgmma_groups(tn, experts) : kWideWarpgroup;
}

template <int MODE, int TN, int WGS, bool F16, bool WIDE = false, bool MC = false>
int launch_wgmma_groups(const GemmParams& p, int tiles, int splits) {
  using C = WgConfig<MODE, TN, WGS, WIDE, MC>;
  auto kernel = wgmma_gemm<MODE, TN, WGS, F16, WIDE, MC>;
  if (allow_smem<wgmma_gemm<MODE, TN, WGS, F16, WIDE, MC>>(C::kSmem) != 0) return -1;
  // The kernel keeps token offsets in 32 bits; the rows it reads are below tiles · TN.
  if ((uint64_t)tiles * TN * std::max(p.lda, p.k) + p.k >= (1ull << 32)) return fail("grouped gemm (wgmma): input rows past 32-bit element offsets");
  int blocks_x = ceil_div(p.n, C::kBlockN);
  CUtensorMap xmap{};
  if constexpr (MC) {
    // The token tiles by tensor copies: the input's rows in order (h, [pairs, K]), in boxes of half a tile.
    if (p.a_rows != nullptr || !tma::encode_bf16_2d(&xmap, p.a, p.k, p.pairs, (uint64_t)p.lda * 2, 64, TN / 2))
      return fail("grouped gemm (wgmma): no tensor map over its input rows");
    blocks_x += blocks_x & 1;  // whole clusters; a block past N copies its half and stores nothing
  }
  return launch_pdl_clustered("grouped gemm (wgmma)", MC ? 2 : 1, kernel, dim3(blocks_x, tiles, splits), C::kThreads, C::kSmem, p, xmap);
}

/** F16 (the gated GEMM only: its input rows come scaled per row from the align kernel) reads p.a16. */
template <int MODE, int TN, bool F16>
int launch_wgmma(const GemmParams& p, int tiles, int splits, int groups) {
  if constexpr (!F16)
    if (groups == kMulticastPair) return launch_wgmma_groups<MODE, TN, MODE == GATED ? 1 : 2, F16, false, true>(p, tiles, splits);
  if constexpr (MODE != GATED && !F16) {
    if (groups == kWideWarpgroup) return launch_wgmma_groups<MODE, TN, 1, F16, true>(p, tiles, splits);
    if constexpr (TN == 128)
      if (groups == 4) return launch_wgmma_groups<MODE, TN, 4, F16>(p, tiles, splits);
  }
  if (groups == 2) return launch_wgmma_groups<MODE, TN, 2, F16>(p, tiles, splits);
  return launch_wgmma_groups<MODE, TN, 1, F16>(p, tiles, splits);
}

template <int MODE, int TN>
int launch_wgmma(bool f16, const GemmParams& p, int tiles, int splits, int groups) {
  if constexpr (MODE == GATED)
    if (f16) return launch_wgmma<MODE, TN, true>(p, tiles, splits, groups);
  return launch_wgmma<MODE, TN, false>(p, tiles, splits, groups);
}

/**
 * Larger M (prefill): 128 rows × 64 outputs per matrix, 8 warps, activations as the mma's A operand. The
 * int8 down projection (one matrix, K = ffn) takes 128 outputs in 2 × 4 warps: 4.5 against 6.6 ms at
 * 4096 tokens (Mini, tools/gpu/moe_microbench.cu); the gated GEMM was fastest in this shape.
 */
template <bool INT8, int MODE>
using LargeGemm = std::conditional_t<INT8 && MODE == DOWN, GemmConfig<INT8, MODE, 128, 128, 64, 2, 4, 3>, GemmConfig<INT8, MODE, 128, 64, 64, 4, 2, 3>>;

template <bool INT8, int MODE, int BM, int BN, int BK, int WM, int WN, int STAGES>
int launch_gemm(const GemmParams& p, int tiles, int splits, GemmConfig<INT8, MODE, BM, BN, BK, WM, WN, STAGES>) {
  using C = GemmConfig<INT8, MODE, BM, BN, BK, WM, WN, STAGES>;
  auto kernel = grouped_gemm<INT8, MODE, BM, BN, BK, WM, WN, STAGES>;
  if (allow_smem<grouped_gemm<INT8, MODE, BM, BN, BK, WM, WN, STAGES>>(C::kSmem) != 0) return -1;
  if (MODE == DENSE && splits != 1) return fail("grouped gemm: a dense GEMM cannot split K");
  dim3 grid(ceil_div(p.n, C::kBN), tiles, splits);
  return launch_pdl("grouped gemm", kernel, grid, C::kThreads, C::kSmem, p);
}

/**
 * Rows per tile for `avg_rows` rows per group: the swapped kernel's token tile, or 128 for the prefill
 * kernels (64 on the wgmma kernel when the groups average at most 64 rows, `wide64`).
 */
inline int tile_rows(int avg_rows, bool wide64 = false) {
  if (avg_rows <= 8) return 8;
  if (avg_rows <= 16) return 16;
  if (avg_rows <= 32) return 32;
  return wide64 && avg_rows <= 64 ? 64 : 128;
}

/**
 * The token tile of MoE GEMMs with int8 weights: above the mean rows per expert, because routing is
 * uneven and an expert whose rows spill into a second tile streams its weights twice (64 tokens, 8 per
 * expert: tile 16 565 µs gated / 341 down against tile 8 655 / 440, tools/gpu/moe_microbench.cu). On
 * Hopper (`wide64`), 25-48 rows per expert take the wgmma kernel's 64-row tile (Mini, 256 tokens: 1117
 * against 1346 µs with 32-row streamed tiles; at 128 tokens the 16-row tile wins, 981 against 1095).
 */
inline int streamed_tile_rows(int avg_rows, bool wide64) {
  if (avg_rows < 8) return 8;
  if (avg_rows < 16) return 16;
  if (wide64 && avg_rows > 24 && avg_rows <= 48) return 64;
  return avg_rows <= 32 ? 32 : 128;
}

/**
 * 128-token tiles (prefill) without wgmma (sm_80, or JAMBA_MOE_PREFILL_KERNEL=swapped) run on the swapped
 * kernel with 8 warps: each weight is dequantized once per block, in registers, with no barrier between
 * dequantization and the mma, against the large kernel's bf16 tile in shared memory (Mini, ExpertsInt8:
 * MoE at 4096 tokens 12.8 against 14.0 ms, 1024 tokens 4.86 against 5.26; dense MLP at 4096 5.86 against
 * 6.39). JAMBA_MOE_PREFILL_KERNEL=large picks the large kernel (for comparison).
 */
bool use_swapped_prefill() {
  static const bool swapped = !env_is("JAMBA_MOE_PREFILL_KERNEL", "large");
  return swapped;
}

/** Tail tiles for 128-row tiles (wgmma only); JAMBA_MOE_TAIL_TILES=0 turns them off (for comparison). */
bool use_tail_tiles() {
  static const bool on = !env_is("JAMBA_MOE_TAIL_TILES", "0");
  return on;
}

/**
 * The grid's row tiles: a bound on the tiles align_kernel makes, which it cannot tell the host. The m
 * experts with rows take Σ ⌈n_e / bm⌉ ≤ (pairs + m·(bm − 1)) / bm tiles, that is ⌊(pairs − m) / bm⌋ + m, which
 * grows with m ≤ min(experts, pairs). The bound before, ⌈pairs / bm⌉ + experts, launched 15 empty blocks for
 * every 2 that work in a 1-token MoE of 16 experts (and one of two in a 1-row dense MLP): each is scheduled,
 * waits on the kernel before (PDL) and exits. JAMBA_MOE_TILE_BOUND=experts restores it (for comparison).
 */
int row_tile_bound(int pairs, int experts, int bm) {
  static const bool loose = env_is("JAMBA_MOE_TILE_BOUND", "experts");
  const int m = std::min(experts, pairs);
  return loose ? ceil_div(pairs, bm) + experts : (pairs - m) / bm + m;
}

/** JAMBA_MOE_TILE_ROWS=8|16|32|64|128 forces the token tile (tuning sweeps; 64 only on the wgmma kernel); 0 when unset. */
int forced_tile_rows() {
  static const int forced = [] {
    const char* v = getenv("JAMBA_MOE_TILE_ROWS");
    const int n = v ? std::atoi(v) : 0;
    return n == 8 || n == 16 || n == 32 || n == 128 || (n == 64 && use_wgmma()) ? n : 0;
  }();
  return forced;
}

/** A split count forced by environment variable `name` (1, 2, 4 or 8; tuning sweeps), 0 when unset. */
int forced_splits(const char* name) {
  const char* v = getenv(name);
  const int n = v ? std::atoi(v) : 0;
  return n == 1 || n == 2 || n == 4 || n == 8 ? n : 0;
}

/** JAMBA_MOE_LARGE_SPLITS forces the large kernels' down split. */
int forced_large_splits() {
  static const int forced = forced_splits("JAMBA_MOE_LARGE_SPLITS");
  return forced;
}

/** JAMBA_MOE_GATED_SPLITS forces the gated split of the wgmma and streamed kernels (1: never split, for comparison). */
int forced_gated_splits() {
  static const int forced = forced_splits("JAMBA_MOE_GATED_SPLITS");
  return forced;
}

/**
 * Row tiles per group of the wgmma kernel's block order (grouped_block) for `rows` rows over `groups`
 * weight groups (experts) in `bm`-row tiles: 8 where the groups average two tiles or more, whose tiles
 * then share their weights in L2; else 1, output blocks fastest, where a group of tiles would be of
 * different experts and share nothing (H100, 2026-12-06, groups of 8 against 1: MoE at 4096 tokens 7.72–7.77
 * against 8.12–8.24 ms, dense MLP at 256 / 1024 / 4096 rows 275 / 896–926 / 3441–3480 against 290–293 /
 * 943 / 3601–3648 µs, prefill 4K 14.9K against 14.4K tok/s; MoE at 256 tokens, one 64-row tile an expert,
 * 1193–1206 against 1148–1150 µs). JAMBA_MOE_TILE_GROUP=N forces N (1: output blocks fastest).
 */
int wgmma_tile_group(int rows, int groups, int bm) {
  static const int forced = [] {
    const char* v = getenv("JAMBA_MOE_TILE_GROUP");
    return v ? std::max(1, std::atoi(v)) : 0;
  }();
  if (forced > 0) return forced;
  return rows >= 2 * bm * groups ? 8 : 1;
}

/** JAMBA_MOE_STREAMED_DOWN_SPLITS forces the streamed kernel's down split (tuning sweeps). */
int forced_streamed_down_splits() {
  static const int forced = forced_splits("JAMBA_MOE_STREAMED_DOWN_SPLITS");
  return forced;
}

/** Expected number of experts that `pairs` random picks among `experts` touch: tiles there are at least. */
inline double expected_experts(int pairs, int experts) { return experts * (1.0 - std::pow(1.0 - 1.0 / experts, pairs)); }

template <int MODE, bool INT8>
int run_gemm_typed(int bm, const GemmParams& p, int tiles, int splits, bool f16, int groups) {
  if (INT8 && bm <= 32 && use_streamed()) {
    switch (bm) {
      case 8: return launch_streamed<MODE, 8>(f16, p, tiles, splits);
      case 16: return launch_streamed<MODE, 16>(f16, p, tiles, splits);
      default: return launch_streamed<MODE, 32>(f16, p, tiles, splits);
    }
  }
  if (INT8 && bm >= 64 && use_wgmma()) return bm == 64 ? launch_wgmma<MODE, 64>(f16, p, tiles, splits, groups) : launch_wgmma<MODE, 128>(f16, p, tiles, splits, groups);
  switch (bm) {
    case 8: return launch_swapped<INT8, MODE, 8>(p, tiles, splits);
    case 16: return launch_swapped<INT8, MODE, 16>(p, tiles, splits);
    case 32: return launch_swapped<INT8, MODE, 32>(p, tiles, splits);
    default:
      if (use_swapped_prefill()) return launch_swapped<INT8, MODE, 128, 8>(p, tiles, splits);
      return launch_gemm(p, tiles, splits, LargeGemm<INT8, MODE>{});
  }
}

/**
 * `splits` > 1 (the decode kernels only) cuts K into slices written to separate partials; `f16` (the
 * streamed kernel, and the wgmma kernel's gated GEMM) reads p.a16 instead of p.a; `groups`: the wgmma
 * kernel's warpgroups per block (wgmma_groups).
 */
template <int MODE>
int run_gemm(bool int8, int bm, const GemmParams& p, int tiles, int splits = 1, bool f16 = false, int groups = 1) {
  return int8 ? run_gemm_typed<MODE, true>(bm, p, tiles, splits, f16, groups) : run_gemm_typed<MODE, false>(bm, p, tiles, splits, f16, groups);
}

// --- router, books, reduce ---------------------------------------------------------------------------

/** One warp per row: fp32 softmax over all experts, then k rounds of argmax (lowest id wins ties). */
__global__ void router_kernel(const void* logits, int dtype, int ld, int rows, int experts, int k, int* out_ids, float* out_w) {
  pdl_enter();
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  constexpr int kMaxPerLane = 8;  // up to 256 experts
  float prob[kMaxPerLane];
  float m = -INFINITY;
#pragma unroll
  for (int j = 0; j < kMaxPerLane; j++) {
    const int e = lane + 32 * j;
    prob[j] = e < experts ? load_as_float(logits, dtype, (size_t)row * ld + e) : -INFINITY;
    m = fmaxf(m, prob[j]);
  }
  m = warp_max(m);
  float sum = 0.f;
#pragma unroll
  for (int j = 0; j < kMaxPerLane; j++) {
    const int e = lane + 32 * j;
    prob[j] = e < experts ? __expf(prob[j] - m) : 0.f;
    sum += prob[j];
  }
  sum = warp_sum(sum);
  for (int sel = 0; sel < k; sel++) {
    float best = -1.f;
    int best_e = 1 << 30;
#pragma unroll
    for (int j = 0; j < kMaxPerLane; j++) {
      const int e = lane + 32 * j;
      if (e < experts && (prob[j] > best || (prob[j] == best && e < best_e))) {
        best = prob[j];
        best_e = e;
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ob = __shfl_xor_sync(0xffffffffu, best, o);
      const int oe = __shfl_xor_sync(0xffffffffu, best_e, o);
      if (ob > best || (ob == best && oe < best_e)) {
        best = ob;
        best_e = oe;
      }
    }
    if (lane == 0) {
      out_ids[row * k + sel] = best_e;
      out_w[row * k + sel] = best / sum;
    }
    // Take the winner out of the next round.
#pragma unroll
    for (int j = 0; j < kMaxPerLane; j++)
      if (lane + 32 * j == best_e) prob[j] = -2.f;
  }
}

struct Books {
  int* counts;
  int* offsets;
  int* pair_token;
  int* pair_index;
  int* tile_expert;
  int* tile_start;
  int* num_tiles;
  // The tail tiles (at most one per expert, `tail` rows at most; unused when tail is 0).
  int* tail_expert;
  int* tail_start;
  int* num_tail_tiles;
};

/**
 * The power of two s that puts a row whose largest magnitude is `max_abs` in [2^13, 2^14) once scaled:
 * there fp16 holds bf16's 8 significant bits exactly (and fp32's to 11), far from its 65504 limit, down
 * to values 2^-27 of the largest. 1 for a row of zeros or with inf/NaN (they propagate either way);
 * s and 1/s stay normal floats.
 */
__device__ __forceinline__ void f16_row_scale(float max_abs, float& scale, float& inv) {
  int e = 0;
  if (max_abs > 0.f && !isinf(max_abs)) frexpf(max_abs, &e);  // max_abs = m·2^e, m in [0.5, 1)
  const int x = max_abs > 0.f && !isinf(max_abs) ? min(126, max(-126, 14 - e)) : 0;
  scale = __int_as_float((127 + x) << 23);
  inv = __int_as_float((127 - x) << 23);
}

/** out[r] = x[rows[r]] for r < n, rows of `cols` bf16 (a multiple of 8), 16 bytes a thread at a time. */
__global__ void gather_rows_kernel(const __nv_bfloat16* x, int ld, const int* rows, int n, const int* routed, int cols, __nv_bfloat16* out) {
  pdl_enter();
  n = min(n, *routed);  // pairs whose expert is on another rank (id -1) are not in the sorted list
  const int chunks = cols / 8;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (long long)n * chunks; i += (long long)gridDim.x * blockDim.x) {
    const int r = (int)(i / chunks), c = (int)(i % chunks) * 8;
    *reinterpret_cast<uint4*>(out + (size_t)r * cols + c) = *reinterpret_cast<const uint4*>(x + (size_t)rows[r] * ld + c);
  }
}

/** Where align_kernel writes fp16 copies of x's rows (out null: none), for the gated GEMM's F16 paths. */
struct HalfRows {
  const __nv_bfloat16* x;
  int ld, cols;
  __half* out;       // [rows, cols]
  float* inv_scale;  // [rows]
};

/** Row `row` of x to fp16, scaled by f16_row_scale of its largest magnitude (a block, before any return). */
__device__ void half_row(const HalfRows& c, int row) {
  __shared__ float scratch[32];
  const __nv_bfloat16* xr = c.x + (size_t)row * c.ld;
  float m = 0.f;
  for (int i = threadIdx.x; i < c.cols; i += blockDim.x) m = fmaxf(m, fabsf(__bfloat162float(xr[i])));
  float scale, inv;
  f16_row_scale(block_max(m, scratch), scale, inv);
  for (int i = threadIdx.x; i < c.cols; i += blockDim.x) c.out[(size_t)row * c.cols + i] = __float2half_rn(__bfloat162float(xr[i]) * scale);
  if (threadIdx.x == 0) c.inv_scale[row] = inv;
}

/**
 * Block 0: counts pairs per expert, their offsets, the BM-row tile map, and the sorted pair lists.
 * Blocks 1 … rows (when `half.out` is set): row blockIdx.x - 1 of x to fp16 (half_row).
 * With `tail` > 0, an expert's last rows go to a tile of the tail map instead when they number at most
 * `tail` (a narrower kernel runs those, so that 129 rows do not cost two 128-row tiles).
 */
__global__ void align_kernel(const int* ids, int pairs, int k, int experts, int bm, int tail, Books b, HalfRows half) {
  pdl_enter();
  if (blockIdx.x > 0) {
    half_row(half, blockIdx.x - 1);
    return;
  }
  extern __shared__ int sh[];
  int* cnt = sh;
  int* fill = sh + experts;
  for (int e = threadIdx.x; e < experts; e += blockDim.x) cnt[e] = fill[e] = 0;
  __syncthreads();
  for (int i = threadIdx.x; i < pairs; i += blockDim.x) {
    const int e = ids ? ids[i] : 0;  // no routing: a dense MLP, every row to expert 0
    if (e >= 0 && e < experts) atomicAdd(&cnt[e], 1);
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    int off = 0, tiles = 0, tails = 0;
    for (int e = 0; e < experts; e++) {
      b.counts[e] = cnt[e];
      b.offsets[e] = off;
      for (int s = 0; s < cnt[e]; s += bm) {
        if (cnt[e] - s <= tail) {
          b.tail_expert[tails] = e;
          b.tail_start[tails] = off + s;
          tails++;
          break;
        }
        b.tile_expert[tiles] = e;
        b.tile_start[tiles] = off + s;
        tiles++;
      }
      fill[e] = off;
      off += cnt[e];
    }
    b.offsets[experts] = off;
    *b.num_tiles = tiles;
    if (tail > 0) *b.num_tail_tiles = tails;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < pairs; i += blockDim.x) {
    const int e = ids ? ids[i] : 0;
    if (e < 0 || e >= experts) continue;
    const int pos = atomicAdd(&fill[e], 1);
    b.pair_token[pos] = i / k;
    b.pair_index[pos] = i;
  }
}

/**
 * out[t] = Σ over split-K slices and the token's k slots, in a fixed order (deterministic). Blocks of
 * (token, 256 columns): a decode token's 16 slices × slots per column spread over 16 blocks, not one
 * (a 1-token reduce took 9 µs in one block).
 */
__global__ void reduce_kernel(const float* partial, const int* ids, int experts, int k, int hidden, int splits, int pairs, float* out) {
  pdl_enter();
  const int t = blockIdx.x;
  const int c = blockIdx.y * blockDim.x + threadIdx.x;
  if (c < hidden) {
    float s = 0.f;
    for (int j = 0; j < k; j++) {
      if (ids && (unsigned)ids[t * k + j] >= (unsigned)experts) continue;  // skipped slot: no GEMM wrote its rows
      for (int z = 0; z < splits; z++) s += partial[((size_t)z * pairs + (size_t)t * k + j) * hidden + c];
    }
    out[(size_t)t * hidden + c] = s;
  }
}

/**
 * silu(Σ gate) · Σ up of channels n and n2 (n2 skipped when `two` is false) of partial row `row`, the
 * K slices summed in order (deterministic). The slices' loads are unrolled so that they are in flight
 * together: a loop that waits for each in turn costs a round trip to L2 per slice.
 */
__device__ __forceinline__ void gated_values(const float* partial, int splits, int rows, int ffn, int row, int n, int n2, bool two, float& v, float& v2) {
  float gate = 0.f, up = 0.f, gate2 = 0.f, up2 = 0.f;
  for (int z0 = 0; z0 < splits; z0 += 8) {
#pragma unroll
    for (int z = 0; z < 8; z++) {
      if (z0 + z < splits) {
        const float* part = partial + ((size_t)(z0 + z) * rows + row) * 2 * ffn;
        gate += part[n];
        up += part[ffn + n];
        if (two) {
          gate2 += part[n2];
          up2 += part[ffn + n2];
        }
      }
    }
  }
  v = silu(gate) * up;
  v2 = silu(gate2) * up2;
}

/** The gated GEMM split over K: h[row] = silu(Σ gate) ⊙ Σ up over the slices' partials. */
__global__ void gated_finish_kernel(const float* partial, int splits, int rows, int ffn, __nv_bfloat16* h) {
  pdl_enter();
  const size_t total = (size_t)rows * ffn;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
    float v, unused;
    gated_values(partial, splits, rows, ffn, (int)(i / ffn), (int)(i % ffn), 0, false, v, unused);
    h[i] = __float2bfloat16_rn(v);
  }
}

/**
 * gated_finish_kernel for the streamed down projection's F16 path: a warp per row and 64 channels writes
 * h16 = silu(Σ gate) ⊙ Σ up as fp16, scaled by f16_row_scale of the block's largest magnitude, and
 * 1 / scale at inv_scale[row·⌈ffn/64⌉ + block]. A scale per block, not per row, so that no block waits
 * for the rest of its row (GemmParams::a_inv_scale).
 */
__global__ void gated_finish_f16_kernel(const float* partial, int splits, int rows, int ffn, __half* h16, float* inv_scale) {
  pdl_enter();
  const int lane = threadIdx.x & 31, blocks = ceil_div(ffn, 64);
  const int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  if (warp >= rows * blocks) return;
  const int row = warp / blocks, blk = warp % blocks;
  const int n = blk * 64 + lane, n2 = n + 32;
  float v = 0.f, v2 = 0.f;
  if (n < ffn) gated_values(partial, splits, rows, ffn, row, n, n2, n2 < ffn, v, v2);
  float scale, inv;
  f16_row_scale(warp_max(fmaxf(fabsf(v), fabsf(v2))), scale, inv);
  if (n < ffn) h16[(size_t)row * ffn + n] = __float2half_rn(v * scale);
  if (n2 < ffn) h16[(size_t)row * ffn + n2] = __float2half_rn(v2 * scale);
  if (lane == 0) inv_scale[(size_t)row * blocks + blk] = inv;
}

bool aligned_rows(const Mat& x) { return x.ld % 8 == 0 && x.ptr % 16 == 0; }

/** A MoE call decoded from its program arguments: the routing books and both grouped GEMMs. */
struct MoeRun {
  int rows = 0, k = 0, hidden = 0, ffn = 0, experts = 0, pairs = 0, bm = 0, tiles = 0, splits = 1, gated_splits = 1;
  int groups = 1;       // the wgmma kernel's warpgroups per block for the gated GEMM (wgmma_groups)
  int down_groups = 1;  // and for the down projection (wgmma_down_groups)
  int tail = 0;  // rows of the tail tiles (0: none)
  bool int8 = false;
  // The streamed kernels' fp16 inputs: x's rows (made by the align kernel) for the gated GEMM, h's (made
  // by gated_finish_f16_kernel, so only when the gated GEMM is split) for the down projection.
  bool f16_gated = false, f16_down = false;
  HalfRows x16{};
  // The gated GEMM's input rows gathered in sorted order (kMulticastPair: tensor copies need them in
  // order), in the partial-sum buffer, which an unsplit gated GEMM leaves free; else null.
  __nv_bfloat16* x_sorted = nullptr;
  const __nv_bfloat16* x = nullptr;
  int x_ld = 0;
  __half* h16 = nullptr;
  float* h_inv_scale = nullptr;
  const int* ids = nullptr;
  float* out = nullptr;
  Books b{};
  GemmParams up{}, down{};
  GemmParams up_tail{}, down_tail{};  // the same GEMMs over the tail tiles
};

/** Validates and decodes the arguments of OP_MOE (see include/jamba_native.h) into `r`. */
int plan_moe(Args& a, MoeRun& r) {
  const Mat x = a.mat();
  const uint64_t ids = a.ptr(), weights = a.ptr();
  const int k = a.i();
  const uint64_t table = a.ptr();
  const int experts = a.i(), ffn = a.i(), wdtype = a.i();
  const uint64_t align = a.ptr(), h = a.ptr(), partial = a.ptr();
  const double partial_bytes = a.next();
  const uint64_t out = a.ptr();
  r.rows = x.rows;
  if (x.rows == 0) return 0;
  r.k = k;
  r.hidden = x.cols;
  r.experts = experts;
  r.pairs = x.rows * k;
  r.int8 = wdtype == JB_DTYPE_I8;
  r.ids = ids ? as<int>(ids) : nullptr;
  r.out = as<float>(out);
  if (x.dtype != JB_DTYPE_BF16 || !aligned_rows(x)) return fail("moe: x must be bf16 with rows aligned to 16 bytes");
  if (r.hidden % 16 != 0 || ffn % 16 != 0) return fail("moe: hidden and ffn sizes must be multiples of 16");

  const bool streamed = r.int8 && use_streamed();
  // One expert (a dense MLP) has no uneven routing: its rows fit the smallest tile that holds them. On
  // Hopper 33-64 rows take one 64-row wgmma tile (64 rows 127 µs); elsewhere two 32-row streamed tiles
  // (201 against 225 µs in one 128-row tile; at 128 rows the 128-row tile wins, 294 against 328).
  const bool wgmma = r.int8 && use_wgmma();
  if (!streamed) r.bm = tile_rows(r.pairs / experts, wgmma);
  else if (experts > 1) r.bm = streamed_tile_rows(r.pairs / experts, wgmma);
  else if (wgmma) r.bm = tile_rows(r.pairs, true);
  else r.bm = tile_rows(r.pairs <= 64 ? std::min(r.pairs, 32) : r.pairs);
  if (const int forced = forced_tile_rows(); forced > 0 && (forced != 64 || wgmma)) r.bm = forced;
  int* base = as<int>(align);
  const int max_tiles = ceil_div(r.pairs, 8) + experts, pairs = r.pairs;
  int* tails = base + 2 * experts + 1 + 2 * pairs + 2 * max_tiles + 1;
  r.b = Books{base, base + experts, base + 2 * experts + 1, base + 2 * experts + 1 + pairs, base + 2 * experts + 1 + 2 * pairs,
              base + 2 * experts + 1 + 2 * pairs + max_tiles, base + 2 * experts + 1 + 2 * pairs + 2 * max_tiles, tails, tails + experts, tails + 2 * experts};
  // 128-row tiles on Hopper: an expert's last 1-64 rows take a 64-row tile (JAMBA_MOE_TAIL_TILES=0: off).
  r.tail = wgmma && r.bm == 128 && use_tail_tiles() ? 64 : 0;
  r.tiles = row_tile_bound(pairs, experts, r.bm);
  r.groups = wgmma ? wgmma_groups(r.bm, experts) : 1;
  r.down_groups = wgmma ? wgmma_down_groups(r.bm, experts) : 1;
  r.up.tile_group = wgmma ? wgmma_tile_group(r.pairs, experts, r.bm) : 0;

  GemmParams& up = r.up;
  up.a = as<__nv_bfloat16>(x.ptr);
  up.lda = x.ld;
  up.a_rows = r.b.pair_token;
  up.k = r.hidden;
  up.n = ffn;
  up.table = as<uint64_t>(table);
  up.slot = 0;
  up.tile_expert = r.b.tile_expert;
  up.tile_start = r.b.tile_start;
  up.offsets = r.b.offsets;
  up.num_tiles = r.b.num_tiles;
  up.h = as<__nv_bfloat16>(h);
  up.partial = as<float>(partial);
  up.pairs = r.pairs;
  up.known_expert = r.ids ? -1 : 0;

  GemmParams& down = r.down;
  down = up;
  down.a = as<__nv_bfloat16>(h);
  down.lda = ffn;
  down.a_rows = nullptr;
  down.k = ffn;
  down.n = r.hidden;
  down.slot = 2;
  down.partial = as<float>(partial);
  down.pair_index = r.b.pair_index;
  down.route_w = weights ? as<float>(weights) : nullptr;  // no routing: weight 1
  down.pairs = pairs;
  // Few tiles cannot keep enough bytes in flight: split K (into slices whose fp32 partials fit the
  // buffer). The streamed kernel (one warp per 16 output channels of a tile) is latency-bound below
  // about 128 warps per SM, for both GEMMs (the microbenchmark's sweep: 1 token 8 + 8 slices, 8
  // tokens 2-4 + 8, 64 tokens 1-2 + 4-8, 256 tokens 1 + 4); the swapped kernel's down projection
  // until about four blocks per SM.
  const double slice_down = (double)pairs * r.hidden * 4, slice_gated = (double)pairs * 2 * ffn * 4;
  if (partial_bytes < slice_down) return fail("moe: the partial-sum buffer is smaller than one slice");
  if (streamed && r.bm <= 32) {
    const int tiles = std::max((int)std::ceil(expected_experts(pairs, experts)), ceil_div(pairs, r.bm));
    const int down_warps = tiles * ceil_div(r.hidden, 16), gated_warps = tiles * ceil_div(ffn, 16), enough = 128 * num_sms();
    const int cap = streamed_split_cap(tiles), forced_down = forced_streamed_down_splits(), forced_gated = forced_gated_splits();
    while (r.splits < cap && (r.splits * 2) * slice_down <= partial_bytes && (forced_down ? r.splits < forced_down : down_warps * r.splits < enough)) r.splits *= 2;
    while (r.gated_splits < cap && (r.gated_splits * 2) * slice_gated <= partial_bytes &&
           (forced_gated ? r.gated_splits < forced_gated : gated_warps * r.gated_splits < enough))
      r.gated_splits *= 2;
  } else if (r.bm < 64) {
    const int active = std::min(pairs, experts), blocks = ceil_div(r.hidden, 64) * active;
    while (r.splits < 8 && (r.splits * 2) * slice_down <= partial_bytes && blocks * r.splits < 4 * num_sms()) r.splits *= 2;
  } else {
    // 128-token tiles: a down projection of few row tiles (a dense MLP of up to a few hundred rows)
    // has too few output blocks to fill the GPU twice over: split its K (dense MLP at 64 tokens 549 →
    // 243 µs, at 256 tokens 701 → 479, large kernel). Output channels per block: the swapped
    // kernel's 16 per warp (8 warps), or the large kernel's.
    const int bn = wgmma ? wgmma_block_channels(r.down_groups) : use_swapped_prefill() ? 16 * 8 : r.int8 ? LargeGemm<true, DOWN>::kBN : LargeGemm<false, DOWN>::kBN;
    const int blocks = ceil_div(r.hidden, bn) * ceil_div(pairs, r.bm);
    const int forced = forced_large_splits();
    while (r.splits < 8 && (r.splits * 2) * slice_down <= partial_bytes && (forced ? r.splits < forced : blocks * r.splits < 2 * num_sms())) r.splits *= 2;
    // The same for the gated GEMM on wgmma where its blocks take one warpgroup (224 blocks of 64 channels
    // for a 64-row tile, so SMs run one or two): its K split in two, the slices finished by
    // gated_finish_kernel (dense MLP at 33 / 48 / 64 tokens 120 / 122 / 124 -> 106 / 110 / 114 µs, one
    // warpgroup). With two (112 blocks) it stays whole: 64 tokens 115.0 µs against 128.0 in two slices
    // and 127.0 in four (H100, 2026-12-06), and no finish kernel.
    if (wgmma && (r.groups == 1 || forced_gated_splits())) {
      const int gated_blocks = ceil_div(ffn, 64 * std::max(r.groups, 1)) * ceil_div(pairs, r.bm), forced_gated = forced_gated_splits();
      while (r.gated_splits < 8 && (r.gated_splits * 2) * slice_gated <= partial_bytes &&
             (forced_gated ? r.gated_splits < forced_gated : gated_blocks * r.gated_splits < 2 * num_sms()))
        r.gated_splits *= 2;
    }
  }
  r.ffn = ffn;
  // fp16 inputs for the streamed kernels; the h buffer holds h ([pairs, ffn], bf16 or fp16), then x's
  // fp16 rows, then the inverse scales of x's rows and of h's 64-channel blocks (jamba_native.h, OP_MOE).
  // The wgmma kernel takes fp16 (JAMBA_MOE_F16=all only, f16_kernels) for an MoE's gated GEMM only: its
  // down projection would need h's scale per row, and the dense MLP's measured slower (64 rows 135 against
  // 115 µs). The streamed kernel's down projection in small tiles only (f16_down_rows).
  const bool streamed_tile = streamed && r.bm <= 32;
  r.f16_gated = (streamed_tile && f16_kernels() >= 1) || (wgmma && r.bm >= 64 && experts > 1 && f16_kernels() >= 2);
  r.f16_down = r.f16_gated && streamed_tile && r.bm <= f16_down_rows() && r.gated_splits > 1;
  if (r.f16_gated) {
    __half* x16 = reinterpret_cast<__half*>(as<unsigned char>(h) + (size_t)pairs * ffn * 2);
    float* x_inv = reinterpret_cast<float*>(x16 + (size_t)r.rows * r.hidden);
    r.x16 = HalfRows{as<__nv_bfloat16>(x.ptr), x.ld, r.hidden, x16, x_inv};
    r.h_inv_scale = x_inv + r.rows;
    up.a16 = x16;
    up.a_inv_scale = x_inv;
  }
  if (r.groups == kMulticastPair) {
    if (r.gated_splits > 1 || r.f16_gated || partial_bytes < (double)pairs * r.hidden * 2) {
      r.groups = 1;
    } else {
      r.x = up.a;
      r.x_ld = up.lda;
      r.x_sorted = as<__nv_bfloat16>(partial);
      up.a = r.x_sorted;
      up.lda = r.hidden;
      up.a_rows = nullptr;
    }
  }
  r.h16 = r.f16_down ? as<__half>(h) : nullptr;
  down.a16 = r.h16;
  down.a_inv_scale = r.f16_down ? r.h_inv_scale : nullptr;
  if (r.tail > 0) {
    for (GemmParams* t : {&r.up_tail, &r.down_tail}) {
      *t = t == &r.up_tail ? r.up : r.down;
      t->tile_expert = r.b.tail_expert;
      t->tile_start = r.b.tail_start;
      t->num_tiles = r.b.num_tail_tiles;
      t->tile_group = 1;  // one tail tile an expert: a group would share no weights (wgmma_tile_group)
    }
  }
  return 0;
}

int moe_align(const MoeRun& r) {
  const HalfRows half = r.f16_gated ? r.x16 : HalfRows{};
  return launch_pdl("moe align", align_kernel, 1 + (r.f16_gated ? r.rows : 0), 1024, 2 * r.experts * sizeof(int), r.ids, r.pairs, r.k, r.experts, r.bm, r.tail, r.b,
                    half);
}

int moe_reduce(const MoeRun& r) {
  return launch_pdl("moe reduce", reduce_kernel, dim3(r.rows, ceil_div(r.hidden, 256)), 256, 0, r.down.partial, r.ids, r.experts, r.k, r.hidden, r.splits, r.pairs, r.out);
}

/** The gated GEMM, over K slices and their finish when it is split. */
int moe_gated(const MoeRun& r) {
  if (r.x_sorted != nullptr &&
      launch_pdl("moe gather rows", gather_rows_kernel, std::min(ceil_div(r.pairs * (r.hidden / 8), 256), 32 * num_sms()), 256, 0, r.x, r.x_ld, r.b.pair_token, r.pairs,
                 r.b.offsets + r.experts, r.hidden, r.x_sorted) != 0)
    return -1;
  if (run_gemm<GATED>(r.int8, r.bm, r.up, r.tiles, r.gated_splits, r.f16_gated, r.groups) != 0) return -1;
  if (r.tail > 0 && run_gemm<GATED>(r.int8, r.tail, r.up_tail, r.experts, r.gated_splits, r.f16_gated, r.groups) != 0) return -1;
  if (r.gated_splits == 1) return 0;
  if (r.f16_down)
    return launch_pdl("moe gated finish (fp16)", gated_finish_f16_kernel, ceil_div(r.pairs * ceil_div(r.ffn, 64), 8), 256, 0, r.up.partial, r.gated_splits, r.pairs, r.ffn,
                      r.h16, r.h_inv_scale);
  return launch_pdl("moe gated finish", gated_finish_kernel, ceil_div(r.pairs * r.ffn, 256), 256, 0, r.up.partial, r.gated_splits, r.pairs, r.ffn, r.up.h);
}

/** align → gated GEMM (gate, up, silu·mul) → down GEMM (× routing weight) → reduce over the k slots. */
int run_moe(const MoeRun& r) {
  if (moe_align(r) != 0) return -1;
  if (moe_gated(r) != 0) return -1;
  if (run_gemm<DOWN>(r.int8, r.bm, r.down, r.tiles, r.splits, r.f16_down, r.down_groups) != 0) return -1;
  if (r.tail > 0 && run_gemm<DOWN>(r.int8, r.tail, r.down_tail, r.experts, r.splits, false, r.down_groups) != 0) return -1;
  return moe_reduce(r);
}

}  // namespace

namespace ops {

int router(Args& a) {
  const Mat logits = a.mat();
  const int k = a.i();
  const uint64_t ids = a.ptr(), w = a.ptr();
  if (logits.rows == 0) return 0;
  if (logits.cols > 256) return fail("router: more than 256 experts");
  const int warps = 8;
  return launch_pdl("router", router_kernel, ceil_div(logits.rows, warps), 32 * warps, 0, as<void>(logits.ptr), logits.dtype, logits.ld, logits.rows, logits.cols, k,
                    as<int>(ids), as<float>(w));
}

int moe(Args& a) {
  MoeRun r;
  if (plan_moe(a, r) != 0) return -1;
  if (r.rows == 0) return 0;
  return run_moe(r);
}

int int8_gemm(Args& a) {
  const Mat x = a.mat();
  const uint64_t q = a.ptr(), scale = a.ptr();
  const int n = a.i();
  const uint64_t bias = a.ptr(), out = a.ptr();
  const int out_dtype = a.i();
  if (x.rows == 0) return 0;
  if (x.dtype != JB_DTYPE_BF16 || !aligned_rows(x)) return fail("int8 gemm: x must be bf16 with rows aligned to 16 bytes");
  if (x.cols % 16 != 0) return fail("int8 gemm: the input size must be a multiple of 16");
  GemmParams p{};
  p.a = as<__nv_bfloat16>(x.ptr);
  p.lda = x.ld;
  p.k = x.cols;
  p.n = n;
  p.w0 = as<void>(q);
  p.s0 = as<float>(scale);
  p.m = x.rows;
  p.out = as<void>(out);
  p.out_dtype = out_dtype;
  p.bias = bias ? as<float>(bias) : nullptr;
  p.known_expert = 0;  // w0, nothing routed
  const int bm = tile_rows(x.rows, use_wgmma());
  p.tile_group = use_wgmma() ? wgmma_tile_group(x.rows, 1, bm) : 0;
  p.pairs = x.rows;
  return run_gemm<DENSE>(true, bm, p, ceil_div(x.rows, bm));
}

}  // namespace ops
}  // namespace jb
