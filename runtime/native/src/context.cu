// The library's state (device, stream, events, CUDA graphs), the C ABI's memory functions, and the
// program interpreter that runs one step per call.
#include <cstdio>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "context.cuh"

namespace jb {
namespace {

// Errors of calls made without a context (jb_init, jb_device_count), for jb_last_error(-1).
std::string g_error;
// Contexts by id. Ids are never reused, so a released context's id fails cleanly instead of reaching
// another's state (a process opens a few: one per rank, and tests a few more).
constexpr int kMaxContexts = 4096;
Context* g_contexts[kMaxContexts] = {};
int g_context_count = 0;
std::mutex g_contexts_mutex;
thread_local Context* t_current = nullptr;

/** Makes `id` the calling thread's context and its device current; false (with a message) when unknown. */
bool enter(int id) {
  Context* c = id >= 0 && id < kMaxContexts ? g_contexts[id] : nullptr;
  if (!c) {
    t_current = nullptr;
    g_error = "no context " + std::to_string(id) + " (jb_init first)";
    return false;
  }
  t_current = c;
  const cudaError_t err = cudaSetDevice(c->device);
  if (err != cudaSuccess) {
    fail_cuda(err, "cudaSetDevice");
    return false;
  }
  return true;
}

#define JB_ENTER(id) \
  if (!enter(id)) return -1
#define JB_CTX (current())

/**
 * Restarts the step's clock. A benchmark puts work the device needs a while for (an L2 flush) before
 * it, so the measured op's kernels are queued before the device reaches them and the figure holds no
 * host launch time, as a CUDA-graph replay would not.
 */
int timer_start(Args&) {
  JB_CUDA(cudaEventRecord(JB_CTX.start, JB_CTX.stream));
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
    case JB_OP_ALL_REDUCE: return ops::all_reduce;
    case JB_OP_ALL_GATHER: return ops::all_gather;
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

/** Launches every op of a program on the current context's stream. */
int interpret(const double* program, int length, bool profile) {
  Context& c = JB_CTX;
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
      if (c.op_events.size() < 2 * codes.size() + 2) {
        cudaEvent_t e[2];
        JB_CUDA(cudaEventCreate(&e[0]));
        JB_CUDA(cudaEventCreate(&e[1]));
        c.op_events.push_back(e[0]);
        c.op_events.push_back(e[1]);
      }
      JB_CUDA(cudaEventRecord(c.op_events[2 * codes.size()], c.stream));
    }
    if (fn(args) != 0) {
      c.error = std::string(op_name(code)) + ": " + c.error;
      return -1;
    }
    if (args.overflow || args.at != argc) {
      return fail(std::string(op_name(code)) + ": expected " + std::to_string(args.at) + " arguments, got " + std::to_string(argc));
    }
    if (profile) {
      JB_CUDA(cudaEventRecord(c.op_events[2 * codes.size() + 1], c.stream));
      codes.push_back(code);
    }
    at += 2 + argc;
  }
  if (profile) {
    JB_CUDA(cudaStreamSynchronize(c.stream));
    for (size_t i = 0; i < codes.size(); i++) {
      float ms = 0.f;
      JB_CUDA(cudaEventElapsedTime(&ms, c.op_events[2 * i], c.op_events[2 * i + 1]));
      c.op_ms[codes[i]] += ms;
      c.op_calls[codes[i]] += 1;
    }
  }
  return 0;
}

/** Runs (or captures, or replays) one program on the current context's stream; the caller holds its mutex. */
int run_program(const double* program, int length, int graph_key) {
  Context& c = JB_CTX;
  const bool eager = graph_key < 0 || c.profile || !captures_graphs(c) || c.runs[graph_key]++ == 0;
  if (eager) {
    if (interpret(program, length, c.profile) == 0) return 0;
    if (graph_key >= 0) c.runs.erase(graph_key);
    cudaStreamSynchronize(c.stream);  // leave nothing running behind the error
    return -1;
  }
  auto found = c.graphs.find(graph_key);
  if (found == c.graphs.end()) {
    cudaGraph_t graph;
    JB_CUDA(cudaStreamBeginCapture(c.stream, cudaStreamCaptureModeThreadLocal));
    const int rc = interpret(program, length, false);
    cudaError_t end = cudaStreamEndCapture(c.stream, &graph);
    if (rc != 0) return -1;
    if (end != cudaSuccess) return fail_cuda(end, "capturing a step graph");
    cudaGraphExec_t exec;
    cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (inst != cudaSuccess) return fail_cuda(inst, "instantiating a step graph");
    found = c.graphs.emplace(graph_key, exec).first;
  }
  JB_CUDA(cudaGraphLaunch(found->second, c.stream));
  return 0;
}

}  // namespace

