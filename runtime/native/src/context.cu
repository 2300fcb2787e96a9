// The library's state (device, stream, events, CUDA graphs), the C ABI's memory functions, and the
// program interpreter that runs one step per call.
#include <cstdio>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common.cuh"

namespace jb {
namespace {

// Read by jb_last_error on the calling thread after a call made on a worker thread returned: not thread_local.
std::string g_error;
int g_device = -1;
int g_sms = 0;
int g_sm_version = 0;  // major·10 + minor
cudaStream_t g_stream = nullptr;
cudaEvent_t g_start = nullptr, g_stop = nullptr;
float g_last_ms = 0.f;
// Graphs by key; a key is a program that never changes (see jb_run). A key's first run is eager, so
// one-time work (plans, kernel attributes) happens outside capture; its second run is captured.
std::unordered_map<int, cudaGraphExec_t> g_graphs;
std::unordered_map<int, int> g_runs;
std::mutex g_mutex;
// Per-op device time (JAMBA_PROFILE_OPS=1): events around each op of eager runs; graphs are off then.
bool g_profile = false;
// Programmatic dependent launch (common.cuh): Hopper on, JAMBA_PDL=0 off for comparison.
bool g_pdl = false;
double g_op_ms[JB_OP_COUNT] = {};
double g_op_calls[JB_OP_COUNT] = {};
std::vector<cudaEvent_t> g_op_events;

/**
 * Restarts the step's clock. A benchmark puts work the device needs a while for (an L2 flush) before
 * it, so the measured op's kernels are queued before the device reaches them and the figure holds no
 * host launch time, as a CUDA-graph replay would not.
 */
int timer_start(Args&) {
  JB_CUDA(cudaEventRecord(g_start, g_stream));
  return 0;
}

/**
 * Keeps the device busy for `ns` nanoseconds. A profiled step starts behind it, so the host has queued
 * the step's kernels before the device reaches them: each op's time is then its device time and the
 * gaps between kernels, as in a graph replay, not the host's launch time.
 */
__global__ void hold_kernel(uint64_t ns) {
  uint64_t t0, t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  do {
    __nanosleep(10000);
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  } while (t - t0 < ns);
}

using OpFn = int (*)(Args&);
OpFn op_table(int code) {
  switch (code) {
    case JB_OP_MEMSET: return ops::memset;
    case JB_OP_CONVERT: return ops::convert;
    case JB_OP_EMBED: return ops::embed;
    case JB_OP_RMSNORM: return ops::rmsnorm;
    case JB_OP_GEMM: return ops::gemm;
    case JB_OP_ADD: return ops::add;
    case JB_OP_SILU_MUL: return ops::silu_mul;
    case JB_OP_GATHER: return ops::gather;
    case JB_OP_ROUTER: return ops::router;
    case JB_OP_MOE: return ops::moe;
    case JB_OP_INT8_GEMM: return ops::int8_gemm;
    case JB_OP_ATTENTION: return ops::attention;
    case JB_OP_CONV: return ops::conv;
    case JB_OP_SCAN: return ops::scan;
    case JB_OP_SAMPLE: return ops::sample;
    case JB_OP_TIMER: return timer_start;
    case JB_OP_ADD_RMSNORM: return ops::add_rmsnorm;
    case JB_OP_RMSNORMS: return ops::rmsnorms;
    default: return nullptr;
  }
}

const char* op_name(int code) {
#define JB_OP_NAME(c, name) \
  if (code == c) return #name;
  JB_OPS(JB_OP_NAME)
#undef JB_OP_NAME
  return "?";
}

/** Launches every op of a program on the stream. */
int interpret(const double* program, int length, bool profile) {
  int at = 0;
  std::vector<int> codes;
  while (at < length) {
    if (at + 2 > length) return fail("program: truncated op header");
    const int code = static_cast<int>(program[at]);
    const int argc = static_cast<int>(program[at + 1]);
    if (argc < 0 || at + 2 + argc > length) return fail("program: op " + std::to_string(code) + " runs past the end");
    OpFn fn = op_table(code);
    if (!fn) return fail("program: unknown op code " + std::to_string(code));
    Args args{program + at + 2, argc};
    if (profile) {
      if (g_op_events.size() < 2 * codes.size() + 2) {
        cudaEvent_t e[2];
        JB_CUDA(cudaEventCreate(&e[0]));
        JB_CUDA(cudaEventCreate(&e[1]));
        g_op_events.push_back(e[0]);
        g_op_events.push_back(e[1]);
      }
      JB_CUDA(cudaEventRecord(g_op_events[2 * codes.size()], g_stream));
    }
    if (fn(args) != 0) {
      g_error = std::string(op_name(code)) + ": " + g_error;
      return -1;
    }
    if (args.overflow || args.at != argc) {
      return fail(std::string(op_name(code)) + ": expected " + std::to_string(args.at) + " arguments, got " + std::to_string(argc));
    }
    if (profile) {
      JB_CUDA(cudaEventRecord(g_op_events[2 * codes.size() + 1], g_stream));
      codes.push_back(code);
    }
    at += 2 + argc;
  }
  if (profile) {
    JB_CUDA(cudaStreamSynchronize(g_stream));
    for (size_t i = 0; i < codes.size(); i++) {
      float ms = 0.f;
      JB_CUDA(cudaEventElapsedTime(&ms, g_op_events[2 * i], g_op_events[2 * i + 1]));
      g_op_ms[codes[i]] += ms;
      g_op_calls[codes[i]] += 1;
    }
  }
  return 0;
}

}  // namespace

int fail(const std::string& message) {
  g_error = message;
  return -1;
}

int fail_cuda(cudaError_t err, const char* what) {
  g_error = std::string(what) + ": " + cudaGetErrorString(err);
  return -1;
}

cudaStream_t stream() { return g_stream; }
int num_sms() { return g_sms; }
int sm_version() { return g_sm_version; }
bool pdl_enabled() { return g_pdl; }

}  // namespace jb

