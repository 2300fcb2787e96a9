// Hopper's bulk copies (sm_90): global → shared copies issued by one thread, run by the copy engine and
// counted in bytes on an mbarrier (mma.cuh), so a copy warp can feed a ring of stages without the
// consumers issuing loads. A tensor copy takes a box of a 2-D tensor described by a tensor map (encoded on
// the host) and can store it with the 128-byte swizzle that ldmatrix and wgmma read without bank
// conflicts. PTX ISA, "cp.async.bulk" and "cp.async.bulk.tensor"; CUDA driver API,
// cuTensorMapEncodeTiled (reached through the runtime, so the library needs no -lcuda).
#pragma once
#include <cuda.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "mma.cuh"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define JB_TMA 1
#endif

namespace jb::tma {

/** Makes a thread's mbarrier.init visible to the copy engine (the async proxy). */
__device__ __forceinline__ void fence_barrier_init() {
#ifdef JB_TMA
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}

/** Orders this thread's earlier generic writes to shared memory before later bulk copies into it. */
__device__ __forceinline__ void fence_proxy_async() {
#ifdef JB_TMA
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

/** Arrives on `bar`, adding `bytes` to the bytes its phase waits for. */
__device__ __forceinline__ void expect_tx(void* bar, uint32_t bytes) {
#ifdef JB_TMA
  asm volatile("{\n.reg .b64 state;\nmbarrier.arrive.expect_tx.shared::cta.b64 state, [%0], %1;\n}\n" ::"r"(mma::smem_addr(bar)), "r"(bytes) : "memory");
#endif
}

/** Copies `bytes` (a multiple of 16, both ends 16-byte aligned) from global `src` to shared `dst`, counted on `bar`. */
__device__ __forceinline__ void bulk_copy(void* dst, const void* src, uint32_t bytes, void* bar) {
#ifdef JB_TMA
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(mma::smem_addr(dst)), "l"(src), "r"(bytes),
               "r"(mma::smem_addr(bar))
               : "memory");
#endif
}

/** Copies the box of `map` at element coordinates (x, y) to shared `dst` (aligned as the map's swizzle asks), counted on `bar`. */
__device__ __forceinline__ void load_2d(void* dst, const CUtensorMap* map, int x, int y, void* bar) {
#ifdef JB_TMA
  asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(mma::smem_addr(dst)),
               "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(y), "r"(mma::smem_addr(bar))
               : "memory");
#endif
}

/**
 * load_2d into the same shared offset of every block of the cluster in `mask` (bit r: rank r), each
 * counting the bytes on its own mbarrier at `bar`'s offset. PTX ISA, ".multicast::cluster".
 */
__device__ __forceinline__ void load_2d_multicast(void* dst, const CUtensorMap* map, int x, int y, void* bar, uint16_t mask) {
#ifdef JB_TMA
  asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1, {%2, %3}], [%4], %5;\n" ::"r"(
                   mma::smem_addr(dst)),
               "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(y), "r"(mma::smem_addr(bar)), "h"(mask)
               : "memory");
#endif
}

/** Every thread of every block of the cluster meets here; shared-memory writes before it are visible after it. */
__device__ __forceinline__ void cluster_sync() {
#ifdef JB_TMA
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
#endif
}

/**
 * Arrives on the mbarrier at `bar`'s offset in the shared memory of cluster block `rank`, releasing at the CTA's
 * scope only: a consumer whose reads of a stage are complete needs no cluster-scope fence, which would cost one
 * on every call. Its owner waits with mma::mbar_wait.
 */
__device__ __forceinline__ void arrive_cluster(void* bar, uint32_t rank) {
#ifdef JB_TMA
  asm volatile("{\n.reg .b32 remote;\nmapa.shared::cluster.u32 remote, %0, %1;\nmbarrier.arrive.shared::cluster.b64 _, [remote];\n}\n" ::"r"(
                   mma::smem_addr(bar)),
               "r"(rank)
               : "memory");
#endif
}

using EncodeTiled = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*, const cuuint64_t*, const cuuint32_t*,
                                 const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

/** The driver's cuTensorMapEncodeTiled, or null where the driver has none (before CUDA 12). */
inline EncodeTiled encode_tiled() {
  static const EncodeTiled fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &found) != cudaSuccess || found != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      return static_cast<EncodeTiled>(nullptr);
    }
    return reinterpret_cast<EncodeTiled>(p);
  }();
  return fn;
}

/**
 * Encodes `map` for a row-major bf16 matrix of `rows` rows of `cols` elements, `row_bytes` apart, read in
 * boxes of `box_rows` rows × `box_cols` columns (box_cols · 2 ≤ 128) stored with the 128-byte swizzle.
 * False where the driver cannot (no entry point, or arguments it refuses).
 */
inline bool encode_bf16_2d(CUtensorMap* map, const void* base, uint64_t cols, uint64_t rows, uint64_t row_bytes, uint32_t box_cols, uint32_t box_rows) {
  const EncodeTiled encode = encode_tiled();
  if (encode == nullptr) return false;
  const cuuint64_t dims[2] = {cols, rows};
  const cuuint64_t strides[1] = {row_bytes};
  const cuuint32_t box[2] = {box_cols, box_rows};
  const cuuint32_t element_strides[2] = {1, 1};
  return encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<void*>(base), dims, strides, box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

}  // namespace jb::tma