Context& current() { return *t_current; }

int fail(const std::string& message) {
  (t_current ? t_current->error : g_error) = message;
  return -1;
}

int fail_cuda(cudaError_t err, const char* what) { return fail(std::string(what) + ": " + cudaGetErrorString(err)); }

cudaStream_t stream() { return t_current->stream; }
int current_device() { return t_current->device; }
int num_sms() { return t_current->sms; }
int sm_version() { return t_current->sm_version; }
bool pdl_enabled() { return t_current->pdl; }

Context* context_by_id(int id) { return id >= 0 && id < kMaxContexts ? g_contexts[id] : nullptr; }

void leave_context() { t_current = nullptr; }

}  // namespace jb

using namespace jb;

extern "C" {

const char* jb_last_error(int ctx) {
  Context* c = context_by_id(ctx);
  return c ? c->error.c_str() : g_error.c_str();
}

int jb_device_count(void) {
  t_current = nullptr;
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    fail_cuda(err, "cudaGetDeviceCount");
    return 0;
  }
  return count;
}

int jb_init(int device) {
  t_current = nullptr;
  std::lock_guard<std::mutex> lock(g_contexts_mutex);
  if (g_context_count >= kMaxContexts) return fail("too many contexts (" + std::to_string(kMaxContexts) + ")");
  JB_CUDA(cudaSetDevice(device));
  cudaDeviceProp prop;
  JB_CUDA(cudaGetDeviceProperties(&prop, device));
  if (prop.major < 8) return fail(std::string(prop.name) + " (sm_" + std::to_string(prop.major * 10 + prop.minor) + ") is older than sm_80; the kernels need bf16 tensor cores");
  auto* c = new Context();
  c->id = g_context_count;
  c->device = device;
  c->sms = prop.multiProcessorCount;
  c->sm_version = prop.major * 10 + prop.minor;
  c->profile = env_is("JAMBA_PROFILE_OPS", "1");
  c->pdl = c->sm_version >= 90 && !env_is("JAMBA_PDL", "0");
  t_current = c;
  cudaError_t err = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
  if (err == cudaSuccess) err = cudaEventCreate(&c->start);
  if (err == cudaSuccess) err = cudaEventCreate(&c->stop);
  // The cuBLASLt handle and workspace: never allocated inside a capture.
  const int rc = err != cudaSuccess ? fail_cuda(err, "creating the stream and events") : gemm_init();
  t_current = nullptr;
  if (rc != 0) {
    g_error = c->error;
    delete c;
    return -1;
  }
  g_contexts[c->id] = c;
  return g_context_count++;
}

int jb_release(int ctx) {
  JB_ENTER(ctx);
  Context* c = &JB_CTX;
  if (c->group) return fail("context " + std::to_string(ctx) + " is still a rank of a tensor-parallel group");
  {
    std::lock_guard<std::mutex> lock(c->mutex);
    for (auto& [key, exec] : c->graphs) cudaGraphExecDestroy(exec);
    for (auto& [ptr, bytes] : c->sizes) cudaFree(as<void>(ptr));
    for (cudaEvent_t e : c->op_events) cudaEventDestroy(e);
  }
  gemm_release();
  cudaEventDestroy(c->start);
  cudaEventDestroy(c->stop);
  cudaStreamDestroy(c->stream);
  {
    std::lock_guard<std::mutex> lock(g_contexts_mutex);
    g_contexts[ctx] = nullptr;
  }
  t_current = nullptr;
  delete c;
  return 0;
}

int jb_device_info(int ctx, double* out) {
  JB_ENTER(ctx);
  size_t free_bytes = 0, total = 0;
  JB_CUDA(cudaMemGetInfo(&free_bytes, &total));
  cudaDeviceProp prop;
  JB_CUDA(cudaGetDeviceProperties(&prop, JB_CTX.device));
  out[0] = static_cast<double>(free_bytes);
  out[1] = static_cast<double>(total);
  out[2] = prop.multiProcessorCount;
  out[3] = prop.major;
  out[4] = prop.minor;
  out[5] = prop.l2CacheSize;
  out[6] = static_cast<double>(JB_CTX.allocated);
  out[7] = JB_CTX.device;
  return 0;
}

