// Tensor-core building blocks (sm_80+): cp.async tile loads with zero fill, ldmatrix, and the
// m16n8k16 bf16 mma with fp32 accumulation. Fragment layouts are those of the PTX ISA's
// "mma.m16n8k16" section: for a lane, g = lane / 4 and t = lane % 4;
//   A (16×16, row-major): a0 = A[g][2t..2t+1], a1 = A[g+8][2t..], a2 = A[g][2t+8..], a3 = A[g+8][2t+8..]
//   B (16×8, k-major per column n): b0 = B[2t..2t+1][g], b1 = B[2t+8..2t+9][g]
//   C (16×8): c0,c1 = C[g][2t..2t+1], c2,c3 = C[g+8][2t..2t+1]
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

namespace jb::mma {

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

/** 16-byte async copy; `valid` false writes zeros (src-size 0). */
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const int size = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem), "r"(size));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// mbarriers (sm_80+): a phase completes when its expected count of arrivals is in; waiters spin on the
// phase's parity. PTX ISA, "Parallel Synchronization and Communication Instructions: mbarrier".

__device__ __forceinline__ void mbar_init(void* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}

/** Arrives on `bar` once every cp.async this thread issued so far has landed (counted in the expected arrivals). */
__device__ __forceinline__ void cp_async_arrive(void* bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(smem_addr(bar)) : "memory");
}

__device__ __forceinline__ void mbar_arrive(void* bar) {
  asm volatile("{\n.reg .b64 state;\nmbarrier.arrive.shared::cta.b64 state, [%0];\n}\n" ::"r"(smem_addr(bar)) : "memory");
}

/** Waits until the phase of `bar` with this parity has completed. */
__device__ __forceinline__ void mbar_wait(void* bar, int parity) {
  uint32_t done;
  do {
    asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(done)
                 : "r"(smem_addr(bar)), "r"(parity)
                 : "memory");
  } while (!done);
}

/** Four 8×8 bf16 matrices from shared memory (rows given by lanes 0-7, 8-15, 16-23, 24-31). */
__device__ __forceinline__ void ldmatrix_x4(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(smem_addr(p)));
}

__device__ __forceinline__ void ldmatrix_x2(uint32_t& r0, uint32_t& r1, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r0), "=r"(r1) : "r"(smem_addr(p)));
}

__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t& r0, uint32_t& r1, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n" : "=r"(r0), "=r"(r1) : "r"(smem_addr(p)));
}

/** Four transposed 8×8 bf16 matrices (rows given by lanes 0-7, 8-15, 16-23, 24-31). */
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(smem_addr(p)));
}

/** C += A·B on bf16 operands, or fp16 with F16 (ExpertsInt8's decode path: int8 → fp16 is cheaper). */
template <bool F16 = false>
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#define JB_MMA_16816(type) "mma.sync.aligned.m16n8k16.row.col.f32." type "." type ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
  if constexpr (F16)
    asm volatile(JB_MMA_16816("f16") : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  else
    asm volatile(JB_MMA_16816("bf16") : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#undef JB_MMA_16816
}

__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) { mma_16816<false>(c, a, b0, b1); }

/**
 * The bf16 pair of the int8 pair whose bytes sit at the bottom of the two 16-bit halves of `spread`
 * (the rest zero), exactly, in three instructions and without the slow int→float conversion unit: with
 * q = r - 128·s (r its low 7 bits, s its sign bit), the bf16 0x4300 | r is 128 + r (7 mantissa bits hold
 * r), the bf16 0x4300 | s << 7 is 128 or 256, and their difference is q, representable and so exact.
 */
__device__ __forceinline__ uint32_t spread_i8x2_to_bf16x2(uint32_t spread) {
  // (a & b) | c as one lop3 each: left to the compiler, two constants split it into two instructions.
  uint32_t mag, sub;
  asm("lop3.b32 %0, %1, 0x007F007F, %2, 0xEA;\n" : "=r"(mag) : "r"(spread), "r"(0x43004300u));
  asm("lop3.b32 %0, %1, 0x00800080, %2, 0xEA;\n" : "=r"(sub) : "r"(spread), "r"(0x43004300u));
  const __nv_bfloat162 d = __hsub2(*reinterpret_cast<const __nv_bfloat162*>(&mag), *reinterpret_cast<const __nv_bfloat162*>(&sub));
  return *reinterpret_cast<const uint32_t*>(&d);
}

/** Two int8 (low byte first, in the low 16 bits) to a bf16 pair, exactly: four full-rate instructions. */
__device__ __forceinline__ uint32_t i8x2_to_bf16x2(uint32_t two) { return spread_i8x2_to_bf16x2(__byte_perm(two, 0, 0x4140)); }

/** Four int8 (low byte first) to two bf16 pairs, bytes 0-1 in `lo` and 2-3 in `hi` (eight instructions). */
__device__ __forceinline__ void i8x4_to_bf16x2x2(uint32_t four, uint32_t& lo, uint32_t& hi) {
  lo = spread_i8x2_to_bf16x2(__byte_perm(four, 0, 0x4140));
  hi = spread_i8x2_to_bf16x2(__byte_perm(four, 0, 0x4342));
}

/**
 * Two int8 (low byte first, in the low 16 bits; the high 16 bits zero) to an fp16 pair, as
 * i8x4_to_f16x2x2, in three instructions whose constants are all immediates: one xor offsets both bytes
 * and writes 0x64 into the empty high bytes, one permute interleaves them (a permute of a register with
 * constants in both its selector and a second operand would need a register for one of them, which
 * ptxas rematerializes before every use when registers are short).
 */
__device__ __forceinline__ uint32_t i8x2_to_f16x2(uint32_t two) {
  const uint32_t u = __byte_perm(two ^ 0x64648080u, 0, 0x3120);
  const __half2 d = __hsub2(*reinterpret_cast<const __half2*>(&u), __halves2half2(__ushort_as_half(0x6480u), __ushort_as_half(0x6480u)));
  return *reinterpret_cast<const uint32_t*>(&d);
}

/**
 * Four int8 (low byte first) to two fp16 pairs, bytes 0-1 in `lo` and 2-3 in `hi`, exactly, in five
 * instructions: each byte, offset to unsigned u = q + 128, becomes the low byte of the fp16 0x64uu =
 * 1024 + u (fp16 has 10 mantissa bits, so 1024 … 1279 are exact), and one paired subtraction of 1152
 * leaves q. bf16's 7 mantissa bits cannot hold u, which is why the bf16 conversion splits off the sign bit.
 */
__device__ __forceinline__ void i8x4_to_f16x2x2(uint32_t four, uint32_t& lo, uint32_t& hi) {
  const uint32_t u = four ^ 0x80808080u;
  const __half2 bias = __halves2half2(__ushort_as_half(0x6480u), __ushort_as_half(0x6480u));  // 1152
  const uint32_t l = __byte_perm(u, 0x64646464u, 0x4140), h = __byte_perm(u, 0x64646464u, 0x4342);
  const __half2 dl = __hsub2(*reinterpret_cast<const __half2*>(&l), bias), dh = __hsub2(*reinterpret_cast<const __half2*>(&h), bias);
  lo = *reinterpret_cast<const uint32_t*>(&dl);
  hi = *reinterpret_cast<const uint32_t*>(&dh);
}

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  __nv_bfloat162 r = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&r);
}

}  // namespace jb::mma