using namespace jb;

extern "C" {

const char* jb_last_error(void) { return g_error.c_str(); }

int jb_device_count(void) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    fail_cuda(err, "cudaGetDeviceCount");
    return 0;
  }
  return count;
}

int jb_init(int device) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_device == device) return 0;
  if (g_device >= 0) return fail("the library is already bound to device " + std::to_string(g_device));
  JB_CUDA(cudaSetDevice(device));
  cudaDeviceProp prop;
  JB_CUDA(cudaGetDeviceProperties(&prop, device));
  if (prop.major < 8) return fail(std::string(prop.name) + " (sm_" + std::to_string(prop.major * 10 + prop.minor) + ") is older than sm_80; the kernels need bf16 tensor cores");
  g_sms = prop.multiProcessorCount;
  g_sm_version = prop.major * 10 + prop.minor;
  JB_CUDA(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
  JB_CUDA(cudaEventCreate(&g_start));
  JB_CUDA(cudaEventCreate(&g_stop));
  if (gemm_init() != 0) return -1;  // cuBLASLt handle and workspace: never allocated inside a capture
  g_profile = env_is("JAMBA_PROFILE_OPS", "1");
  g_pdl = g_sm_version >= 90 && !env_is("JAMBA_PDL", "0");
  g_device = device;
  return 0;
}

int jb_device_info(double* out) {
  size_t free_bytes = 0, total = 0;
  JB_CUDA(cudaMemGetInfo(&free_bytes, &total));
  cudaDeviceProp prop;
  JB_CUDA(cudaGetDeviceProperties(&prop, g_device < 0 ? 0 : g_device));
  out[0] = static_cast<double>(free_bytes);
  out[1] = static_cast<double>(total);
  out[2] = prop.multiProcessorCount;
  out[3] = prop.major;
  out[4] = prop.minor;
  out[5] = prop.l2CacheSize;
  return 0;
}