int jb_malloc(int ctx, uint64_t bytes, double* out) {
  JB_ENTER(ctx);
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, bytes);
  if (err != cudaSuccess) {
    size_t free_bytes = 0, total = 0;
    cudaMemGetInfo(&free_bytes, &total);
    return fail("cudaMalloc of " + std::to_string(bytes) + " bytes: " + cudaGetErrorString(err) + " (" + std::to_string(free_bytes >> 20) + " MiB free of " +
                std::to_string(total >> 20) + ")");
  }
  JB_CTX.allocated += bytes;
  JB_CTX.sizes[reinterpret_cast<uintptr_t>(p)] = bytes;
  *out = static_cast<double>(reinterpret_cast<uintptr_t>(p));
  return 0;
}

int jb_free(int ctx, double ptr) {
  JB_ENTER(ctx);
  const uint64_t p = static_cast<uint64_t>(ptr);
  auto found = JB_CTX.sizes.find(p);
  if (found == JB_CTX.sizes.end()) return fail("jb_free: " + std::to_string(p) + " was not allocated by this context");
  JB_CUDA(cudaFree(as<void>(p)));
  JB_CTX.allocated -= found->second;
  JB_CTX.sizes.erase(found);
  return 0;
}

int jb_upload(int ctx, double dst, const void* src, uint64_t bytes) {
  JB_ENTER(ctx);
  JB_CUDA(cudaMemcpyAsync(as<void>(static_cast<uint64_t>(dst)), src, bytes, cudaMemcpyHostToDevice, JB_CTX.stream));
  JB_CUDA(cudaStreamSynchronize(JB_CTX.stream));
  return 0;
}

int jb_download(int ctx, void* dst, double src, uint64_t bytes) {
  JB_ENTER(ctx);
  JB_CUDA(cudaMemcpyAsync(dst, as<void>(static_cast<uint64_t>(src)), bytes, cudaMemcpyDeviceToHost, JB_CTX.stream));
  JB_CUDA(cudaStreamSynchronize(JB_CTX.stream));
  return 0;
}

int jb_host_register(int ctx, const void* ptr, uint64_t bytes) {
  JB_ENTER(ctx);
  const cudaError_t err = cudaHostRegister(const_cast<void*>(ptr), bytes, cudaHostRegisterDefault);
  if (err == cudaSuccess) return 0;
  // The caller goes on with plain memory (a memlock limit): leave no error for a later launch's check.
  cudaGetLastError();
  return fail_cuda(err, "page-locking host memory");
}

int jb_host_unregister(int ctx, const void* ptr) {
  JB_ENTER(ctx);
  JB_CUDA(cudaHostUnregister(const_cast<void*>(ptr)));
  return 0;
}

int jb_sync(int ctx) {
  JB_ENTER(ctx);
  JB_CUDA(cudaStreamSynchronize(JB_CTX.stream));
  return 0;
}

int jb_convert(int ctx, double dst, int dst_dtype, double src, int src_dtype, uint64_t count) {
  JB_ENTER(ctx);
  if (launch_convert(as<void>(static_cast<uint64_t>(dst)), dst_dtype, as<void>(static_cast<uint64_t>(src)), src_dtype, count) != 0) return -1;
  JB_CUDA(cudaStreamSynchronize(JB_CTX.stream));
  return 0;
}

int jb_quantize_int8(int ctx, double q, double scale, double src, int src_dtype, int rows, int cols) {
  JB_ENTER(ctx);
  if (launch_quantize_int8(as<int8_t>(static_cast<uint64_t>(q)), as<float>(static_cast<uint64_t>(scale)), as<void>(static_cast<uint64_t>(src)), src_dtype, rows,
                           cols) != 0)
    return -1;
  JB_CUDA(cudaStreamSynchronize(JB_CTX.stream));
  return 0;
}

int jb_fill_random_bf16(int ctx, double dst, uint64_t rows, uint64_t cols, double std, uint32_t seed, uint64_t full_cols, uint64_t row0, uint64_t col0) {
  JB_ENTER(ctx);
  if (launch_fill_random_bf16(as<__nv_bfloat16>(static_cast<uint64_t>(dst)), rows, cols, static_cast<float>(std), seed, full_cols, row0, col0) != 0) return -1;
  JB_CUDA(cudaStreamSynchronize(JB_CTX.stream));
  return 0;
}

