// Dense bf16 linear layers through cuBLASLt: y[M,N] = x[M,K] · W[N,K]ᵀ (+ bias), fp32 accumulation,
// bf16 or fp32 output. Row-major y is column-major yᵀ = W·xᵀ: A = W (K×N column-major, transposed),
// B = x (K×M column-major, ld = x's row stride), D = yᵀ (N×M, ld = N). The bias epilogue adds one
// value per row of D, i.e. per output feature. Plans (layouts + chosen algorithm) are cached per
// shape; the workspace is fixed, so the calls are legal inside CUDA graph capture. A single row (batch-1
// decode) goes to the skinny kernel instead (skinny_gemm.cuh).
#include <cublasLt.h>

#include <map>
#include <tuple>

#include "context.cuh"
#include "skinny_gemm.cuh"

namespace jb {
namespace {

constexpr size_t kWorkspaceBytes = 64u << 20;

struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool bias_epilogue = false;  // the bias is added by cuBLASLt's epilogue (pointer set per call)
};

}  // namespace

/** A context's cuBLASLt state: a handle and workspace per context (per device), plans per shape. */
struct GemmState {
  cublasLtHandle_t lt = nullptr;
  void* workspace = nullptr;
  std::map<std::tuple<int, int, int, int, int, bool>, Plan> plans;
};

namespace {

GemmState& state() { return *current().gemm; }

int lt_fail(cublasStatus_t st, const char* what) { return fail(std::string(what) + ": cuBLASLt status " + std::to_string(static_cast<int>(st))); }

#define JB_LT(call)                                     \
  do {                                                  \
    cublasStatus_t st_ = (call);                        \
    if (st_ != CUBLAS_STATUS_SUCCESS) return lt_fail(st_, #call); \
  } while (0)

int ensure_handle() {
  Context& c = current();
  if (!c.gemm) c.gemm = new GemmState();
  if (c.gemm->lt) return 0;
  JB_LT(cublasLtCreate(&c.gemm->lt));
  JB_CUDA(cudaMalloc(&c.gemm->workspace, kWorkspaceBytes));
  return 0;
}

__global__ void add_bias_kernel(void* out, int dtype, int n, const float* bias) {
  pdl_enter();
  const size_t row = blockIdx.x;
  for (int c = threadIdx.x; c < n; c += blockDim.x) {
    const size_t i = row * n + c;
    store_from_float(out, dtype, i, load_as_float(out, dtype, i) + bias[c]);
  }
}

/**
 * A plan for y = x·Wᵀ; with `bias_epilogue`, + an fp32 bias in cuBLASLt's epilogue, before the output's
 * rounding (one launch fewer than add_bias_kernel, and one rounding fewer). Fails where cuBLASLt has no
 * algorithm for that (the caller then adds the bias itself).
 */
int make_plan(int m, int n, int k, int ldb, int out_dtype, bool bias_epilogue, Plan& plan) {
  const cudaDataType_t dt = out_dtype == JB_DTYPE_F32 ? CUDA_R_32F : CUDA_R_16BF;
  JB_LT(cublasLtMatmulDescCreate(&plan.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t trans = CUBLAS_OP_T, none = CUBLAS_OP_N;
  JB_LT(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSA, &trans, sizeof(trans)));
  JB_LT(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSB, &none, sizeof(none)));
  plan.bias_epilogue = bias_epilogue;
  if (bias_epilogue) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    const cudaDataType_t bias_type = CUDA_R_32F;
    JB_LT(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
    JB_LT(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
  }
  JB_LT(cublasLtMatrixLayoutCreate(&plan.a, CUDA_R_16BF, k, n, k));
  JB_LT(cublasLtMatrixLayoutCreate(&plan.b, CUDA_R_16BF, k, m, ldb));
  JB_LT(cublasLtMatrixLayoutCreate(&plan.d, dt, n, m, n));
  cublasLtMatmulPreference_t pref;
  JB_LT(cublasLtMatmulPreferenceCreate(&pref));
  JB_LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &kWorkspaceBytes, sizeof(kWorkspaceBytes)));
  cublasLtMatmulHeuristicResult_t result;
  int found = 0;
  cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(state().lt, plan.op, plan.a, plan.b, plan.d, plan.d, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
    return fail("no cuBLASLt algorithm for a " + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) + " bf16 matmul");
  }
  plan.algo = result.algo;
  return 0;
}

void destroy_plan(Plan& p) {
  if (p.a) cublasLtMatrixLayoutDestroy(p.a);
  if (p.b) cublasLtMatrixLayoutDestroy(p.b);
  if (p.d) cublasLtMatrixLayoutDestroy(p.d);
  if (p.op) cublasLtMatmulDescDestroy(p.op);
}