int jb_malloc(uint64_t bytes, double* out) {
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, bytes);
  if (err != cudaSuccess) {
    size_t free_bytes = 0, total = 0;
    cudaMemGetInfo(&free_bytes, &total);
    return fail("cudaMalloc of " + std::to_string(bytes) + " bytes: " + cudaGetErrorString(err) + " (" + std::to_string(free_bytes >> 20) + " MiB free of " +
                std::to_string(total >> 20) + ")");
  }
  *out = static_cast<double>(reinterpret_cast<uintptr_t>(p));
  return 0;
}

int jb_free(double ptr) {
  JB_CUDA(cudaFree(as<void>(static_cast<uint64_t>(ptr))));
  return 0;
}

int jb_upload(double dst, const void* src, uint64_t bytes) {
  JB_CUDA(cudaMemcpyAsync(as<void>(static_cast<uint64_t>(dst)), src, bytes, cudaMemcpyHostToDevice, g_stream));
  JB_CUDA(cudaStreamSynchronize(g_stream));
  return 0;
}

int jb_download(void* dst, double src, uint64_t bytes) {
  JB_CUDA(cudaMemcpyAsync(dst, as<void>(static_cast<uint64_t>(src)), bytes, cudaMemcpyDeviceToHost, g_stream));
  JB_CUDA(cudaStreamSynchronize(g_stream));
  return 0;
}

int jb_sync(void) {
  JB_CUDA(cudaStreamSynchronize(g_stream));
  return 0;
}

int jb_convert(double dst, int dst_dtype, double src, int src_dtype, uint64_t count) {
  if (launch_convert(as<void>(static_cast<uint64_t>(dst)), dst_dtype, as<void>(static_cast<uint64_t>(src)), src_dtype, count) != 0) return -1;
  JB_CUDA(cudaStreamSynchronize(g_stream));
  return 0;
}

int jb_quantize_int8(double q, double scale, double src, int src_dtype, int rows, int cols) {
  if (launch_quantize_int8(as<int8_t>(static_cast<uint64_t>(q)), as<float>(static_cast<uint64_t>(scale)), as<void>(static_cast<uint64_t>(src)), src_dtype, rows,
                           cols) != 0)
    return -1;
  JB_CUDA(cudaStreamSynchronize(g_stream));
  return 0;
}

int jb_fill_random_bf16(double dst, uint64_t count, double std, uint32_t seed) {
  if (launch_fill_random_bf16(as<__nv_bfloat16>(static_cast<uint64_t>(dst)), count, static_cast<float>(std), seed) != 0) return -1;
  JB_CUDA(cudaStreamSynchronize(g_stream));
  return 0;
}

int jb_run(const double* program, int length, const void* payload, uint64_t payload_bytes, double payload_dev, void* result, uint64_t result_bytes,
           double result_dev, int graph_key) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_device < 0) return fail("jb_run before jb_init");
  if (payload_bytes > 0) JB_CUDA(cudaMemcpyAsync(as<void>(static_cast<uint64_t>(payload_dev)), payload, payload_bytes, cudaMemcpyHostToDevice, g_stream));
  if (g_profile) {
    hold_kernel<<<1, 1, 0, g_stream>>>(20'000'000ull);
    JB_LAUNCHED("profile hold");
  }
  JB_CUDA(cudaEventRecord(g_start, g_stream));
  const bool eager = graph_key < 0 || g_profile || g_runs[graph_key]++ == 0;
  if (!eager) {
    auto found = g_graphs.find(graph_key);
    if (found == g_graphs.end()) {
      cudaGraph_t graph;
      JB_CUDA(cudaStreamBeginCapture(g_stream, cudaStreamCaptureModeThreadLocal));
      const int rc = interpret(program, length, false);
      cudaError_t end = cudaStreamEndCapture(g_stream, &graph);
      if (rc != 0) return -1;
      if (end != cudaSuccess) return fail_cuda(end, "capturing a step graph");
      cudaGraphExec_t exec;
      cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
      cudaGraphDestroy(graph);
      if (inst != cudaSuccess) return fail_cuda(inst, "instantiating a step graph");
      found = g_graphs.emplace(graph_key, exec).first;
    }
    JB_CUDA(cudaGraphLaunch(found->second, g_stream));
  } else if (interpret(program, length, g_profile) != 0) {
    if (graph_key >= 0) g_runs.erase(graph_key);
    cudaStreamSynchronize(g_stream);  // leave nothing running behind the error
    return -1;
  }
  JB_CUDA(cudaEventRecord(g_stop, g_stream));
  if (result_bytes > 0) JB_CUDA(cudaMemcpyAsync(result, as<void>(static_cast<uint64_t>(result_dev)), result_bytes, cudaMemcpyDeviceToHost, g_stream));
  JB_CUDA(cudaStreamSynchronize(g_stream));
  JB_CUDA(cudaEventElapsedTime(&g_last_ms, g_start, g_stop));
  return 0;
}

