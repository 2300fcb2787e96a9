// Shared by the kernels: element access by dtype, warp/block reductions, launch checks, and the
// decoding of program arguments (see include/jamba_native.h).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "jamba_native.h"

namespace jb {

/** Records a failure message for jb_last_error(); returns -1. */
int fail(const std::string& message);
int fail_cuda(cudaError_t err, const char* what);

#define JB_CUDA(call)                                                  \
  do {                                                                 \
    cudaError_t jb_err_ = (call);                                      \
    if (jb_err_ != cudaSuccess) return ::jb::fail_cuda(jb_err_, #call); \
  } while (0)

/** After a kernel launch: launch-configuration errors surface here, not at the next sync. */
#define JB_LAUNCHED(what)                                               \
  do {                                                                  \
    cudaError_t jb_err_ = cudaGetLastError();                           \
    if (jb_err_ != cudaSuccess) return ::jb::fail_cuda(jb_err_, what);  \
  } while (0)

/** Whether environment variable `name` is set to exactly `value` (the tuning and comparison switches). */
inline bool env_is(const char* name, const char* value) {
  const char* v = std::getenv(name);
  return v && std::strcmp(v, value) == 0;
}

constexpr float kLog2e = 1.4426950408889634f;

/**
 * 2^x on the special-function unit alone (what __expf uses after its multiply by log2 e): results below
 * 2^-126 flush to 0, which no softmax weight or state decay here can tell from a denormal.
 */
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

/** The calling thread's context (context.cuh): its stream, device and multiprocessor count. */
cudaStream_t stream();
int current_device();
int num_sms();
/** The device's compute capability, major·10 + minor (90 on Hopper). */
int sm_version();

/**
 * Lets `kKernel` use `bytes` of dynamic shared memory (above the 48 KiB default), once per kernel and
 * device (the attribute is the current device's; contexts on several devices may ask concurrently).
 */
template <auto kKernel>
int allow_smem(int bytes) {
  static std::atomic<uint64_t> done_devices{0};
  const uint64_t bit = uint64_t(1) << (current_device() & 63);
  if (!(done_devices.load() & bit)) {
    JB_CUDA(cudaFuncSetAttribute(kKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    done_devices.fetch_or(bit);
  }
  return 0;
}

// --- programmatic dependent launch ----------------------------------------------------------------
//
// A decode step is hundreds of short kernels, and each boundary costs a drain, a launch and a ramp. A
// kernel started with launch_pdl may be scheduled while the kernel before it on the stream is still
// running, once every block of that one has begun: its blocks then wait in pdl_wait() until that kernel
// has completed and its writes are visible. So every block of a PDL kernel calls pdl_wait() before it
// reads anything an earlier kernel wrote, before it writes anything (the arena hands freed addresses out
// again, so a write can race an earlier read) and before any return; ahead of it only constant data
// (weights) may be touched, for example prefetched into L2. Each then calls pdl_launch_dependents(), so
// at most one kernel is ever scheduled ahead. Kernels launched the plain way serialize as usual.

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/** A PDL kernel's entry when it has nothing to prefetch. */
__device__ __forceinline__ void pdl_enter() {
  pdl_wait();
  pdl_launch_dependents();
}

/** Pulls the 128-byte line at `p` (constant data) into L2, for a PDL kernel before its pdl_wait(). */
__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

/** Whether launch_pdl overlaps kernels: Hopper and later, unless JAMBA_PDL=0 (context.cu). */
bool pdl_enabled();

/**
 * Launches `kernel` on the backend's stream, overlapped with the kernel before it when pdl_enabled(), in
 * clusters of `cluster_x` blocks along x (1: no clusters; grid.x a multiple of it).
 */
template <typename... Params, typename... Values>
int launch_pdl_clustered(const char* what, int cluster_x, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, Values&&... values) {
  cudaLaunchAttribute attrs[2]{};
  int n = 0;
  if (pdl_enabled()) {
    attrs[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attrs[n++].val.programmaticStreamSerializationAllowed = 1;
  }
  if (cluster_x > 1) {
    attrs[n].id = cudaLaunchAttributeClusterDimension;
    attrs[n++].val.clusterDim = {(unsigned)cluster_x, 1, 1};
  }
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream();
  config.attrs = attrs;
  config.numAttrs = n;
  cudaError_t err = cudaLaunchKernelEx(&config, kernel, std::forward<Values>(values)...);
  if (err == cudaSuccess) err = cudaGetLastError();
  return err == cudaSuccess ? 0 : fail_cuda(err, what);
}

/** Launches `kernel` on the backend's stream, overlapped with the kernel before it when pdl_enabled(). */
template <typename... Params, typename... Values>
int launch_pdl(const char* what, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, Values&&... values) {
  return launch_pdl_clustered(what, 1, kernel, grid, block, smem, std::forward<Values>(values)...);
}

// --- program arguments ----------------------------------------------------------------------------

struct Mat {
  uint64_t ptr;
  int dtype;
  int rows;
  int cols;
  int ld;
};

/** Reads a program's arguments in order. */
struct Args {
  const double* p;
  int n;
  int at = 0;
  bool overflow = false;
  double next() {
    if (at >= n) {
      overflow = true;
      return 0;
    }
    return p[at++];
  }
  uint64_t ptr() { return static_cast<uint64_t>(next()); }
  int i() { return static_cast<int>(next()); }
  float f() { return static_cast<float>(next()); }
  Mat mat() {
    Mat m;
    m.ptr = ptr();
    m.dtype = i();
    m.rows = i();
    m.cols = i();
    m.ld = i();
    return m;
  }
};

template <typename T>
__host__ __device__ inline T* as(uint64_t ptr) {
  return reinterpret_cast<T*>(static_cast<uintptr_t>(ptr));
}

// --- element access -------------------------------------------------------------------------------

/**
 * Element `index` of a tensor of any dtype, as float. Straight-line code (the aligned 32-bit word that
 * holds the element, then every conversion and a select): a kernel's loads can all be in flight at
 * once. A switch with a load in each case makes the compiler convert inside the branch, which waits
 * for that load before the next one is issued. The word never leaves the element's allocation (device
 * allocations are 256-byte aligned).
 */
__device__ __forceinline__ float load_as_float(const void* base, int dtype, size_t index) {
  const int log_size = dtype == JB_DTYPE_F32 || dtype == JB_DTYPE_I32 ? 2 : dtype == JB_DTYPE_I8 ? 0 : 1;
  const uintptr_t addr = reinterpret_cast<uintptr_t>(base) + (index << log_size);
  const uint32_t word = *reinterpret_cast<const uint32_t*>(addr & ~uintptr_t(3));
  const uint32_t bits = word >> (8 * (addr & 3));
  const float as_bf16 = __uint_as_float(bits << 16);
  const float as_f16 = __half2float(__ushort_as_half(static_cast<unsigned short>(bits & 0xffffu)));
  const float as_i8 = static_cast<float>(static_cast<int8_t>(bits & 0xffu));
  const float as_i32 = static_cast<float>(static_cast<int32_t>(word));
  return dtype == JB_DTYPE_F32 ? __uint_as_float(word) : dtype == JB_DTYPE_BF16 ? as_bf16 : dtype == JB_DTYPE_F16 ? as_f16 : dtype == JB_DTYPE_I8 ? as_i8 : as_i32;
}

__device__ __forceinline__ void store_from_float(void* base, int dtype, size_t index, float v) {
  if (dtype == JB_DTYPE_F32) static_cast<float*>(base)[index] = v;
  else static_cast<__nv_bfloat16*>(base)[index] = __float2bfloat16_rn(v);
}

// --- reductions -----------------------------------------------------------------------------------

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/** Sum over the block; every thread gets the result. `scratch` holds >= 32 floats. */
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.f;
  return warp_sum(v);
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : -INFINITY;
  return warp_max(v);
}

/**
 * x · sigmoid(x) with the fast reciprocal division (2 ulp in fp32, far below the bf16 its results are
 * rounded to): the IEEE division's slow-path branch cost the gated GEMM's epilogue more than its math.
 * Past x ≈ -87 the divisor exceeds 2^126 and the quotient is 0, silu's limit.
 */
__device__ __forceinline__ float silu(float x) { return __fdividef(x, 1.f + __expf(-x)); }

__host__ __device__ inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

}  // namespace jb

// Op entry points (one per JB_OP_*), each reading its arguments and launching its kernels.
namespace jb::ops {
int memset(Args& a);
int convert(Args& a);
int embed(Args& a);
int rmsnorm(Args& a);
int add_rmsnorm(Args& a);
int rmsnorms(Args& a);
int gemm(Args& a);
int add(Args& a);
int silu_mul(Args& a);
int gather(Args& a);
int router(Args& a);
int moe(Args& a);
int int8_gemm(Args& a);
int attention(Args& a);
int conv(Args& a);
int scan(Args& a);
int sample(Args& a);
int all_reduce(Args& a);
int all_gather(Args& a);
}  // namespace jb::ops

// Launchers used outside programs (context.cu entry points).
namespace jb {
int launch_convert(void* dst, int dst_dtype, const void* src, int src_dtype, size_t count);
int launch_quantize_int8(int8_t* q, float* scale, const void* src, int src_dtype, int rows, int cols);
int launch_fill_random_bf16(__nv_bfloat16* dst, size_t rows, size_t cols, float std, uint32_t seed, size_t full_cols, size_t row0, size_t col0);
int gemm_init();
/** Frees the calling context's cuBLASLt handle, workspace and plans. */
void gemm_release();
int time_gemm(int m, int n, int k, const void* x, const void* w, void* y, int reps, float* best_ms);
}  // namespace jb
