// What the GPU microbenchmarks share (tools/gpu/*_microbench.cu): the definitions the kernels' sources
// expect from context.cu, a CHECK macro, random fills, and a timer with a cold L2. Benchmarks only.
#pragma once
#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace jb {
namespace {
cudaStream_t g_bench_stream;
int g_bench_sms;
int g_bench_sm_version;
}  // namespace
int fail(const std::string& message) {
  fprintf(stderr, "error: %s\n", message.c_str());
  return -1;
}
int fail_cuda(cudaError_t err, const char* what) { return fail(std::string(what) + ": " + cudaGetErrorString(err)); }
cudaStream_t stream() { return g_bench_stream; }
int num_sms() { return g_bench_sms; }
int sm_version() { return g_bench_sm_version; }
int current_device() { return 0; }
// Kernels are timed one at a time: no programmatic dependent launch.
bool pdl_enabled() { return false; }
}  // namespace jb

using namespace jb;

#define CHECK(call)                                                                         \
  do {                                                                                      \
    cudaError_t e_ = (call);                                                                \
    if (e_ != cudaSuccess) {                                                                \
      fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      exit(1);                                                                              \
    }                                                                                       \
  } while (0)

__global__ void fill_bytes(unsigned char* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    uint32_t h = (uint32_t)i * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    p[i] = (unsigned char)((h & 0xff) == 0x80 ? 0 : (h & 0xff));  // int8 in [-127, 127]
  }
}

/** scale · a pseudo-random value in [-1, 1) per element (the hash's top 8 bits). */
__global__ void fill_bf16(__nv_bfloat16* p, size_t n, float scale) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    p[i] = __float2bfloat16(scale * (float)((int)((uint32_t)(i * 2654435761u) >> 24) - 128) / 128.f);
}

/**
 * Reads `n` uint4 and writes one word only if their xor is a value it never is: evicts the L2 leaving it
 * clean. Plain loads: a streaming (evict-first) load would leave the timed kernel's lines in place.
 */
__global__ void read_flush_kernel(const uint4* p, size_t n, uint32_t* sink) {
  uint32_t acc = 0;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const uint4 v = p[i];
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9e3779b9u) *sink = acc;
}

struct Timer {
  cudaEvent_t a, b;
  void* flush;
  /**
   * How the L2 is cooled before each run: a 256 MiB memset (the default) leaves it full of dirty lines,
   * whose write-back then shares HBM with the timed kernel; clean_flush reads 256 MiB instead.
   */
  bool clean_flush = false;
  Timer() {
    CHECK(cudaEventCreate(&a));
    CHECK(cudaEventCreate(&b));
    CHECK(cudaMalloc(&flush, (256u << 20) + 64));
    CHECK(cudaMemset(flush, 0, (256u << 20) + 64));
  }
  /** Median device µs of `fn` over 20 runs, L2 flushed before each. */
  float median_us(const std::function<void()>& fn) {
    std::vector<float> t;
    for (int i = 0; i < 23; i++) {
      if (clean_flush) {
        read_flush();
      } else {
        CHECK(cudaMemsetAsync(flush, i, 256u << 20, stream()));
      }
      CHECK(cudaEventRecord(a, stream()));
      fn();
      CHECK(cudaEventRecord(b, stream()));
      CHECK(cudaEventSynchronize(b));
      float ms;
      CHECK(cudaEventElapsedTime(&ms, a, b));
      if (i >= 3) t.push_back(ms * 1000.f);
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  }
  /**
   * Median µs per call of `fn` captured `calls` times into one CUDA graph and replayed back to back
   * with no flush (triton.testing.do_bench_cudagraph's method): no launch gaps, and whatever of its data
   * the L2 keeps from the call before.
   */
  float graph_us(const std::function<void()>& fn, int calls = 20) {
    return graph_replay_us([&] {
      for (int i = 0; i < calls; i++) fn();
    }) / calls;
  }
  /**
   * Median µs per call of `fn` replayed from a CUDA graph with a cold L2: a graph of `calls` pairs (a
   * clean 256 MiB read, then fn) less a graph of the reads alone, per call. No launch gaps, as in
   * graph_us, and nothing of fn's data left in the L2.
   */
  float graph_cold_us(const std::function<void()>& fn, int calls = 20) {
    const float both = graph_replay_us([&] {
      for (int i = 0; i < calls; i++) {
        read_flush();
        fn();
      }
    });
    const float reads = graph_replay_us([&] {
      for (int i = 0; i < calls; i++) read_flush();
    });
    return (both - reads) / calls;
  }
  void read_flush() {
    read_flush_kernel<<<1024, 256, 0, stream()>>>(static_cast<const uint4*>(flush), (256u << 20) / 16,
                                                  reinterpret_cast<uint32_t*>(static_cast<char*>(flush) + (256u << 20)));
  }
  /** Median µs of one replay of the graph that `record` captures (10 replays after 3 warm-ups). */
  float graph_replay_us(const std::function<void()>& record) {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CHECK(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeThreadLocal));
    record();
    CHECK(cudaStreamEndCapture(stream(), &graph));
    CHECK(cudaGraphInstantiate(&exec, graph, 0));
    std::vector<float> t;
    for (int i = 0; i < 13; i++) {
      CHECK(cudaEventRecord(a, stream()));
      CHECK(cudaGraphLaunch(exec, stream()));
      CHECK(cudaEventRecord(b, stream()));
      CHECK(cudaEventSynchronize(b));
      float ms;
      CHECK(cudaEventElapsedTime(&ms, a, b));
      if (i >= 3) t.push_back(ms * 1000.f);
    }
    CHECK(cudaGraphExecDestroy(exec));
    CHECK(cudaGraphDestroy(graph));
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  }
};

/** Sets up device 0 and the stream the kernels launch on. */
inline void bench_init() {
  CHECK(cudaSetDevice(0));
  CHECK(cudaStreamCreate(&jb::g_bench_stream));
  CHECK(cudaDeviceGetAttribute(&jb::g_bench_sms, cudaDevAttrMultiProcessorCount, 0));
  int major = 0, minor = 0;
  CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0));
  CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0));
  jb::g_bench_sm_version = major * 10 + minor;
}