int jb_measure_ceilings(double* out) {
  const size_t bytes = 4ull << 30;
  void *src = nullptr, *dst = nullptr;
  JB_CUDA(cudaMalloc(&src, bytes));
  if (cudaMalloc(&dst, bytes) != cudaSuccess) {
    cudaFree(src);
    return fail("jb_measure_ceilings: not enough device memory for two 4 GiB buffers");
  }
  JB_CUDA(cudaMemsetAsync(src, 1, bytes, g_stream));
  float best = 1e30f;
  for (int i = 0; i < 6; i++) {
    JB_CUDA(cudaEventRecord(g_start, g_stream));
    JB_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g_stream));
    JB_CUDA(cudaEventRecord(g_stop, g_stream));
    JB_CUDA(cudaEventSynchronize(g_stop));
    float ms = 0.f;
    JB_CUDA(cudaEventElapsedTime(&ms, g_start, g_stop));
    if (i > 0 && ms < best) best = ms;
  }
  out[0] = 2.0 * bytes / (best * 1e-3) / 1e9;
  // 8192³ bf16 on random data (zeros run faster, and would overstate the ceiling).
  const int n = 8192;
  const size_t mat = (size_t)n * n;
  __nv_bfloat16* x = static_cast<__nv_bfloat16*>(src);
  __nv_bfloat16* w = x + mat;
  __nv_bfloat16* y = static_cast<__nv_bfloat16*>(dst);
  if (launch_fill_random_bf16(x, 2 * mat, 1.f, 7) != 0) return -1;
  float gemm_ms = 0.f;
  const int rc = time_gemm(n, n, n, x, w, y, 10, &gemm_ms);
  cudaFree(src);
  cudaFree(dst);
  if (rc != 0) return -1;
  out[1] = 2.0 * n * (double)n * n / (gemm_ms * 1e-3) / 1e12;
  return 0;
}

int jb_reset_graphs(void) {
  std::lock_guard<std::mutex> lock(g_mutex);
  for (auto& [key, exec] : g_graphs) cudaGraphExecDestroy(exec);
  g_graphs.clear();
  g_runs.clear();
  return 0;
}

int jb_has_graph(int graph_key) {
  std::lock_guard<std::mutex> lock(g_mutex);
  return !g_profile && graph_key >= 0 && g_graphs.count(graph_key) > 0 ? 1 : 0;
}

double jb_last_run_ms(void) { return g_last_ms; }

int jb_op_profile(double* out) {
  for (int i = 0; i < JB_OP_COUNT; i++) {
    out[2 * i] = g_op_ms[i];
    out[2 * i + 1] = g_op_calls[i];
    g_op_ms[i] = g_op_calls[i] = 0;
  }
  return g_profile ? 0 : fail("op profiling is off (set JAMBA_PROFILE_OPS=1)");
}

}  // extern "C"
