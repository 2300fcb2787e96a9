// Memory-bound row and element ops: memset, dtype conversion, embedding gather, RMSNorm, residual
// add, SiLU·mul, row gather; and the load-time helpers: the ExpertsInt8 quantizer and random weights.
#include "common.cuh"
#include "int8_tiles.cuh"

namespace jb {
namespace {

__global__ void convert_kernel(void* dst, int dst_dtype, const void* src, int src_dtype, size_t count) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x) {
    store_from_float(dst, dst_dtype, i, load_as_float(src, src_dtype, i));
  }
}

/** A strided [rows, cols] source to a contiguous destination. */
__global__ void convert_2d_kernel(void* dst, int dst_dtype, const void* src, int src_dtype, int rows, int cols, int ld) {
  pdl_enter();
  const int r = blockIdx.x;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) store_from_float(dst, dst_dtype, (size_t)r * cols + c, load_as_float(src, src_dtype, (size_t)r * ld + c));
}

/**
 * The table holds ids [first, first + vocab): a tensor-parallel rank's vocabulary slice. Other ids embed
 * to zeros (another rank holds them; the all-reduce after sums the slices).
 */
__global__ void embed_kernel(const void* table, int dtype, int vocab, int hidden, const int* ids, int first, float* out) {
  pdl_enter();
  const int r = blockIdx.x;
  const int id = ids[r] - first;
  const bool held = id >= 0 && id < vocab;
  for (int c = threadIdx.x; c < hidden; c += blockDim.x) out[(size_t)r * hidden + c] = held ? load_as_float(table, dtype, (size_t)id * hidden + c) : 0.f;
}

/**
 * out = rmsnorm(x), one block per row, fp32 sum of squares (as the CPU reference and Hugging Face do);
 * with ADD, x += src first (the residual add and the next layer's norm in one launch). The sum is
 * stored, then read back, so the norm sees x rounded to its dtype as an unfused add and norm would.
 */
template <bool ADD>
__device__ __forceinline__ void rmsnorm_row(int r, void* x, int dtype, int cols, int ld, const void* src, int src_dtype, int src_ld, const float* w, float eps,
                                            void* out, int out_dtype) {
  __shared__ float scratch[32];
  float ss = 0.f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    const size_t i = (size_t)r * ld + c;
    if constexpr (ADD) store_from_float(x, dtype, i, load_as_float(x, dtype, i) + load_as_float(src, src_dtype, (size_t)r * src_ld + c));
    const float v = load_as_float(x, dtype, i);
    ss += v * v;
  }
  const float inv = rsqrtf(block_sum(ss, scratch) / cols + eps);
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    store_from_float(out, out_dtype, (size_t)r * cols + c, load_as_float(x, dtype, (size_t)r * ld + c) * inv * w[c]);
  }
}

template <bool ADD>
__global__ void rmsnorm_kernel(void* x, int dtype, int cols, int ld, const void* src, int src_dtype, int src_ld, const float* w, float eps, void* out,
                               int out_dtype) {
  pdl_enter();
  rmsnorm_row<ADD>(blockIdx.x, x, dtype, cols, ld, src, src_dtype, src_ld, w, eps, out, out_dtype);
}

/** Up to four independent norms over the same rows (Mamba's dt, B and C norms), one per blockIdx.y. */
struct NormSet {
  static constexpr int kMax = 4;
  Mat x[kMax];
  const float* w[kMax];
  float eps[kMax];
  void* out[kMax];
  int out_dtype[kMax];
};

__global__ void rmsnorms_kernel(NormSet set) {
  pdl_enter();
  const int i = blockIdx.y;
  const Mat& x = set.x[i];
  rmsnorm_row<false>(blockIdx.x, reinterpret_cast<void*>(x.ptr), x.dtype, x.cols, x.ld, nullptr, 0, 0, set.w[i], set.eps[i], set.out[i], set.out_dtype[i]);
}

__global__ void add_kernel(void* dst, int dst_dtype, int dst_ld, const void* src, int src_dtype, int src_ld, int cols) {
  pdl_enter();
  const int r = blockIdx.x;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    const size_t d = (size_t)r * dst_ld + c;
    store_from_float(dst, dst_dtype, d, load_as_float(dst, dst_dtype, d) + load_as_float(src, src_dtype, (size_t)r * src_ld + c));
  }
}

__global__ void silu_mul_kernel(const void* g, int gdt, int gld, const void* u, int udt, int uld, int cols, __nv_bfloat16* out) {
  pdl_enter();
  const int r = blockIdx.x;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    const float gv = load_as_float(g, gdt, (size_t)r * gld + c);
    out[(size_t)r * cols + c] = __float2bfloat16_rn(silu(gv) * load_as_float(u, udt, (size_t)r * uld + c));
  }
}

