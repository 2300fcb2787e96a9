// The Mamba-1 prefill baseline on the card at hand: mamba-ssm's CUDA `selective_scan` forward, the kernel
// vLLM forked, at issue 10's shape (one layer, batch 1, d_inner 8192, d_state 16, bf16 u / delta / z / B /
// C with variable B and C, fp32 A, D and delta bias, softplus), against whose H200 figures
// `jamba-runtime bench --ops mamba` compares ours. mamba-ssm is not a dependency: this file is built on
// the GPU machine against the unpacked sdist (tools/gpu/fetch-peers.sh) and PyTorch's c10 headers, which
// the kernel's header includes (`tools/gpu/run.sh peers scan` builds and runs it). Timing as `bench --ops`
// and the microbenchmarks: CUDA events around one call after a 256 MiB write, median of 20.
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
namespace at {
using c10::BFloat16;  // the kernel's headers name them through ATen, which a plain nvcc build lacks
using c10::Half;
}  // namespace at

#include <cstring>

#include "selective_scan_fwd_kernel.cuh"

#include "bench_common.cuh"

namespace {

constexpr int kDim = 8192, kDstate = 16;

template <typename T>
T* device(size_t count) {
  void* p = nullptr;
  CHECK(cudaMalloc(&p, count * sizeof(T)));
  return static_cast<T*>(p);
}

/** `values` on the device, for the few fp32 per-channel parameters. */
float* upload(const std::vector<float>& values) {
  float* p = device<float>(values.size());
  CHECK(cudaMemcpy(p, values.data(), values.size() * sizeof(float), cudaMemcpyHostToDevice));
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> lengths = {4096, 32768, 131072};
  if (argc > 1) {
    lengths.clear();
    for (char* tok = strtok(argv[1], ","); tok; tok = strtok(nullptr, ",")) lengths.push_back(atoi(tok));
  }
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  printf("card: %s\n", prop.name);
  Timer timer;  // bench_common.cuh: median of 20 runs, each after a 256 MiB memset
  std::vector<float> a(kDim * kDstate), d(kDim), dbias(kDim);
  for (size_t i = 0; i < a.size(); i++) a[i] = -0.5f - (float)(i % kDstate) / kDstate;  // A in (-1.5, -0.5]
  for (int i = 0; i < kDim; i++) d[i] = (float)(i % 7) / 7.f, dbias[i] = -4.f + (float)(i % 5) / 5.f;
  float *A = upload(a), *D = upload(d), *delta_bias = upload(dbias);
  for (const int L : lengths) {
    const size_t n = (size_t)kDim * L;
    const int n_chunks = (L + 2047) / 2048;  // as mamba-ssm's selective_scan.cpp
    using bf16 = __nv_bfloat16;
    bf16 *u = device<bf16>(n), *delta = device<bf16>(n), *z = device<bf16>(n), *out = device<bf16>(n), *out_z = device<bf16>(n);
    bf16 *B = device<bf16>((size_t)kDstate * L), *C = device<bf16>((size_t)kDstate * L);
    float* x = device<float>((size_t)kDim * n_chunks * kDstate * 2);
    for (bf16* t : {u, delta, z}) fill_bf16<<<1024, 256, 0, stream()>>>(t, n, 1.f);
    for (bf16* t : {B, C}) fill_bf16<<<1024, 256, 0, stream()>>>(t, (size_t)kDstate * L, 1.f);

    // Layouts as the Python wrapper passes them: u, delta, z, out [batch, dim, seqlen]; B, C [batch,
    // groups, dstate, seqlen] (variable); A [dim, dstate]; strides in elements.
    SSMParamsBase p;
    memset(&p, 0, sizeof(p));
    p.batch = 1, p.dim = kDim, p.seqlen = L, p.dstate = kDstate;
    p.n_groups = 1, p.n_chunks = n_chunks, p.dim_ngroups_ratio = kDim;
    p.is_variable_B = p.is_variable_C = p.delta_softplus = true;
    p.A_ptr = A, p.B_ptr = B, p.C_ptr = C, p.D_ptr = D, p.delta_bias_ptr = delta_bias;
    p.u_ptr = u, p.delta_ptr = delta, p.z_ptr = z, p.out_ptr = out, p.out_z_ptr = out_z, p.x_ptr = x;
    p.A_d_stride = kDstate;
    p.A_dstate_stride = 1;
    p.B_batch_stride = p.C_batch_stride = (SSMParamsBase::index_t)kDstate * L;
    p.B_group_stride = p.C_group_stride = (SSMParamsBase::index_t)kDstate * L;
    p.B_dstate_stride = p.C_dstate_stride = L;
    p.u_batch_stride = p.delta_batch_stride = p.z_batch_stride = p.out_batch_stride = p.out_z_batch_stride = n;
    p.u_d_stride = p.delta_d_stride = p.z_d_stride = p.out_d_stride = p.out_z_d_stride = L;

    const float us = timer.median_us([&] { selective_scan_fwd_cuda<at::BFloat16, float>(p, stream()); });
    printf("mamba-ssm selective_scan fwd, prefill %6d: %9.3f ms\n", L, us / 1000.f);
    for (void* q : {(void*)u, (void*)delta, (void*)z, (void*)out, (void*)out_z, (void*)B, (void*)C, (void*)x}) CHECK(cudaFree(q));
  }
  return 0;
}