int jb_run(int ctx, const double* program, int length, const void* payload, uint64_t payload_bytes, double payload_dev, void* result, uint64_t result_bytes,
           double result_dev, int graph_key) {
  JB_ENTER(ctx);
  Context& c = JB_CTX;
  std::lock_guard<std::mutex> lock(c.mutex);
  if (payload_bytes > 0) JB_CUDA(cudaMemcpyAsync(as<void>(static_cast<uint64_t>(payload_dev)), payload, payload_bytes, cudaMemcpyHostToDevice, c.stream));
  if (c.profile) {
    hold_kernel<<<1, 1, 0, c.stream>>>(20'000'000ull);
    JB_LAUNCHED("profile hold");
  }
  JB_CUDA(cudaEventRecord(c.start, c.stream));
  if (run_program(program, length, graph_key) != 0) return -1;
  JB_CUDA(cudaEventRecord(c.stop, c.stream));
  if (result_bytes > 0) JB_CUDA(cudaMemcpyAsync(result, as<void>(static_cast<uint64_t>(result_dev)), result_bytes, cudaMemcpyDeviceToHost, c.stream));
  JB_CUDA(cudaStreamSynchronize(c.stream));
  JB_CUDA(cudaEventElapsedTime(&c.last_ms, c.start, c.stop));
  return 0;
}

int jb_measure_ceilings(int ctx, double* out) {
  JB_ENTER(ctx);
  Context& c = JB_CTX;
  const size_t bytes = 4ull << 30;
  void *src = nullptr, *dst = nullptr;
  JB_CUDA(cudaMalloc(&src, bytes));
  if (cudaMalloc(&dst, bytes) != cudaSuccess) {
    cudaFree(src);
    return fail("jb_measure_ceilings: not enough device memory for two 4 GiB buffers");
  }
  JB_CUDA(cudaMemsetAsync(src, 1, bytes, c.stream));
  float best = 1e30f;
  for (int i = 0; i < 6; i++) {
    JB_CUDA(cudaEventRecord(c.start, c.stream));
    JB_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c.stream));
    JB_CUDA(cudaEventRecord(c.stop, c.stream));
    JB_CUDA(cudaEventSynchronize(c.stop));
    float ms = 0.f;
    JB_CUDA(cudaEventElapsedTime(&ms, c.start, c.stop));
    if (i > 0 && ms < best) best = ms;
  }
  out[0] = 2.0 * bytes / (best * 1e-3) / 1e9;
  // 8192³ bf16 on random data (zeros run faster, and would overstate the ceiling).
  const int n = 8192;
  const size_t mat = (size_t)n * n;
  __nv_bfloat16* x = static_cast<__nv_bfloat16*>(src);
  __nv_bfloat16* w = x + mat;
  __nv_bfloat16* y = static_cast<__nv_bfloat16*>(dst);
  if (launch_fill_random_bf16(x, 2 * n, n, 1.f, 7, n, 0, 0) != 0) return -1;
  float gemm_ms = 0.f;
  const int rc = time_gemm(n, n, n, x, w, y, 10, &gemm_ms);
  cudaFree(src);
  cudaFree(dst);
  if (rc != 0) return -1;
  out[1] = 2.0 * n * (double)n * n / (gemm_ms * 1e-3) / 1e12;
  return 0;
}

int jb_reset_graphs(int ctx) {
  JB_ENTER(ctx);
  std::lock_guard<std::mutex> lock(JB_CTX.mutex);
  for (auto& [key, exec] : JB_CTX.graphs) cudaGraphExecDestroy(exec);
  JB_CTX.graphs.clear();
  JB_CTX.runs.clear();
  return 0;
}

int jb_has_graph(int ctx, int graph_key) {
  JB_ENTER(ctx);
  std::lock_guard<std::mutex> lock(JB_CTX.mutex);
  return !JB_CTX.profile && graph_key >= 0 && JB_CTX.graphs.count(graph_key) > 0 ? 1 : 0;
}

double jb_last_run_ms(int ctx) {
  Context* c = context_by_id(ctx);
  return c ? c->last_ms : 0.0;
}

int jb_op_profile(int ctx, double* out) {
  JB_ENTER(ctx);
  Context& c = JB_CTX;
  for (int i = 0; i < JB_OP_COUNT; i++) {
    out[2 * i] = c.op_ms[i];
    out[2 * i + 1] = c.op_calls[i];
    c.op_ms[i] = c.op_calls[i] = 0;
  }
  return c.profile ? 0 : fail("op profiling is off (set JAMBA_PROFILE_OPS=1)");
}

}  // extern "C"