__global__ void gather_kernel(const void* x, int dtype, int cols, int ld, const int* rows, void* out) {
  pdl_enter();
  const int i = blockIdx.x;
  const int r = rows[i];
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    if (dtype == JB_DTYPE_F32) static_cast<float*>(out)[(size_t)i * cols + c] = static_cast<const float*>(x)[(size_t)r * ld + c];
    else if (dtype == JB_DTYPE_BF16) static_cast<__nv_bfloat16*>(out)[(size_t)i * cols + c] = static_cast<const __nv_bfloat16*>(x)[(size_t)r * ld + c];
    else static_cast<int*>(out)[(size_t)i * cols + c] = static_cast<const int*>(x)[(size_t)r * ld + c];
  }
}

/**
 * ExpertsInt8, one block per row, in IEEE fp32 exactly as runtime/quant/expertsint8.ts:
 * scale = max|W| / 127; q = clamp(round_half_even(W / scale), -127, 127); a zero row gets scale 0, q 0.
 * __fdiv_rn and rintf keep it IEEE (no fast-math division). q is written in the tiled layout of
 * int8_tiles.cuh, whose padding the launcher zeroes first.
 */
__global__ void quantize_kernel(int8_t* q, float* scale, const void* src, int src_dtype, int cols) {
  const int padded_cols = int8_padded_cols(cols);
  __shared__ float scratch[32];
  const size_t base = (size_t)blockIdx.x * cols;
  float m = 0.f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, fabsf(load_as_float(src, src_dtype, base + c)));
  m = block_max(m, scratch);
  const float s = __fdiv_rn(m, 127.f);
  if (threadIdx.x == 0) scale[blockIdx.x] = s;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    float v = 0.f;
    if (s != 0.f) v = fminf(fmaxf(rintf(__fdiv_rn(load_as_float(src, src_dtype, base + c), s)), -127.f), 127.f);
    q[int8_tile_offset(blockIdx.x, c, padded_cols)] = static_cast<int8_t>(v);
  }
}

__device__ __forceinline__ uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

/** Approximately normal values from a hash of (seed, index): the sum of four uniforms, rescaled. */
/**
 * A [rows, cols] block of the random matrix `seed`: element (r, c) is the full matrix's element
 * (row0 + r) · full_cols + col0 + c, a function of (seed, that index) alone, so shards made apart are
 * slices of one matrix (runtime/backends/testing.ts, randomAt, computes the same values).
 */
__global__ void random_bf16_kernel(__nv_bfloat16* dst, size_t rows, size_t cols, float std, uint32_t seed, size_t full_cols, size_t row0, size_t col0) {
  const size_t count = rows * cols;
  for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < count; k += (size_t)gridDim.x * blockDim.x) {
    const size_t i = (row0 + k / cols) * full_cols + col0 + k % cols;
    uint32_t h = mix32(seed ^ mix32(static_cast<uint32_t>(i) ^ mix32(static_cast<uint32_t>(i >> 32) + 0x9e3779b9u)));
    float s = 0.f;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      h = mix32(h + 0x9e3779b9u);
      s += (h >> 8) * (1.f / 16777216.f);
    }
    // Sum of 4 U(0,1): mean 2, variance 1/3.
    dst[k] = __float2bfloat16_rn((s - 2.f) * 1.7320508f * std);
  }
}

int grid_for(size_t count, int threads) {
  const size_t blocks = (count + threads - 1) / threads;
  const size_t cap = (size_t)num_sms() * 32;
  return static_cast<int>(blocks < cap ? (blocks > 0 ? blocks : 1) : cap);
}

int row_threads(int cols) { return cols >= 1024 ? 1024 : ((cols + 31) / 32) * 32; }

}  // namespace

int launch_convert(void* dst, int dst_dtype, const void* src, int src_dtype, size_t count) {
  if (count == 0) return 0;
  convert_kernel<<<grid_for(count, 256), 256, 0, stream()>>>(dst, dst_dtype, src, src_dtype, count);
  JB_LAUNCHED("convert");
  return 0;
}

int launch_quantize_int8(int8_t* q, float* scale, const void* src, int src_dtype, int rows, int cols) {
  if (rows == 0) return 0;
  if (int8_padded_rows(rows) != rows || int8_padded_cols(cols) != cols)
    JB_CUDA(cudaMemsetAsync(q, 0, (size_t)int8_padded_rows(rows) * int8_padded_cols(cols), stream()));
  quantize_kernel<<<rows, row_threads(cols), 0, stream()>>>(q, scale, src, src_dtype, cols);
  JB_LAUNCHED("quantize");
  return 0;
}

