// The Mamba-1 decode state update (mamba.cu, d_inner 8192, d_state 16, fp32 state) against the bytes it
// must move: is the kernel, or the way the L2 is cooled before it, what keeps it from mamba-ssm's 79 µs at
// batch 256? Rows per batch size: the backend's kernel (bf16 inputs: two sequences a block), the general
// quads kernel at 2 and 1 channels per thread, the bf16 kernel at other sequences a block and register
// bounds, then a plain kernel that reads and rewrites the same state bytes with the same slot lookups (its
// ceiling) and one that streams them, each timed after a dirty L2
// flush (a 256 MiB memset, as the other microbenchmarks and, by the same write, `bench --ops`), after a
// clean one (a 256 MiB read), 20 calls replayed back to back from a CUDA graph with no flush, and 20
// replayed from a graph each behind a clean flush, less the flushes alone (mamba-ssm's figures were taken
// with graph replay and a cold L2). The state slots are scattered (sequence i in slot (7i + 3) mod batch).
//   nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr
//        -Iruntime/native/include tools/gpu/mamba_decode_microbench.cu -o /tmp/mamba_dec && /tmp/mamba_dec
#include <cstdio>
#include <functional>
#include <utility>
#include <vector>

#include "../../runtime/native/src/mamba.cu"

#include "bench_common.cuh"

namespace jb {
namespace {

constexpr int kDi = 8192, kDstate = 16;

/** Reads and rewrites `n4` float4 from `state`, one per thread: a plain stream with no lookups. */
__global__ void contiguous_rewrite_kernel(float4* state, size_t n4) {
  const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i >= n4) return;
  float4 v = state[i];
  v.x *= 0.999f;
  state[i] = v;
}

/** Reads and rewrites each sequence's state slot (float4, slot from the metadata): the kernel's ceiling. */
__global__ void state_rewrite_kernel(float* state, const int* meta, const int* decode_seqs, int di_states) {
  const int* m = meta + decode_seqs[blockIdx.y] * JB_META_INTS;
  float4* slot = reinterpret_cast<float4*>(state + (size_t)m[JB_META_SLOT] * di_states);
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= di_states / 4) return;
  float4 v = slot[i];
  v.x *= 0.999f;
  slot[i] = v;
}

struct Setup {
  ScanArgs a{};
  int* decode_seqs = nullptr;
  std::vector<void*> owned;
};

template <typename T>
T* device(size_t count, std::vector<void*>& owned) {
  void* p = nullptr;
  CHECK(cudaMalloc(&p, count * sizeof(T)));
  CHECK(cudaMemset(p, 0, count * sizeof(T)));
  owned.push_back(p);
  return static_cast<T*>(p);
}

Setup make_setup(int batch) {
  Setup s;
  auto bf16_mat = [&](int cols) {
    __nv_bfloat16* p = device<__nv_bfloat16>((size_t)batch * cols, s.owned);
    fill_bf16<<<256, 256, 0, stream()>>>(p, (size_t)batch * cols, 1.f);
    return Mat{reinterpret_cast<uint64_t>(p), JB_DTYPE_BF16, batch, cols, cols};
  };
  s.a.x = bf16_mat(kDi);
  s.a.dt = bf16_mat(kDi);
  s.a.z = bf16_mat(kDi);
  s.a.b = bf16_mat(kDstate);
  s.a.c = bf16_mat(kDstate);
  std::vector<float> neg_a((size_t)kDi * kDstate), d(kDi, 1.f);
  for (size_t i = 0; i < neg_a.size(); i++) neg_a[i] = -(float)(i % kDstate + 1);
  float* neg_a_dev = device<float>(neg_a.size(), s.owned);
  float* d_dev = device<float>(kDi, s.owned);
  CHECK(cudaMemcpy(neg_a_dev, neg_a.data(), neg_a.size() * 4, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(d_dev, d.data(), kDi * 4, cudaMemcpyHostToDevice));
  s.a.neg_a = neg_a_dev;
  s.a.d = d_dev;
  s.a.state = device<float>((size_t)batch * kDi * kDstate, s.owned);
  s.a.di = kDi;
  s.a.dstate = kDstate;
  std::vector<int> meta((size_t)batch * JB_META_INTS, 0), seqs(batch);
  for (int i = 0; i < batch; i++) {
    meta[(size_t)i * JB_META_INTS + JB_META_ROW_START] = i;
    meta[(size_t)i * JB_META_INTS + JB_META_NUM_ROWS] = 1;
    meta[(size_t)i * JB_META_INTS + JB_META_SLOT] = (7 * i + 3) % batch;
    seqs[i] = i;
  }
  int* meta_dev = device<int>(meta.size(), s.owned);
  s.decode_seqs = device<int>(batch, s.owned);
  CHECK(cudaMemcpy(meta_dev, meta.data(), meta.size() * 4, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(s.decode_seqs, seqs.data(), batch * 4, cudaMemcpyHostToDevice));
  s.a.meta = meta_dev;
  s.a.out = device<__nv_bfloat16>((size_t)batch * kDi, s.owned);
  s.a.decodes_done = true;
  CHECK(cudaDeviceSynchronize());
  return s;
}

}  // namespace
}  // namespace jb

