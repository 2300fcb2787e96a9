// Hopper warpgroup MMA (wgmma, sm_90a only): D[64×N] += A[64×16] · B[N×16]ᵀ issued by the 128 threads of
// a warpgroup, asynchronously. A comes from registers (warp w of the group holds rows 16w … 16w+15 in the
// layout of mma.m16n8k16's A fragment, mma.cuh), B from shared memory through a descriptor, D in fp32
// registers (warp w, lane (g, t): rows 16w+g and 16w+g+8, columns 8j+2t and 8j+2t+1 for j < N/8, the
// m16n8 C layout repeated along N). B is K-major: row n of B (a token) holds its 16-bit K values
// contiguously, 64 of them (128 bytes) per row of a tile stored with the 128-byte swizzle (the 16-byte
// chunk c of row n at chunk c ^ (n % 8)) in tiles aligned to 1024 bytes. PTX ISA, "Asynchronous
// Warpgroup Level Matrix Multiply-Accumulate".
#pragma once
#include <stdint.h>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define JB_WGMMA 1
#endif

namespace jb::wgmma {

/** Byte offset of 16-byte chunk `c` (of 8) of row `n` in a 128-byte-swizzled tile of 128-byte rows. */
__host__ __device__ __forceinline__ int swizzled_chunk(int n, int c) { return n * 128 + ((c ^ (n & 7)) << 4); }

/**
 * The descriptor of a K-major, 128-byte-swizzled B tile (or A tile, for mma_ss_*) at shared address `tile` (1024-byte aligned),
 * starting `k16` 16-element steps into its 64-element rows: 8-row groups 1024 bytes apart (the stride
 * offset); the leading offset is unused with this swizzle; mode 1 = 128-byte swizzle.
 */
__device__ __forceinline__ uint64_t b_desc(uint32_t tile, int k16) {
  const uint32_t start = tile + k16 * 32;
  return (uint64_t)((start & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) | ((uint64_t)1 << 62);
}

/**
 * The descriptor of a B operand stored MN-major (for mma_*<1>): its K rows hold N values contiguously,
 * split into column blocks of 64 values, each a 128-byte-swizzled tile of 128-byte rows as above.
 * `start` is the shared address of the 16 K rows' first row in the first column block (1024-byte aligned
 * plus a multiple of 2048), `block_bytes` the distance between column blocks (the leading offset); 8-row
 * groups are 1024 bytes apart (the stride offset). PTX ISA, "Matrix Descriptor" and the MN-major
 * canonical layouts.
 */
__device__ __forceinline__ uint64_t mn_desc(uint32_t start, uint32_t block_bytes) {
  return (uint64_t)((start & 0x3FFFF) >> 4) | ((uint64_t)((block_bytes >> 4) & 0x3FFF) << 16) | ((uint64_t)(1024 >> 4) << 32) | ((uint64_t)1 << 62);
}

/** Orders this thread's register writes (A fragments, accumulators) before the next wgmma reads them. */
__device__ __forceinline__ void fence() {
#if defined(JB_WGMMA)
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void commit() {
#if defined(JB_WGMMA)
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}

/** Waits until at most N committed groups of this warpgroup are still running. */
template <int N>
__device__ __forceinline__ void wait() {
#if defined(JB_WGMMA)
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}

// The accumulator operands of the m64n64 and m64n128 shapes ("+f" of d[0] … d[N/2 - 1]).
#define JB_WG_D32(d)                                                                                        \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),      \
      "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),       \
      "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),      \
      "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
#define JB_WG_D64(d)                                                                                        \
  JB_WG_D32(d), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]),         \
      "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]),      \
      "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]),      \
      "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]),      \
      "+f"(d[63])
#define JB_WG_REGS32                                                                                        \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, " \
  "%24, %25, %26, %27, %28, %29, %30, %31}"
#define JB_WG_REGS64                                                                                        \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, " \
  "%24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, "  \
  "%46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"

// The instruction of mma_n64 / mma_n128 for one operand type (bf16 or f16).
#define JB_WG_RS_N64(type)                                \
  "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"            \
  "wgmma.mma_async.sync.aligned.m64n64k16.f32." type "." type " " JB_WG_REGS32 ", {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"
#define JB_WG_RS_N128(type)                               \
  "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"            \
  "wgmma.mma_async.sync.aligned.m64n128k16.f32." type "." type " " JB_WG_REGS64 ", {%64, %65, %66, %67}, %68, p, 1, 1, %70;\n}\n"

/**
 * D[64×64] (+)= A[64×16] (registers, bf16, or f16 with F16) · B (shared memory, the same type):
 * B[64×16]ᵀ K-major, or with TRANS_B the 16×64 B stored MN-major (see mn_desc). fp32 D.
 */
template <int TRANS_B = 0, bool F16 = false>
__device__ __forceinline__ void mma_n64(float (&d)[32], const uint32_t (&a)[4], uint64_t b_desc, int accumulate) {
#if defined(JB_WGMMA)
  if constexpr (F16)
    asm volatile(JB_WG_RS_N64("f16") : JB_WG_D32(d) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(accumulate), "n"(TRANS_B));
  else
    asm volatile(JB_WG_RS_N64("bf16") : JB_WG_D32(d) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(accumulate), "n"(TRANS_B));
#endif
}

/** D[64×128] (+)= A[64×16] (registers) · B (shared memory), as mma_n64. */
template <int TRANS_B = 0, bool F16 = false>
__device__ __forceinline__ void mma_n128(float (&d)[64], const uint32_t (&a)[4], uint64_t b_desc, int accumulate) {
#if defined(JB_WGMMA)
  if constexpr (F16)
    asm volatile(JB_WG_RS_N128("f16") : JB_WG_D64(d) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(accumulate), "n"(TRANS_B));
  else
    asm volatile(JB_WG_RS_N128("bf16") : JB_WG_D64(d) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(accumulate), "n"(TRANS_B));
#endif
}

/** D[64×128] (+)= A[64×16] · B[128×16]ᵀ, both K-major in shared memory (descriptors), fp32 D. */
__device__ __forceinline__ void mma_ss_n128(float (&d)[64], uint64_t a_desc, uint64_t b_desc, int accumulate) {
#if defined(JB_WGMMA)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " JB_WG_REGS64 ", %64, %65, p, 1, 1, 0, 0;\n}\n"
      : JB_WG_D64(d)
      : "l"(a_desc), "l"(b_desc), "r"(accumulate));
#endif
}

/**
 * D[64×N] (+)= A · Bᵀ for the token-tile widths the kernels use (bf16, or f16 with F16); `accumulate` 0
 * ignores D's old value.
 */
template <int N, bool F16 = false>
__device__ __forceinline__ void mma(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t b_desc, int accumulate) {
  static_assert(N == 64 || N == 128, "wgmma width");
  if constexpr (N == 64) mma_n64<0, F16>(d, a, b_desc, accumulate);
  else mma_n128<0, F16>(d, a, b_desc, accumulate);
}

/** Makes this thread's earlier shared-memory writes (cp.async included) visible to wgmma's operand reads. */
__device__ __forceinline__ void fence_shared() {
#if defined(JB_WGMMA)
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

}  // namespace jb::wgmma
