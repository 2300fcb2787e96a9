// The dense bf16 linear layers of a Jamba-1.5-Mini decode step, one at a time, on the GPU machine (a
// benchmark, not a test):
//   nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr \
//        -Iruntime/native/include tools/gpu/gemm_microbench.cu -lcublasLt -o /tmp/gemm_microbench
// For each shape and row count: cuBLASLt's first heuristic (what the backend runs), the best of up to 16
// of its algorithms, the one-row skinny kernel (runtime/native/src/skinny_gemm.cuh) with its largest
// difference from cuBLASLt's output, and a plain read of W as the ceiling; median device µs with a
// cold L2, and W's bytes over that time. (A hand-written weight-streaming tensor-core kernel for few rows
// was measured against these on 2026-12-02 and lost everywhere: docs/benchmarks/cuda.md.)
#include <cublasLt.h>

#include <cmath>

#include "../../runtime/native/src/common.cuh"
#include "../../runtime/native/src/skinny_gemm.cuh"

#include "bench_common.cuh"

#define LT_CHECK(call)                                                         \
  do {                                                                         \
    cublasStatus_t s_ = (call);                                                \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                         \
      fprintf(stderr, "%s:%d %s: status %d\n", __FILE__, __LINE__, #call, (int)s_); \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

__global__ void read_words(const uint4* p, size_t words, uint32_t* sink) {
  uint32_t acc = 0;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < words; i += (size_t)gridDim.x * blockDim.x) acc ^= __ldcs(p + i).x;
  if (acc == 0x12345678u) *sink = acc;
}

struct Shape {
  const char* name;
  int n, k;
};

int main() {
  bench_init();
  cublasLtHandle_t lt;
  LT_CHECK(cublasLtCreate(&lt));
  const size_t ws_bytes = 64u << 20;
  void* ws;
  CHECK(cudaMalloc(&ws, ws_bytes));
  const Shape shapes[] = {{"mamba in_proj", 16384, 4096}, {"mamba out_proj", 4096, 8192}, {"mamba x_proj", 288, 8192}, {"mamba dt_proj", 8192, 256},
                          {"attn q / o", 4096, 4096},     {"attn k / v", 1024, 4096},    {"lm_head", 65536, 4096},   {"router", 16, 4096}};
  const int max_m = 256;
  __nv_bfloat16 *x, *w, *y_lt, *y_sk;
  uint32_t* sink;
  CHECK(cudaMalloc(&x, (size_t)max_m * 16384 * 2));
  CHECK(cudaMalloc(&w, (size_t)65536 * 4096 * 2));
  CHECK(cudaMalloc(&y_lt, (size_t)max_m * 65536 * 2));
  CHECK(cudaMalloc(&y_sk, (size_t)65536 * 2));
  CHECK(cudaMalloc(&sink, 4));
  fill_bf16<<<1024, 256>>>(x, (size_t)max_m * 16384, 1.f);
  fill_bf16<<<1024, 256>>>(w, (size_t)65536 * 4096, 0.02f);
  Timer timer;
  printf("%-16s %5s %-26s %10s %8s\n", "shape", "rows", "what", "µs", "TB/s");
  for (const Shape& s : shapes) {
    const double bytes = 2.0 * s.n * s.k;
    const float read_us = timer.median_us([&] { read_words<<<4 * num_sms(), 512, 0, stream()>>>((const uint4*)w, (size_t)bytes / 16, sink); });
    printf("%-16s %5s %-26s %10.1f %8.2f\n", s.name, "-", "read W", read_us, bytes / read_us / 1e6);
    for (int m : {1, 8, 16, 64, 256}) {
      auto row = [&](const char* what, float us) { printf("%-16s %5d %-26s %10.1f %8.2f\n", s.name, m, what, us, bytes / us / 1e6); };
      cublasLtMatmulDesc_t op;
      cublasLtMatrixLayout_t a, b, d;
      LT_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
      const cublasOperation_t trans = CUBLAS_OP_T, none = CUBLAS_OP_N;
      LT_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &trans, sizeof(trans)));
      LT_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &none, sizeof(none)));
      LT_CHECK(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, s.k, s.n, s.k));
      LT_CHECK(cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, s.k, m, s.k));
      LT_CHECK(cublasLtMatrixLayoutCreate(&d, CUDA_R_16BF, s.n, m, s.n));
      cublasLtMatmulPreference_t pref;
      LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
      LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes, sizeof(ws_bytes)));
      cublasLtMatmulHeuristicResult_t results[16];
      int found = 0;
      LT_CHECK(cublasLtMatmulAlgoGetHeuristic(lt, op, a, b, d, d, pref, 16, results, &found));
      const float one = 1.f, zero = 0.f;
      float first = 0, best = 1e30f;
      int best_i = 0;
      for (int i = 0; i < found; i++) {
        const float us = timer.median_us([&] { cublasLtMatmul(lt, op, &one, w, a, x, b, &zero, y_lt, d, y_lt, d, &results[i].algo, ws, ws_bytes, stream()); });
        if (i == 0) first = us;
        if (us < best) best = us, best_i = i;
      }
      row("cuBLASLt heuristic #1", first);
      if (m == 1) {
        cublasLtMatmul(lt, op, &one, w, a, x, b, &zero, y_lt, d, y_lt, d, &results[0].algo, ws, ws_bytes, stream());
        const float us = timer.median_us([&] { launch_skinny_gemv(x, w, s.n, s.k, nullptr, y_sk, JB_DTYPE_BF16); });
        std::vector<__nv_bfloat16> ref((size_t)m * s.n), got((size_t)m * s.n);
        CHECK(cudaMemcpy(ref.data(), y_lt, ref.size() * 2, cudaMemcpyDeviceToHost));
        CHECK(cudaMemcpy(got.data(), y_sk, got.size() * 2, cudaMemcpyDeviceToHost));
        float worst = 0.f, scale = 0.f;
        for (size_t i = 0; i < ref.size(); i++) {
          worst = std::max(worst, std::fabs(__bfloat162float(ref[i]) - __bfloat162float(got[i])));
          scale = std::max(scale, std::fabs(__bfloat162float(ref[i])));
        }
        char label[64];
        snprintf(label, sizeof label, "skinny (%d K slices)", skinny_k_splits(s.n, s.k));
        row(label, us);
        printf("%-16s %5d %-26s %10.2e %8s\n", s.name, m, "skinny max |diff| / max", worst / std::max(scale, 1e-30f), "");
      }
      char label[64];
      snprintf(label, sizeof label, "cuBLASLt best (#%d of %d)", best_i + 1, found);
      row(label, best);
      cublasLtMatmulPreferenceDestroy(pref);
      cublasLtMatrixLayoutDestroy(a);
      cublasLtMatrixLayoutDestroy(b);
      cublasLtMatrixLayoutDestroy(d);
      cublasLtMatmulDescDestroy(op);
    }
  }
  CHECK(cudaGetLastError());
  return 0;
}