int main() {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  bench_init();
  Timer timer;
  printf("%-8s %-48s %-6s %9s %8s\n", "batch", "what", "cooling", "µs", "TB/s");
  for (const int batch : {1, 8, 64, 256}) {
    Setup s = make_setup(batch);
    const double bytes = 2.0 * batch * kDi * kDstate * 4;  // the state read and written
    const size_t n4 = (size_t)batch * kDi * kDstate / 4;
    const std::pair<const char*, std::function<void()>> rows[] = {
        {"scan decode kernel (backend's choice)", [&] {
           if (launch_scan_decode<kDstate / 4>(s.a, s.decode_seqs, batch) != 0) exit(1);
         }},
        {"quads kernel, 2 channels per thread", [&] {
           scan_decode_kernel<kDstate / 4, 2><<<dim3(kDi / 128, batch), 256, 0, stream()>>>(s.a, s.decode_seqs);
         }},
        {"quads kernel, 1 channel per thread", [&] {
           scan_decode_kernel<kDstate / 4, 1><<<dim3(kDi / 64, batch), 256, 0, stream()>>>(s.a, s.decode_seqs);
         }},
        {"bf16 kernel, 2 sequences a block, 4 blocks an SM", [&] {
           scan_decode_bf16_kernel<2, 4><<<dim3(kDi / 64, (batch + 1) / 2), 256, 0, stream()>>>(s.a, s.decode_seqs, batch);
         }},
        {"bf16 kernel, 2 sequences a block, 8 blocks an SM", [&] {
           scan_decode_bf16_kernel<2, 8><<<dim3(kDi / 64, (batch + 1) / 2), 256, 0, stream()>>>(s.a, s.decode_seqs, batch);
         }},
        {"bf16 kernel, 4 sequences a block, 4 blocks an SM", [&] {
           scan_decode_bf16_kernel<4, 4><<<dim3(kDi / 64, (batch + 3) / 4), 256, 0, stream()>>>(s.a, s.decode_seqs, batch);
         }},
        {"state read and rewritten (slots looked up)", [&] {
           state_rewrite_kernel<<<dim3(kDi * kDstate / 4 / 256, batch), 256, 0, stream()>>>(s.a.state, s.a.meta, s.decode_seqs, kDi * kDstate);
         }},
        {"state read and rewritten (one stream)", [&] {
           contiguous_rewrite_kernel<<<(unsigned)((n4 + 255) / 256), 256, 0, stream()>>>(reinterpret_cast<float4*>(s.a.state), n4);
         }},
    };
    for (const auto& [what, fn] : rows) {
      for (const bool clean : {false, true}) {
        timer.clean_flush = clean;
        const float us = timer.median_us(fn);
        printf("%-8d %-48s %-6s %9.1f %8.2f\n", batch, what, clean ? "clean" : "dirty", us, bytes / us / 1e6);
      }
      const float us = timer.graph_us(fn);
      printf("%-8d %-48s %-6s %9.1f %8.2f\n", batch, what, "graph", us, bytes / us / 1e6);
      const float cold = timer.graph_cold_us(fn);
      printf("%-8d %-48s %-6s %9.1f %8.2f\n", batch, what, "g-cold", cold, bytes / cold / 1e6);
    }
    for (void* p : s.owned) cudaFree(p);
  }
  CHECK(cudaGetLastError());
  return 0;
}
