// Mamba-1 over the ragged batch, each sequence from its own state slot:
//   conv: depthwise causal conv over (conv state ++ new rows) + bias, SiLU; the state keeps the last
//         dConv-1 inputs (bf16, the inputs' own type, so nothing is rounded twice);
//   scan: delta = softplus(dt); h = exp(delta·A)·h + delta·B·x; y = h·C + D·x; out = y·silu(z), with the
//         fp32 SSM state read once and written once per sequence.
// The scan gives one thread to each (channel, state) pair, so a channel's dState threads reduce h·C with
// shuffles; the recurrence is one dependent FMA per step (exp(delta·A) and delta·B·x do not depend on h),
// which keeps the sequential loop over a prefill short per token. Decode is the same kernel with one row.
#include "common.cuh"

namespace jb {
namespace {

__device__ __forceinline__ float softplus(float v) { return v > 20.f ? v : log1pf(__expf(v)); }

__global__ void conv_kernel(const void* x, int xdt, int xld, const float* w, const float* bias, const __nv_bfloat16* state, int di, int dconv, const int* meta,
                            const int* row_seq, int rows, __nv_bfloat16* out) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  const int r = blockIdx.y;
  if (c >= di || r >= rows) return;
  const int seq = row_seq[r];
  const int* m = meta + seq * JB_META_INTS;
  const int local = r - m[JB_META_ROW_START];
  const int past = dconv - 1;
  const __nv_bfloat16* st = state + ((size_t)m[JB_META_SLOT] * di + c) * past;
  float acc = bias ? bias[c] : 0.f;
  for (int j = 0; j < dconv; j++) {
    const int t = local - past + j;  // < 0: from the state
    const float v = t >= 0 ? load_as_float(x, xdt, (size_t)(m[JB_META_ROW_START] + t) * xld + c) : __bfloat162float(st[past + t]);
    acc += w[c * dconv + j] * v;
  }
  out[(size_t)r * di + c] = __float2bfloat16_rn(silu(acc));
}

/** After the conv: each sequence's state becomes the last dConv-1 inputs of (state ++ rows). */
__global__ void conv_state_kernel(const void* x, int xdt, int xld, __nv_bfloat16* state, int di, int dconv, const int* meta, int seqs) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  const int s = blockIdx.y;
  if (c >= di || s >= seqs) return;
  const int* m = meta + s * JB_META_INTS;
  const int past = dconv - 1, n = m[JB_META_NUM_ROWS];
  __nv_bfloat16* st = state + ((size_t)m[JB_META_SLOT] * di + c) * past;
  constexpr int kMaxPast = 8;
  __nv_bfloat16 next[kMaxPast];
  for (int i = 0; i < past; i++) {
    const int t = n - past + i;
    next[i] = t >= 0 ? __float2bfloat16_rn(load_as_float(x, xdt, (size_t)(m[JB_META_ROW_START] + t) * xld + c)) : st[past + t];
  }
  for (int i = 0; i < past; i++) st[i] = next[i];
}

struct ScanArgs {
  Mat x, dt, b, c, z;
  const float* neg_a;
  const float* d;
  float* state;
  int di, dstate;
  const int* meta;
  __nv_bfloat16* out;
};

