// y[1,N] = x[1,K] · W[N,K]ᵀ (+ bias) for one row (batch-1 decode) through bf16 weights: a weight stream
// with no tensor cores and no shared-memory tiles. At one row it reads every decode shape of Mini faster
// than cuBLASLt (tools/gpu/gemm_microbench.cu: x_proj 6.9 against 9.5 µs, the router 4.6 against 7.9,
// out_proj 22.7 against 28.4, in_proj 39.1 against 43.3), and takes the dt_proj bias without a second
// launch. From 2 rows on its per-row fp32 work and x loads make it lose on all but the smallest shapes.
//
// A block is 8 warps; each warp owns one output feature and one of KSPLIT slices of K. Its lanes read
// W's row in 16-byte loads, 4 in flight per lane, and x (shared by every warp) through L1; products
// accumulate in fp32. The slices meet in shared memory in a fixed order (deterministic).
#pragma once
#include <cuda_bf16.h>
#include <stdint.h>

#include "common.cuh"

namespace jb {
namespace skinny {

constexpr int kWarps = 8;

/** Σ over 8 bf16 pairs of w·x, in fp32 (a bf16 is the high half of its fp32). */
__device__ __forceinline__ float dot8(const uint4& w, const uint4& x, float acc) {
  const uint32_t ws[4] = {w.x, w.y, w.z, w.w}, xs[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
  for (int i = 0; i < 4; i++) {
    acc = fmaf(__uint_as_float(ws[i] << 16), __uint_as_float(xs[i] << 16), acc);
    acc = fmaf(__uint_as_float(ws[i] & 0xffff0000u), __uint_as_float(xs[i] & 0xffff0000u), acc);
  }
  return acc;
}

/** W is read once: not kept in L1. */
__device__ __forceinline__ uint4 load_weight(const uint4* p) {
  uint4 r;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
  return r;
}

template <int KSPLIT>
__global__ void __launch_bounds__(32 * kWarps) gemv_kernel(const __nv_bfloat16* x, const __nv_bfloat16* w, int n, int k, const float* bias, void* out, int out_dtype) {
  constexpr int kOutputs = kWarps / KSPLIT, kUnroll = 4;
  __shared__ float part[kWarps];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int col = blockIdx.x * kOutputs + warp / KSPLIT, slice = warp % KSPLIT;
  // K in 16-byte chunks of 8 values; this warp's slice of them.
  const int chunks = k / 8, per = (chunks + KSPLIT - 1) / KSPLIT;
  const int c0 = slice * per, c1 = min(chunks, c0 + per);
  const uint4* wrow = reinterpret_cast<const uint4*>(w + (size_t)col * k);
  // While the kernel before finishes, the first loads' lines of W (one per 8 lanes) head for L2.
  if (col < n && lane % 8 == 0) {
#pragma unroll
    for (int u = 0; u < kUnroll; u++)
      if (c0 + lane + 32 * u < c1) prefetch_l2(wrow + c0 + lane + 32 * u);
  }
  pdl_enter();
  float acc = 0.f;
  if (col < n) {
    const uint4* xv = reinterpret_cast<const uint4*>(x);
    int c = c0 + lane;
    for (; c + 32 * (kUnroll - 1) < c1; c += 32 * kUnroll) {
      uint4 wv[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; u++) wv[u] = load_weight(wrow + c + 32 * u);
#pragma unroll
      for (int u = 0; u < kUnroll; u++) acc = dot8(wv[u], __ldg(xv + c + 32 * u), acc);
    }
    for (; c < c1; c += 32) acc = dot8(load_weight(wrow + c), __ldg(xv + c), acc);
  }
  acc = warp_sum(acc);
  if (lane == 0) part[warp] = acc;
  __syncthreads();
  const int o = threadIdx.x, out_col = blockIdx.x * kOutputs + o;
  if (o >= kOutputs || out_col >= n) return;
  float s = bias ? bias[out_col] : 0.f;
#pragma unroll
  for (int z = 0; z < KSPLIT; z++) s += part[o * KSPLIT + z];
  store_from_float(out, out_dtype, out_col, s);
}

}  // namespace skinny

/**
 * K slices per output feature: more while the warps are fewer than 32 per SM and each lane still gets
 * 2+ loads of its slice (x_proj 8, the router 8, dt_proj 1).
 */
inline int skinny_k_splits(int n, int k) {
  const int chunks = k / 8;
  int ks = 1;
  while (ks < 8 && n * ks < 32 * num_sms() && chunks / (ks * 2) >= 64) ks *= 2;
  return ks;
}

/** Whether the one-row kernel can take this call (a single row, 16-byte aligned, K a multiple of 8). */
inline bool skinny_fits(int rows, int k, uint64_t x_ptr, uint64_t w_ptr) { return rows == 1 && k % 8 == 0 && x_ptr % 16 == 0 && w_ptr % 16 == 0; }

/** y = x·Wᵀ (+ bias) for one row, on the current stream; the caller checked skinny_fits. */
inline int launch_skinny_gemv(const __nv_bfloat16* x, const __nv_bfloat16* w, int n, int k, const float* bias, void* out, int out_dtype) {
  const int ks = skinny_k_splits(n, k);
  const dim3 grid(ceil_div(n, skinny::kWarps / ks)), block(32 * skinny::kWarps);
  const auto kernel = ks == 1 ? skinny::gemv_kernel<1> : ks == 2 ? skinny::gemv_kernel<2> : ks == 4 ? skinny::gemv_kernel<4> : skinny::gemv_kernel<8>;
  return launch_pdl("skinny gemv", kernel, grid, block, 0, x, w, n, k, bias, out, out_dtype);
}

}  // namespace jb
