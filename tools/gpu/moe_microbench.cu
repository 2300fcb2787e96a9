// The ExpertsInt8 MoE stages one at a time, and variants of the decode kernel, on the GPU machine (a
// benchmark, not a test; it is built there with its nvcc):
//   nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr \
//        -Iruntime/native/include tools/gpu/moe_microbench.cu -o /tmp/moe_microbench && /tmp/moe_microbench
// Mini shapes (16 experts, top-2, hidden 4096, ffn 14336), random int8 weights, random distinct routing.
// Each figure is the median of 20 runs of device time with a cold L2 (a 256 MiB write between runs), with
// the bytes of the experts actually touched over that time, and a plain read of the same bytes as the
// ceiling. It includes the kernels' source so that it can time their parts; nothing here ships.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "../../runtime/native/src/moe.cu"

namespace jb {
namespace {
cudaStream_t g_bench_stream;
int g_bench_sms;
}  // namespace
int fail(const std::string& message) {
  fprintf(stderr, "error: %s\n", message.c_str());
  return -1;
}
int fail_cuda(cudaError_t err, const char* what) { return fail(std::string(what) + ": " + cudaGetErrorString(err)); }
cudaStream_t stream() { return g_bench_stream; }
int num_sms() { return g_bench_sms; }
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

__global__ void fill_bf16(__nv_bfloat16* p, size_t n, float scale) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    p[i] = __float2bfloat16(scale * (float)((int)((i * 2654435761u) >> 24) - 128) / 128.f);
}

/** The read ceiling: every byte of the given ranges once, 16 bytes per load, a few loads in flight. */
__global__ void read_ranges(const uint4* const* ranges, size_t words_each, int n_ranges, uint32_t* sink) {
  uint32_t acc = 0;
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  for (int r = 0; r < n_ranges; r++) {
    const uint4* p = ranges[r];
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    for (; i + 3 * stride < words_each; i += 4 * stride) {
      const uint4 a = load_streamed(p + i), b = load_streamed(p + i + stride), c = load_streamed(p + i + 2 * stride), d = load_streamed(p + i + 3 * stride);
      acc ^= a.x ^ b.y ^ c.z ^ d.w;
    }
    for (; i < words_each; i += stride) acc ^= load_streamed(p + i).x;
  }
  if (acc == 0x12345678u) *sink = acc;
}

/** The streamed kernel's access pattern without its arithmetic: per warp 16 rows, lanes (g, t4) reading
 *  16 bytes at k = 64·i + 16·t4 of rows g and g+8, BATCH k-blocks at a time. */
template <bool PREFETCH, int BATCH>
__global__ void read_rows(const unsigned char* w, int rows, int K, uint32_t* sink) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  const int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  if (warp * 16 >= rows) return;
  const unsigned char* lo = w + (size_t)(warp * 16 + g) * K;
  const unsigned char* hi = lo + (size_t)8 * K;
  uint32_t acc = 0;
  for (int kb = 0; kb < K / 64; kb += BATCH) {
    uint4 v[BATCH][2];
#pragma unroll
    for (int u = 0; u < BATCH; u++) {
      v[u][0] = load_streamed<PREFETCH>(lo + (kb + u) * 64 + t4 * 16);
      v[u][1] = load_streamed<PREFETCH>(hi + (kb + u) * 64 + t4 * 16);
    }
#pragma unroll
    for (int u = 0; u < BATCH; u++) acc ^= v[u][0].x ^ v[u][1].y;
  }
  if (acc == 0x12345678u) *sink = acc;
}