/** Block (sequence, channel group): GROUP threads per channel (GROUP = dState rounded up to a power of two ≤ 32). */
template <int GROUP>
__global__ void scan_kernel(ScanArgs a) {
  // Threads past the last channel stay in the loop (the shuffles need the whole warp) but touch nothing.
  const int ch_raw = blockIdx.x * (blockDim.x / GROUP) + threadIdx.x / GROUP;
  const bool ch_ok = ch_raw < a.di;
  const int ch = ch_ok ? ch_raw : a.di - 1;
  const int n = threadIdx.x % GROUP;
  const int seq = blockIdx.y;
  const int* m = a.meta + seq * JB_META_INTS;
  const int row0 = m[JB_META_ROW_START], rows = m[JB_META_NUM_ROWS];
  const bool live = ch_ok && n < a.dstate;
  float* hp = a.state + ((size_t)m[JB_META_SLOT] * a.di + ch) * a.dstate + n;
  float h = live ? *hp : 0.f;
  const float A = live ? a.neg_a[(size_t)ch * a.dstate + n] : 0.f;
  const float D = a.d[ch];
  for (int t = 0; t < rows; t++) {
    const int r = row0 + t;
    const float u = load_as_float(as<void>(a.x.ptr), a.x.dtype, (size_t)r * a.x.ld + ch);
    const float delta = softplus(load_as_float(as<void>(a.dt.ptr), a.dt.dtype, (size_t)r * a.dt.ld + ch));
    float bn = 0.f, cn = 0.f;
    if (live) {
      bn = load_as_float(as<void>(a.b.ptr), a.b.dtype, (size_t)r * a.b.ld + n);
      cn = load_as_float(as<void>(a.c.ptr), a.c.dtype, (size_t)r * a.c.ld + n);
    }
    h = __expf(delta * A) * h + delta * u * bn;
    float y = h * cn;
#pragma unroll
    for (int o = GROUP / 2; o > 0; o >>= 1) y += __shfl_xor_sync(0xffffffffu, y, o, GROUP);
    if (n == 0 && ch_ok) {
      const float zv = load_as_float(as<void>(a.z.ptr), a.z.dtype, (size_t)r * a.z.ld + ch);
      a.out[(size_t)r * a.di + ch] = __float2bfloat16_rn((y + D * u) * silu(zv));
    }
  }
  if (live) *hp = h;
}

template <int GROUP>
int launch_scan(const ScanArgs& a, int seqs) {
  constexpr int threads = 128;
  dim3 grid(ceil_div(a.di, threads / GROUP), seqs);
  scan_kernel<GROUP><<<grid, threads, 0, stream()>>>(a);
  JB_LAUNCHED("selective scan");
  return 0;
}

}  // namespace

namespace ops {

int conv(Args& a) {
  const Mat x = a.mat();
  const uint64_t w = a.ptr(), bias = a.ptr(), state = a.ptr();
  const int dconv = a.i();
  const uint64_t meta = a.ptr();
  const int seqs = a.i();
  const uint64_t row_seq = a.ptr(), out = a.ptr();
  if (x.rows == 0) return 0;
  if (dconv < 1 || dconv > 9) return fail("conv: d_conv must be 1..9");
  const int di = x.cols, threads = 128;
  conv_kernel<<<dim3(ceil_div(di, threads), x.rows), threads, 0, stream()>>>(as<void>(x.ptr), x.dtype, x.ld, as<float>(w), bias ? as<float>(bias) : nullptr,
                                                                              as<__nv_bfloat16>(state), di, dconv, as<int>(meta), as<int>(row_seq), x.rows,
                                                                              as<__nv_bfloat16>(out));
  JB_LAUNCHED("conv");
  if (dconv > 1) {
    conv_state_kernel<<<dim3(ceil_div(di, threads), seqs), threads, 0, stream()>>>(as<void>(x.ptr), x.dtype, x.ld, as<__nv_bfloat16>(state), di, dconv,
                                                                                    as<int>(meta), seqs);
    JB_LAUNCHED("conv state");
  }
  return 0;
}

int scan(Args& a) {
  ScanArgs s{};
  s.x = a.mat();
  s.dt = a.mat();
  s.neg_a = as<float>(a.ptr());
  s.b = a.mat();
  s.c = a.mat();
  s.d = as<float>(a.ptr());
  s.z = a.mat();
  s.state = as<float>(a.ptr());
  s.dstate = a.i();
  s.meta = as<int>(a.ptr());
  const int seqs = a.i();
  s.out = as<__nv_bfloat16>(a.ptr());
  s.di = s.x.cols;
  if (s.x.rows == 0) return 0;
  if (s.dstate <= 1) return launch_scan<1>(s, seqs);
  if (s.dstate <= 2) return launch_scan<2>(s, seqs);
  if (s.dstate <= 4) return launch_scan<4>(s, seqs);
  if (s.dstate <= 8) return launch_scan<8>(s, seqs);
  if (s.dstate <= 16) return launch_scan<16>(s, seqs);
  if (s.dstate <= 32) return launch_scan<32>(s, seqs);
  return fail("scan: d_state above 32");
}

}  // namespace ops
}  // namespace jb