int launch_fill_random_bf16(__nv_bfloat16* dst, size_t rows, size_t cols, float std, uint32_t seed, size_t full_cols, size_t row0, size_t col0) {
  if (rows * cols == 0) return 0;
  random_bf16_kernel<<<grid_for(rows * cols, 256), 256, 0, stream()>>>(dst, rows, cols, std, seed, full_cols, row0, col0);
  JB_LAUNCHED("random weights");
  return 0;
}

namespace ops {

int memset(Args& a) {
  const uint64_t ptr = a.ptr();
  const uint64_t bytes = static_cast<uint64_t>(a.next());
  const int value = a.i();
  JB_CUDA(cudaMemsetAsync(as<void>(ptr), value, bytes, stream()));
  return 0;
}

int convert(Args& a) {
  const Mat src = a.mat();
  const uint64_t dst = a.ptr();
  const int dst_dtype = a.i();
  if (src.rows == 0) return 0;
  return launch_pdl("convert", convert_2d_kernel, src.rows, row_threads(src.cols), 0, as<void>(dst), dst_dtype, as<void>(src.ptr), src.dtype, src.rows, src.cols,
                    src.ld);
}

int embed(Args& a) {
  const uint64_t table = a.ptr();
  const int dtype = a.i(), vocab = a.i(), hidden = a.i();
  const uint64_t ids = a.ptr();
  const int rows = a.i();
  const uint64_t out = a.ptr();
  const int first = a.i();
  if (rows == 0) return 0;
  return launch_pdl("embed", embed_kernel, rows, row_threads(hidden), 0, as<void>(table), dtype, vocab, hidden, as<int>(ids), first, as<float>(out));
}

int rmsnorm(Args& a) {
  const Mat x = a.mat();
  const uint64_t w = a.ptr();
  const float eps = a.f();
  const uint64_t out = a.ptr();
  const int out_dtype = a.i();
  if (x.rows == 0) return 0;
  return launch_pdl("rmsnorm", rmsnorm_kernel<false>, x.rows, row_threads(x.cols), 0, as<void>(x.ptr), x.dtype, x.cols, x.ld, nullptr, 0, 0, as<float>(w), eps,
                    as<void>(out), out_dtype);
}

int rmsnorms(Args& a) {
  const int count = a.i();
  if (count < 1 || count > NormSet::kMax) return fail("rmsnorms: 1 to " + std::to_string(NormSet::kMax) + " norms, not " + std::to_string(count));
  NormSet set{};
  int cols = 0;
  for (int i = 0; i < count; i++) {
    set.x[i] = a.mat();
    set.w[i] = as<float>(a.ptr());
    set.eps[i] = a.f();
    set.out[i] = as<void>(a.ptr());
    set.out_dtype[i] = a.i();
    if (set.x[i].rows != set.x[0].rows) return fail("rmsnorms: the norms must have the same rows");
    if (set.x[i].cols > cols) cols = set.x[i].cols;
  }
  if (set.x[0].rows == 0) return 0;
  return launch_pdl("rmsnorms", rmsnorms_kernel, dim3(set.x[0].rows, count), row_threads(cols), 0, set);
}

int add_rmsnorm(Args& a) {
  const Mat x = a.mat();
  const Mat src = a.mat();
  const uint64_t w = a.ptr();
  const float eps = a.f();
  const uint64_t out = a.ptr();
  const int out_dtype = a.i();
  if (x.rows == 0) return 0;
  return launch_pdl("add rmsnorm", rmsnorm_kernel<true>, x.rows, row_threads(x.cols), 0, as<void>(x.ptr), x.dtype, x.cols, x.ld, as<void>(src.ptr), src.dtype,
                    src.ld, as<float>(w), eps, as<void>(out), out_dtype);
}

int add(Args& a) {
  const Mat dst = a.mat();
  const Mat src = a.mat();
  if (dst.rows == 0) return 0;
  return launch_pdl("add", add_kernel, dst.rows, row_threads(dst.cols), 0, as<void>(dst.ptr), dst.dtype, dst.ld, as<void>(src.ptr), src.dtype, src.ld, dst.cols);
}

int silu_mul(Args& a) {
  const Mat g = a.mat();
  const Mat u = a.mat();
  const uint64_t out = a.ptr();
  if (g.rows == 0) return 0;
  return launch_pdl("silu_mul", silu_mul_kernel, g.rows, row_threads(g.cols), 0, as<void>(g.ptr), g.dtype, g.ld, as<void>(u.ptr), u.dtype, u.ld, g.cols,
                    as<__nv_bfloat16>(out));
}

int gather(Args& a) {
  const Mat x = a.mat();
  const uint64_t rows = a.ptr();
  const int count = a.i();
  const uint64_t out = a.ptr();
  if (count == 0) return 0;
  return launch_pdl("gather", gather_kernel, count, row_threads(x.cols), 0, as<void>(x.ptr), x.dtype, x.cols, x.ld, as<int>(rows), as<void>(out));
}

}  // namespace ops
}  // namespace jb