struct Timer {
  cudaEvent_t a, b;
  void* flush;
  Timer() {
    CHECK(cudaEventCreate(&a));
    CHECK(cudaEventCreate(&b));
    CHECK(cudaMalloc(&flush, 256u << 20));
  }
  /** Median device µs of `fn` over 20 runs, L2 flushed before each. */
  float median_us(const std::function<void()>& fn) {
    std::vector<float> t;
    for (int i = 0; i < 23; i++) {
      CHECK(cudaMemsetAsync(flush, i, 256u << 20, stream()));
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
};

constexpr size_t kPartialBytes = (size_t)4 * 512 * 2 * 14336 * 4;  // 4 gated K slices at 256 tokens

int main() {
  const int E = 16, K = 2, H = 4096, F = 14336;
  CHECK(cudaSetDevice(0));
  CHECK(cudaStreamCreate(&g_bench_stream));
  CHECK(cudaDeviceGetAttribute(&g_bench_sms, cudaDevAttrMultiProcessorCount, 0));
  const size_t mat = (size_t)H * F;
  std::vector<uint64_t> table(E * 6);
  std::vector<unsigned char*> w(E * 3);
  float* scales;
  CHECK(cudaMalloc(&scales, (size_t)E * 3 * std::max(H, F) * sizeof(float)));
  std::vector<float> ones(std::max(H, F), 1e-3f);
  for (int e = 0; e < E; e++)
    for (int m = 0; m < 3; m++) {
      CHECK(cudaMalloc(&w[e * 3 + m], mat));
      fill_bytes<<<1024, 256>>>(w[e * 3 + m], mat, e * 3 + m);
      float* s = scales + (size_t)(e * 3 + m) * std::max(H, F);
      CHECK(cudaMemcpy(s, ones.data(), ones.size() * sizeof(float), cudaMemcpyHostToDevice));
      table[e * 6 + m] = (uint64_t)w[e * 3 + m];
      table[e * 6 + 3 + m] = (uint64_t)s;
    }
  unsigned char* big;  // room for every expert's gate and up as one matrix
  CHECK(cudaMalloc(&big, 2 * E * mat));
  fill_bytes<<<1024, 256>>>(big, 2 * E * mat, 99);
  uint64_t* d_table;
  CHECK(cudaMalloc(&d_table, table.size() * 8));
  CHECK(cudaMemcpy(d_table, table.data(), table.size() * 8, cudaMemcpyHostToDevice));
  const int max_t = 256;
  __nv_bfloat16 *x, *h;
  float *partial, *out, *route_w;
  int *ids, *align;
  uint32_t* sink;
  CHECK(cudaMalloc(&x, (size_t)max_t * H * 2));
  fill_bf16<<<1024, 256>>>(x, (size_t)max_t * H, 1.f);
  CHECK(cudaMalloc(&h, (size_t)max_t * K * F * 2));
  CHECK(cudaMalloc(&partial, kPartialBytes));  // ≥ what the backend's rule asks for any T here
  CHECK(cudaMalloc(&out, (size_t)max_t * H * 4));
  CHECK(cudaMalloc(&route_w, (size_t)max_t * K * 4));
  CHECK(cudaMalloc(&ids, (size_t)max_t * K * 4));
  CHECK(cudaMalloc(&align, (size_t)(4 * E + 8 * max_t * K + 64) * 4));
  CHECK(cudaMalloc(&sink, 4));
  const uint4** d_ranges;
  CHECK(cudaMalloc(&d_ranges, E * 3 * sizeof(void*)));
  std::mt19937 rng(7);
  Timer timer;

  printf("%-6s %-28s %10s %10s\n", "tokens", "what", "µs", "TB/s");
  for (int T : {1, 8, 64, 256}) {
    std::vector<int> hid(T * K);
    std::vector<float> hw(T * K, 0.5f);
    std::vector<bool> touched(E, false);
    for (int t = 0; t < T; t++) {
      const int a = rng() % E;
      int b = rng() % (E - 1);
      if (b >= a) b++;
      hid[t * K] = a;
      hid[t * K + 1] = b;
      touched[a] = touched[b] = true;
    }
    CHECK(cudaMemcpy(ids, hid.data(), hid.size() * 4, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(route_w, hw.data(), hw.size() * 4, cudaMemcpyHostToDevice));
    const int n_touched = (int)std::count(touched.begin(), touched.end(), true);
    const double gated_bytes = 2.0 * mat * n_touched, down_bytes = 1.0 * mat * n_touched;
    // The partial-sum buffer as the CUDA backend sizes it (runtime/backends/cuda/index.ts).
    const int pairs = T * K;
    const double partial_bytes = (pairs <= 64 ? 8.0 : 1.0) * pairs * (pairs <= 16 ? std::max(H, 2 * F) : H) * 4;
    const double args[] = {(double)(uintptr_t)x, JB_DTYPE_BF16, (double)T, (double)H, (double)H, (double)(uintptr_t)ids, (double)(uintptr_t)route_w, (double)K,
                           (double)(uintptr_t)d_table, (double)E, (double)F, JB_DTYPE_I8, (double)(uintptr_t)align, (double)(uintptr_t)h,
                           (double)(uintptr_t)partial, partial_bytes, (double)(uintptr_t)out};
    Args a{args, (int)(sizeof(args) / sizeof(double))};
    MoeRun r;
    if (plan_moe(a, r) != 0) return 1;
    if (run_moe(r) != 0) return 1;
    CHECK(cudaStreamSynchronize(stream()));
    auto row = [&](const char* what, float us, double bytes) { printf("%-6d %-28s %10.1f %10.2f\n", T, what, us, bytes > 0 ? bytes / us / 1e6 : 0.0); };

    // Ceiling: a plain read of the touched experts' gate+up, then of their down.
    std::vector<const uint4*> gate_up, down;
    for (int e = 0; e < E; e++)
      if (touched[e]) {
        gate_up.push_back((const uint4*)w[e * 3]);
        gate_up.push_back((const uint4*)w[e * 3 + 1]);
        down.push_back((const uint4*)w[e * 3 + 2]);
      }
    CHECK(cudaMemcpy(d_ranges, gate_up.data(), gate_up.size() * sizeof(void*), cudaMemcpyHostToDevice));
    row("read gate+up bytes", timer.median_us([&] { read_ranges<<<4 * g_bench_sms, 512, 0, stream()>>>(d_ranges, mat / 16, (int)gate_up.size(), sink); }), gated_bytes);

    {
      // The same bytes in the streamed kernel's pattern, as one [2·touched·F, H] matrix.
      const int rows = 2 * n_touched * F;
      row("read, streamed pattern", timer.median_us([&] { read_rows<false, 4><<<ceil_div(rows / 16, 4), 128, 0, stream()>>>(big, rows, H, sink); }), (double)rows * H);
      row("read, pattern + L2::256B", timer.median_us([&] { read_rows<true, 4><<<ceil_div(rows / 16, 4), 128, 0, stream()>>>(big, rows, H, sink); }), (double)rows * H);
    }
    row("whole moe", timer.median_us([&] { run_moe(r); }), gated_bytes + down_bytes);
    row("align", timer.median_us([&] { moe_align(r); }), 0);
    printf("       (gated K slices %d, down K slices %d)\n", r.gated_splits, r.splits);
    row("gated (default)", timer.median_us([&] { moe_gated(r); }), gated_bytes);
    row("down (default)", timer.median_us([&] { run_gemm<DOWN>(true, r.bm, r.down, r.tiles, r.splits); }), down_bytes);
    row("reduce", timer.median_us([&] { moe_reduce(r); }), 0);
    // The streamed kernel at each token tile (rows per tile) and K-slice count, with the books rebuilt
    // for that tile: which shape the planner should pick.
    for (int tn : {8, 16, 32}) {
      if (tn > 8 && pairs / E < tn / 4) continue;  // tiles mostly empty
      MoeRun v = r;
      v.bm = tn;
      v.tiles = ceil_div(pairs, tn) + E;
      moe_align(v);
      for (int splits : {1, 2, 4, 8}) {
        char label[64];
        snprintf(label, sizeof label, "gated tile %d, %d K slices", tn, splits);
        if ((double)splits * pairs * 2 * F * 4 <= kPartialBytes) row(label, timer.median_us([&] { run_gemm<GATED>(true, tn, v.up, v.tiles, splits); }), gated_bytes);
        snprintf(label, sizeof label, "down tile %d, %d K slices", tn, splits);
        row(label, timer.median_us([&] { run_gemm<DOWN>(true, tn, v.down, v.tiles, splits); }), down_bytes);
      }
    }
    moe_align(r);
    CHECK(cudaGetLastError());
  }
  return 0;
}