/** The bias in cuBLASLt's epilogue where it has an algorithm for it; JAMBA_GEMM_BIAS_EPILOGUE=0 adds it apart (for comparison). */
bool use_bias_epilogue() {
  static const bool on = !env_is("JAMBA_GEMM_BIAS_EPILOGUE", "0");
  return on;
}

/** One row goes to the skinny kernel; JAMBA_SKINNY_GEMV=0 keeps it on cuBLASLt (for comparison). */
bool use_skinny() {
  static const bool on = !env_is("JAMBA_SKINNY_GEMV", "0");
  return on;
}

}  // namespace

namespace ops {

int gemm(Args& a) {
  const Mat x = a.mat();
  const uint64_t w = a.ptr();
  const int n = a.i();
  const uint64_t bias = a.ptr();
  const uint64_t out = a.ptr();
  const int out_dtype = a.i();
  if (x.rows == 0) return 0;
  if (x.dtype != JB_DTYPE_BF16) return fail("gemm: x must be bf16");
  if (use_skinny() && skinny_fits(x.rows, x.cols, x.ptr, w))
    return launch_skinny_gemv(as<__nv_bfloat16>(x.ptr), as<__nv_bfloat16>(w), n, x.cols, bias ? as<float>(bias) : nullptr, as<void>(out), out_dtype);
  if (ensure_handle() != 0) return -1;
  const auto key = std::make_tuple(x.rows, n, x.cols, x.ld, out_dtype, bias != 0);
  auto& plans = state().plans;
  auto it = plans.find(key);
  if (it == plans.end()) {
    Plan plan;
    if (bias && use_bias_epilogue() && make_plan(x.rows, n, x.cols, x.ld, out_dtype, true, plan) != 0) {
      destroy_plan(plan);
      plan = Plan{};
    }
    if (!plan.op && make_plan(x.rows, n, x.cols, x.ld, out_dtype, false, plan) != 0) return -1;
    it = plans.emplace(key, plan).first;
  }
  Plan& p = it->second;
  if (p.bias_epilogue) {
    const void* bias_ptr = as<void>(bias);
    JB_LT(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_ptr, sizeof(bias_ptr)));
  }
  const float one = 1.f, zero = 0.f;
  JB_LT(cublasLtMatmul(state().lt, p.op, &one, as<void>(w), p.a, as<void>(x.ptr), p.b, &zero, as<void>(out), p.d, as<void>(out), p.d, &p.algo, state().workspace,
                       kWorkspaceBytes, stream()));
  if (bias && !p.bias_epilogue) {
    if (launch_pdl("gemm bias", add_bias_kernel, x.rows, n >= 1024 ? 1024 : ((n + 31) / 32) * 32, 0, as<void>(out), out_dtype, n, as<float>(bias)) != 0) return -1;
  }
  return 0;
}

}  // namespace ops

int gemm_init() { return ensure_handle(); }

void gemm_release() {
  Context& c = current();
  if (!c.gemm) return;
  for (auto& [key, plan] : c.gemm->plans) destroy_plan(plan);
  if (c.gemm->lt) cublasLtDestroy(c.gemm->lt);
  if (c.gemm->workspace) cudaFree(c.gemm->workspace);
  delete c.gemm;
  c.gemm = nullptr;
}

/** Milliseconds of one y = x·Wᵀ (bf16, fp32 accumulate), best of `reps` after a warm-up. */
int time_gemm(int m, int n, int k, const void* x, const void* w, void* y, int reps, float* best_ms) {
  if (ensure_handle() != 0) return -1;
  Plan plan;
  if (make_plan(m, n, k, k, JB_DTYPE_BF16, false, plan) != 0) return -1;
  cudaEvent_t a, b;
  JB_CUDA(cudaEventCreate(&a));
  JB_CUDA(cudaEventCreate(&b));
  const float one = 1.f, zero = 0.f;
  *best_ms = 1e30f;
  for (int i = 0; i <= reps; i++) {
    JB_CUDA(cudaEventRecord(a, stream()));
    JB_LT(cublasLtMatmul(state().lt, plan.op, &one, w, plan.a, x, plan.b, &zero, y, plan.d, y, plan.d, &plan.algo, state().workspace, kWorkspaceBytes, stream()));
    JB_CUDA(cudaEventRecord(b, stream()));
    JB_CUDA(cudaEventSynchronize(b));
    float ms = 0.f;
    JB_CUDA(cudaEventElapsedTime(&ms, a, b));
    if (i > 0 && ms < *best_ms) *best_ms = ms;
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  destroy_plan(plan);
  return 0;
}

}  // namespace jb
