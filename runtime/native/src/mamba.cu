// Mamba-1 over the ragged batch, each sequence from its own state slot:
//   conv: depthwise causal conv over (conv state ++ new rows) + bias, SiLU; the state keeps the last
//         dConv-1 inputs (bf16, the inputs' own type, so nothing is rounded twice);
//   scan: delta = softplus(dt); h = exp(delta·A)·h + delta·B·x; y = h·C + D·x; out = y·silu(z), with the
//         fp32 SSM state read once and written once per sequence.
// Chunks of a few rows give one thread to each (channel, state) pair; the recurrence is one dependent FMA
// per row (exp(delta·A) and delta·B·x do not depend on h), fed from shared memory. Long prefills (192
// rows and more, d_state ≤ 16) are cut into segments scanned in parallel and joined by their decays (the
// segmented scan below). Single-row sequences (decode) take a kernel of their own, bound by the bytes
// of the state.
#include "common.cuh"
#include "mma.cuh"

namespace jb {
namespace {

__device__ __forceinline__ float softplus(float v) { return v > 20.f ? v : log1pf(__expf(v)); }

/**
 * One output per (row, channel). A sequence with a single row (decode) also moves its own state here:
 * this thread is the only one that reads that channel's state, so it can shift in the new input after
 * reading it, and a decode step needs no second kernel.
 */
__global__ void conv_kernel(const void* x, int xdt, int xld, const float* w, const float* bias, __nv_bfloat16* state, int di, int dconv, const int* meta,
                            const int* row_seq, int rows, __nv_bfloat16* out) {
  pdl_enter();
  const int c = blockIdx.y * blockDim.x + threadIdx.x;
  const int r = blockIdx.x;  // rows on x: a prefill can have more than 65535
  if (c >= di || r >= rows) return;
  const int seq = row_seq[r];
  const int* m = meta + seq * JB_META_INTS;
  const int local = r - m[JB_META_ROW_START];
  const int past = dconv - 1;
  __nv_bfloat16* st = state + ((size_t)m[JB_META_SLOT] * di + c) * past;
  float acc = bias ? bias[c] : 0.f;
  for (int j = 0; j < dconv; j++) {
    const int t = local - past + j;  // < 0: from the state
    const float v = t >= 0 ? load_as_float(x, xdt, (size_t)(m[JB_META_ROW_START] + t) * xld + c) : __bfloat162float(st[past + t]);
    acc += w[c * dconv + j] * v;
  }
  out[(size_t)r * di + c] = __float2bfloat16_rn(silu(acc));
  if (m[JB_META_NUM_ROWS] == 1 && past > 0) {
    for (int i = 0; i + 1 < past; i++) st[i] = st[i + 1];
    st[past - 1] = __float2bfloat16_rn(load_as_float(x, xdt, (size_t)r * xld + c));
  }
}

/**
 * After the conv, for sequences of several rows: the state becomes the last dConv-1 inputs of
 * (state ++ rows). Single-row sequences moved theirs in conv_kernel.
 */
__global__ void conv_state_kernel(const void* x, int xdt, int xld, __nv_bfloat16* state, int di, int dconv, const int* meta, int seqs) {
  pdl_enter();
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  const int s = blockIdx.y;
  if (c >= di || s >= seqs) return;
  const int* m = meta + s * JB_META_INTS;
  const int past = dconv - 1, n = m[JB_META_NUM_ROWS];
  if (n == 1) return;
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
  bool decodes_done;
  int segmented_rows;  // sequences of at least this many rows take the segmented scan (0: none)
};

constexpr int kScanThreads = 128;

/**
 * Block (channel group, sequence): GROUP threads per channel (dState rounded up to a power of two),
 * 128 / GROUP channels. The sequence's rows pass in chunks of 64: all threads first stage the chunk's
 * delta (softplus once per channel and row), delta·x, B and C in shared memory with coalesced loads;
 * then each thread runs its (channel, state) recurrence over the chunk from shared memory, leaving
 * h·C per row; then the rows' y = Σ h·C + D·x, gated by silu(z), are summed and written.
 */
template <int GROUP>
__global__ void __launch_bounds__(kScanThreads) scan_kernel(ScanArgs a) {
  pdl_enter();
  constexpr int CH = kScanThreads / GROUP;
  // Rows per chunk: at most 64, and fewer when the staging would pass 46 KB of shared memory.
  constexpr int kFit = 11776 / (2 * CH + 2 * GROUP + kScanThreads);
  constexpr int L = kFit >= 64 ? 64 : kFit >= 32 ? 32 : kFit >= 16 ? 16 : 8;
  __shared__ float s_delta[L][CH];
  __shared__ float s_du[L][CH];
  __shared__ float s_b[L][GROUP];
  __shared__ float s_c[L][GROUP];
  __shared__ float s_p[L][kScanThreads];
  const int c_local = threadIdx.x / GROUP, n = threadIdx.x % GROUP;
  const int ch0 = blockIdx.x * CH;
  const int ch = ch0 + c_local;
  const int seq = blockIdx.y;
  const int* m = a.meta + seq * JB_META_INTS;
  const int row0 = m[JB_META_ROW_START], rows = m[JB_META_NUM_ROWS];
  if (rows == 1 && a.decodes_done) return;                        // scan_decode_kernel took it
  if (a.segmented_rows > 0 && rows >= a.segmented_rows) return;  // the segmented scan takes it
  const bool live = ch < a.di && n < a.dstate;
  float* hp = a.state + ((size_t)m[JB_META_SLOT] * a.di + ch) * a.dstate + n;
  float h = live ? *hp : 0.f;
  const float A = live ? a.neg_a[(size_t)ch * a.dstate + n] : 0.f;
  const void* xp = as<void>(a.x.ptr);
  const void* dtp = as<void>(a.dt.ptr);
  for (int t0 = 0; t0 < rows; t0 += L) {
    const int len = min(L, rows - t0);
    for (int i = threadIdx.x; i < len * CH; i += kScanThreads) {
      const int t = i / CH, c = i % CH, r = row0 + t0 + t, cc = min(ch0 + c, a.di - 1);
      const float delta = softplus(load_as_float(dtp, a.dt.dtype, (size_t)r * a.dt.ld + cc));
      s_delta[t][c] = delta;
      s_du[t][c] = delta * load_as_float(xp, a.x.dtype, (size_t)r * a.x.ld + cc);
    }
    for (int i = threadIdx.x; i < len * GROUP; i += kScanThreads) {
      const int t = i / GROUP, k = i % GROUP, r = row0 + t0 + t;
      const bool ok = k < a.dstate;
      s_b[t][k] = ok ? load_as_float(as<void>(a.b.ptr), a.b.dtype, (size_t)r * a.b.ld + k) : 0.f;
      s_c[t][k] = ok ? load_as_float(as<void>(a.c.ptr), a.c.dtype, (size_t)r * a.c.ld + k) : 0.f;
    }
    __syncthreads();
#pragma unroll 4
    for (int t = 0; t < len; t++) {
      h = __expf(s_delta[t][c_local] * A) * h + s_du[t][c_local] * s_b[t][n];
      s_p[t][threadIdx.x] = h * s_c[t][n];
    }
    __syncthreads();
    for (int i = threadIdx.x; i < len * CH; i += kScanThreads) {
      const int t = i / CH, c = i % CH, r = row0 + t0 + t;
      if (ch0 + c >= a.di) continue;
      float y = 0.f;
#pragma unroll
      for (int k = 0; k < GROUP; k++) y += s_p[t][c * GROUP + k];
      const float u = load_as_float(xp, a.x.dtype, (size_t)r * a.x.ld + ch0 + c);
      const float zv = load_as_float(as<void>(a.z.ptr), a.z.dtype, (size_t)r * a.z.ld + ch0 + c);
      a.out[(size_t)r * a.di + ch0 + c] = __float2bfloat16_rn((y + a.d[ch0 + c] * u) * silu(zv));
    }
    __syncthreads();
  }
  if (live) *hp = h;
}

/** Four consecutive fp32 values from n0 on, those at or past `count` zero: one float4 when aligned. */
__device__ __forceinline__ float4 load4(const float* p, int n0, int count, bool vec) {
  if (vec) return *reinterpret_cast<const float4*>(p + n0);
  return make_float4(n0 < count ? p[n0] : 0.f, n0 + 1 < count ? p[n0 + 1] : 0.f, n0 + 2 < count ? p[n0 + 2] : 0.f, n0 + 3 < count ? p[n0 + 3] : 0.f);
}

__device__ __forceinline__ void store4(float* p, int n0, int count, bool vec, float4 v) {
  if (vec) {
    *reinterpret_cast<float4*>(p + n0) = v;
    return;
  }
  if (n0 < count) p[n0] = v.x;
  if (n0 + 1 < count) p[n0 + 1] = v.y;
  if (n0 + 2 < count) p[n0 + 2] = v.z;
  if (n0 + 3 < count) p[n0 + 3] = v.w;
}

/**
 * Sequences with one row (decode): each thread owns four states (float4 loads and stores of the fp32
 * state and of A when d_state is a multiple of 4) of CPT channels of one sequence, QUADS threads per
 * channel; a block covers CPT · 256 / QUADS channels of one sequence. All of a thread's loads are
 * issued before any arithmetic, so each sequence's lookups (decode list, then its metadata) are paid
 * once for CPT channels' worth of state in flight. y's partial sums meet over the channel's lanes by
 * shuffle.
 */
template <int QUADS, int CPT>
__global__ void __launch_bounds__(256) scan_decode_kernel(ScanArgs a, const int* decode_seqs) {
  pdl_enter();
  constexpr int CH = 256 / QUADS;
  const int q = threadIdx.x % QUADS, n0 = 4 * q;
  const bool vec = a.dstate % 4 == 0;
  const int* m = a.meta + decode_seqs[blockIdx.y] * JB_META_INTS;
  const size_t r = m[JB_META_ROW_START];
  float* slot_state = a.state + (size_t)m[JB_META_SLOT] * a.di * a.dstate;
  const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
  int ch[CPT];
  bool ch_ok[CPT], live[CPT];
  float4 h[CPT], A[CPT];
  float u[CPT], dtv[CPT], zv[CPT], D[CPT], bv[4], cv[4];
#pragma unroll
  for (int j = 0; j < CPT; j++) {
    const int raw = (blockIdx.x * CPT + j) * CH + threadIdx.x / QUADS;
    ch_ok[j] = raw < a.di;
    ch[j] = ch_ok[j] ? raw : a.di - 1;
    live[j] = ch_ok[j] && n0 < a.dstate;
    h[j] = live[j] ? load4(slot_state + (size_t)ch[j] * a.dstate, n0, a.dstate, vec) : zero;
    A[j] = live[j] ? load4(a.neg_a + (size_t)ch[j] * a.dstate, n0, a.dstate, vec) : zero;
    u[j] = load_as_float(as<void>(a.x.ptr), a.x.dtype, r * a.x.ld + ch[j]);
    dtv[j] = load_as_float(as<void>(a.dt.ptr), a.dt.dtype, r * a.dt.ld + ch[j]);
    zv[j] = load_as_float(as<void>(a.z.ptr), a.z.dtype, r * a.z.ld + ch[j]);
    D[j] = a.d[ch[j]];
  }
#pragma unroll
  for (int k = 0; k < 4; k++) {
    // Loaded unconditionally (a clamped index) and zeroed after, so no load sits in a branch.
    const bool ok = n0 + k < a.dstate;
    const int n = min(n0 + k, a.dstate - 1);
    const float bn = load_as_float(as<void>(a.b.ptr), a.b.dtype, r * a.b.ld + n);
    const float cn = load_as_float(as<void>(a.c.ptr), a.c.dtype, r * a.c.ld + n);
    bv[k] = ok ? bn : 0.f;
    cv[k] = ok ? cn : 0.f;
  }
#pragma unroll
  for (int j = 0; j < CPT; j++) {
    const float delta = softplus(dtv[j]), du = delta * u[j];
    float4 hs = h[j];
    hs.x = __expf(delta * A[j].x) * hs.x + du * bv[0];
    hs.y = __expf(delta * A[j].y) * hs.y + du * bv[1];
    hs.z = __expf(delta * A[j].z) * hs.z + du * bv[2];
    hs.w = __expf(delta * A[j].w) * hs.w + du * bv[3];
    float y = 0.f;
    if (live[j]) {
      store4(slot_state + (size_t)ch[j] * a.dstate, n0, a.dstate, vec, hs);
      y = hs.x * cv[0] + hs.y * cv[1] + hs.z * cv[2] + hs.w * cv[3];
    }
#pragma unroll
    for (int o = QUADS / 2; o > 0; o >>= 1) y += __shfl_xor_sync(0xffffffffu, y, o, QUADS);
    if (q == 0 && ch_ok[j]) a.out[r * a.di + ch[j]] = __float2bfloat16_rn((y + D[j] * u[j]) * silu(zv[j]));
  }
}

/**
 * The decode update for the model's inputs (bf16 x, dt, z, B and C, d_state 16, fp32 state): a block
 * takes 64 channels (4 lanes × 4 states each) of SEQS sequences. Its first threads look the sequences up
 * at once and stage their B and C rows (shared by every channel) in shared memory; each thread loads its
 * channel's A and D once for all of them and issues every sequence's state, x, dt and z loads before any
 * arithmetic. Few registers (B and C not held per thread; MIN_BLOCKS blocks an SM), so that enough state
 * loads are in flight: the quads kernel's 57 registers let 4 blocks of 256 threads share an SM.
 */
template <int SEQS, int MIN_BLOCKS>
__global__ void __launch_bounds__(256, MIN_BLOCKS) scan_decode_bf16_kernel(ScanArgs a, const int* decode_seqs, int decodes) {
  __shared__ int s_row[SEQS], s_slot[SEQS];
  __shared__ __align__(16) float s_bc[SEQS][2][16];  // [sequence][B, C][state]
  const int raw = blockIdx.x * 64 + threadIdx.x / 4, n0 = 4 * (threadIdx.x % 4);
  const bool ch_ok = raw < a.di;
  const int ch = ch_ok ? raw : a.di - 1;  // lanes past d_inner compute on a clamped channel and store nothing
  // Constant data before pdl_wait (common.cuh): A and D.
  const float4 A = *reinterpret_cast<const float4*>(a.neg_a + (size_t)ch * 16 + n0);
  const float D = a.d[ch];
  pdl_enter();
  if (threadIdx.x < SEQS) {
    const int i = blockIdx.y * SEQS + threadIdx.x;
    const int* m = a.meta + decode_seqs[min(i, decodes - 1)] * JB_META_INTS;
    s_row[threadIdx.x] = i < decodes ? m[JB_META_ROW_START] : -1;
    s_slot[threadIdx.x] = m[JB_META_SLOT];
  }
  __syncthreads();
  if (threadIdx.x < SEQS * 8) {  // thread → (sequence, B or C, 4 states)
    const int i = threadIdx.x >> 3, which = (threadIdx.x >> 2) & 1, q = threadIdx.x & 3;
    const Mat& src = which ? a.c : a.b;
    const uint2 raw4 = *reinterpret_cast<const uint2*>(as<__nv_bfloat16>(src.ptr) + (size_t)max(s_row[i], 0) * src.ld + 4 * q);
    const float2 lo = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162*>(&raw4)[0]), hi = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162*>(&raw4)[1]);
    *reinterpret_cast<float4*>(&s_bc[i][which][4 * q]) = make_float4(lo.x, lo.y, hi.x, hi.y);
  }
  const __nv_bfloat16 *x = as<__nv_bfloat16>(a.x.ptr), *dt = as<__nv_bfloat16>(a.dt.ptr), *z = as<__nv_bfloat16>(a.z.ptr);
  float4 h[SEQS];
  float u[SEQS], dtv[SEQS], zv[SEQS];
#pragma unroll
  for (int i = 0; i < SEQS; i++) {
    const size_t r = max(s_row[i], 0);
    h[i] = *reinterpret_cast<const float4*>(a.state + ((size_t)s_slot[i] * a.di + ch) * 16 + n0);
    u[i] = __bfloat162float(x[r * a.x.ld + ch]);
    dtv[i] = __bfloat162float(dt[r * a.dt.ld + ch]);
    zv[i] = __bfloat162float(z[r * a.z.ld + ch]);
  }
  __syncthreads();  // B and C staged
#pragma unroll
  for (int i = 0; i < SEQS; i++) {
    if (s_row[i] < 0) continue;  // past the decode list (block-uniform)
    const float4 bn = *reinterpret_cast<const float4*>(&s_bc[i][0][n0]), cn = *reinterpret_cast<const float4*>(&s_bc[i][1][n0]);
    const float delta = softplus(dtv[i]), du = delta * u[i];
    float4 hs = h[i];
    hs.x = __expf(delta * A.x) * hs.x + du * bn.x;
    hs.y = __expf(delta * A.y) * hs.y + du * bn.y;
    hs.z = __expf(delta * A.z) * hs.z + du * bn.z;
    hs.w = __expf(delta * A.w) * hs.w + du * bn.w;
    if (ch_ok) *reinterpret_cast<float4*>(a.state + ((size_t)s_slot[i] * a.di + ch) * 16 + n0) = hs;
    float y = hs.x * cn.x + hs.y * cn.y + hs.z * cn.z + hs.w * cn.w;
    y += __shfl_xor_sync(0xffffffffu, y, 1, 4);
    y += __shfl_xor_sync(0xffffffffu, y, 2, 4);
    if (n0 == 0 && ch_ok) a.out[(size_t)s_row[i] * a.di + ch] = __float2bfloat16_rn((y + D * u[i]) * silu(zv[i]));
  }
}

// --- the segmented prefill scan ------------------------------------------------------------------------
//
// A long sequence's rows are cut into S segments (S ≤ 32, at least kSegRows rows each) scanned in
// parallel, one thread per (segment, channel) with the channel's d_state states in registers:
//   1. each segment runs the recurrence from h = 0, giving its end state e_s and Σδ over its rows;
//   2. per channel, sequentially over the segments: h_s (the state entering segment s) = the slot's
//      state for s = 0, else h_{s-1}·exp(A·Σδ_{s-1}) + e_{s-1} (the decays of a segment multiply to
//      exp(A·Σδ)); the slot's state becomes the last one;
//   3. each segment reruns its recurrence from h_s and writes y.
// Steps 1-2 keep their per-(segment, channel) results (d_state + 1 floats) in the output column of
// that channel over the segment's own rows, which step 3 overwrites with y only after reading them:
// no scratch buffer, and no thread reads what another one writes.

constexpr int kSegThreads = 128, kSegMax = 32, kSegRows = 96;

struct Segments {
  int rows, count, len;  // the sequence's rows; segments; rows per segment (the last one may have fewer)
};

__device__ __forceinline__ Segments segments_of(int rows) {
  const int count = min(kSegMax, rows / kSegRows);
  return {rows, count, count > 0 ? (rows + count - 1) / count : 0};
}

/** Float `i` of a (segment, channel) record kept in output column `ch` from row `r0` on (two bf16 slots each). */
__device__ __forceinline__ void put_record(__nv_bfloat16* out, int di, size_t r0, int ch, int i, float v) {
  const uint32_t bits = __float_as_uint(v);
  reinterpret_cast<uint16_t*>(out)[(r0 + 2 * i) * di + ch] = (uint16_t)(bits & 0xffffu);
  reinterpret_cast<uint16_t*>(out)[(r0 + 2 * i + 1) * di + ch] = (uint16_t)(bits >> 16);
}

__device__ __forceinline__ float get_record(const __nv_bfloat16* out, int di, size_t r0, int ch, int i) {
  const uint16_t lo = reinterpret_cast<const uint16_t*>(out)[(r0 + 2 * i) * di + ch];
  const uint16_t hi = reinterpret_cast<const uint16_t*>(out)[(r0 + 2 * i + 1) * di + ch];
  return __uint_as_float((uint32_t)lo | ((uint32_t)hi << 16));
}

/**
 * One row of the recurrence over a channel's d_state states: h = exp(δA)·h + δ·x·B, and with APPLY
 * the row's y = Σ h·C (returned); `b(n)` and `c(n)` give the row's B and C.
 */
template <int NS, bool APPLY, typename BAt, typename CAt>
__device__ __forceinline__ float seg_row(float (&h)[NS], const float (&A2)[NS], float delta, float du, BAt b, CAt c) {
  float y = 0.f;
#pragma unroll
  for (int n = 0; n < NS; n++) {
    h[n] = fast_exp2(delta * A2[n]) * h[n] + du * b(n);
    if constexpr (APPLY) y += h[n] * c(n);
  }
  return y;
}

/** A (segment, channel)'s start: A in log2 units, and the entering state from its record (APPLY) or 0. */
template <int NS, bool APPLY>
__device__ __forceinline__ void seg_start(const ScanArgs& a, size_t rec, int ch, float (&A2)[NS], float (&h)[NS]) {
#pragma unroll
  for (int n = 0; n < NS; n++) {
    A2[n] = n < a.dstate ? a.neg_a[(size_t)ch * a.dstate + n] * kLog2e : 0.f;
    h[n] = APPLY && n < a.dstate ? get_record(a.out, a.di, rec, ch, n) : 0.f;
  }
}

/** A (segment, channel)'s end without APPLY: its end state and Σδ into its record. */
template <int NS>
__device__ __forceinline__ void seg_finish(const ScanArgs& a, size_t rec, int ch, const float (&h)[NS], float sum_delta) {
#pragma unroll
  for (int n = 0; n < NS; n++)
    if (n < a.dstate) put_record(a.out, a.di, rec, ch, n, h[n]);
  put_record(a.out, a.di, rec, ch, a.dstate, sum_delta);
}

/**
 * Steps 1 (APPLY false: end state and Σδ from h = 0) and 3 (APPLY: from the entering state, writing y),
 * for inputs of any dtype (element loads).
 */
template <int NS, bool APPLY>
__global__ void __launch_bounds__(kSegThreads) seg_scan_kernel(ScanArgs a) {
  pdl_enter();
  const int* m = a.meta + blockIdx.z * JB_META_INTS;
  const int rows = m[JB_META_NUM_ROWS];
  if (rows < a.segmented_rows) return;
  const Segments sg = segments_of(rows);
  const int s = blockIdx.y, ch = blockIdx.x * kSegThreads + threadIdx.x;
  if (s >= sg.count || ch >= a.di) return;
  const size_t row0 = m[JB_META_ROW_START];
  const int t0 = s * sg.len, t1 = min(rows, t0 + sg.len);
  const size_t rec = row0 + t0;  // this (segment, channel)'s record: column ch from row rec on
  float A2[NS], h[NS];
  seg_start<NS, APPLY>(a, rec, ch, A2, h);
  const float D = a.d[ch];
  float sum_delta = 0.f;
  auto at = [&](const Mat& mat, size_t r, int col) { return load_as_float(as<void>(mat.ptr), mat.dtype, r * mat.ld + col); };
  for (int t = t0; t < t1; t++) {
    const size_t r = row0 + t;
    const float dt = at(a.dt, r, ch), u = at(a.x, r, ch);
    const float delta = softplus(dt), du = delta * u;
    auto b = [&](int n) { return n < a.dstate ? at(a.b, r, n) : 0.f; };
    auto c = [&](int n) { return n < a.dstate ? at(a.c, r, n) : 0.f; };
    const float y = seg_row<NS, APPLY>(h, A2, delta, du, b, c);
    if constexpr (APPLY) a.out[r * a.di + ch] = __float2bfloat16_rn((y + D * u) * silu(at(a.z, r, ch)));
    else sum_delta += delta;
  }
  if constexpr (!APPLY) seg_finish<NS>(a, rec, ch, h, sum_delta);
}

/**
 * The same steps for the model's case: x, dt, z, B and C bf16 with 16-byte aligned rows, d_state 16.
 * The block's rows pass through shared memory in chunks of kSegChunk, copied by cp.async a chunk ahead
 * (two stages), so a warp waits on memory once per chunk instead of once per row (loading each row a
 * row ahead into registers, this kernel's predecessor took 1175 against 604 µs at 4K rows on an H200).
 */
constexpr int kSegChunk = 16;

template <bool APPLY>
__global__ void __launch_bounds__(kSegThreads) seg_scan_bf16_kernel(ScanArgs a) {
  constexpr int NS = 16, CH = kSegThreads, PIECES = CH * 2 / 16;  // 16-byte pieces of a row's CH channels
  __shared__ __align__(16) uint16_t s_dt[2][kSegChunk][CH], s_x[2][kSegChunk][CH], s_z[2][APPLY ? kSegChunk : 1][CH];
  __shared__ __align__(16) uint4 s_b[2][kSegChunk][2], s_c[2][APPLY ? kSegChunk : 1][2];
  pdl_enter();
  const int* m = a.meta + blockIdx.z * JB_META_INTS;
  const int rows = m[JB_META_NUM_ROWS];
  if (rows < a.segmented_rows) return;
  const Segments sg = segments_of(rows);
  const int s = blockIdx.y, ch0 = blockIdx.x * CH, ch = ch0 + threadIdx.x;
  if (s >= sg.count) return;  // the whole block: the barriers below need every thread
  const size_t row0 = m[JB_META_ROW_START];
  const int t0 = s * sg.len, t1 = min(rows, t0 + sg.len);
  const int chunks = ceil_div(t1 - t0, kSegChunk);
  const bool live = ch < a.di;
  const int chc = live ? ch : a.di - 1;
  const size_t rec = row0 + t0;
  const auto* dtp = as<uint16_t>(a.dt.ptr);
  const auto* xp = as<uint16_t>(a.x.ptr);
  const auto* zp = as<uint16_t>(a.z.ptr);
  const auto* bp = as<uint16_t>(a.b.ptr);
  const auto* cp = as<uint16_t>(a.c.ptr);
  // Chunk k's rows into stage k % 2: rows past the segment and channels past d_inner zero-filled.
  auto issue = [&](int k) {
    const int st = k % 2, tk = t0 + k * kSegChunk;
    for (int i = threadIdx.x; i < kSegChunk * PIECES; i += CH) {
      const int row = i / PIECES, piece = i % PIECES, col = ch0 + piece * 8;
      const bool ok = tk + row < t1 && col < a.di;
      const size_t r = row0 + (ok ? tk + row : t0);
      const int cc = ok ? col : 0;
      mma::cp_async16(&s_dt[st][row][piece * 8], dtp + r * a.dt.ld + cc, ok);
      mma::cp_async16(&s_x[st][row][piece * 8], xp + r * a.x.ld + cc, ok);
      if constexpr (APPLY) mma::cp_async16(&s_z[st][row][piece * 8], zp + r * a.z.ld + cc, ok);
    }
    if (threadIdx.x < kSegChunk * 2) {
      const int row = threadIdx.x / 2, half = threadIdx.x % 2;
      const bool ok = tk + row < t1;
      const size_t r = row0 + (ok ? tk + row : t0);
      mma::cp_async16(&s_b[st][row][half], bp + r * a.b.ld + half * 8, ok);
      if constexpr (APPLY) mma::cp_async16(&s_c[st][row][half], cp + r * a.c.ld + half * 8, ok);
    }
    mma::cp_async_commit();
  };
  auto bf16_bits = [](uint32_t bits16) { return __uint_as_float(bits16 << 16); };
  // Value n of a row of 16 bf16 held as two uint4.
  auto pick = [](const uint4 (&row)[2], int n) {
    const uint4& q = row[n / 8];
    const uint32_t w = (n % 8) / 2 == 0 ? q.x : (n % 8) / 2 == 1 ? q.y : (n % 8) / 2 == 2 ? q.z : q.w;
    return __uint_as_float(n % 2 == 0 ? w << 16 : w & 0xffff0000u);
  };
  issue(0);  // before the segment's A and record load, which then wait alongside it
  float A2[NS], h[NS];
  seg_start<NS, APPLY>(a, rec, chc, A2, h);
  const float D = a.d[chc];
  float sum_delta = 0.f;
  for (int k = 0; k < chunks; k++) {
    if (k + 1 < chunks) {
      issue(k + 1);
      mma::cp_async_wait<1>();
    } else {
      mma::cp_async_wait<0>();
    }
    __syncthreads();
    const int st = k % 2, tk = t0 + k * kSegChunk, len = min(kSegChunk, t1 - tk);
    for (int i = 0; i < len; i++) {
      const float u = bf16_bits(s_x[st][i][threadIdx.x]);
      const float delta = softplus(bf16_bits(s_dt[st][i][threadIdx.x])), du = delta * u;
      const uint4 brow[2] = {s_b[st][i][0], s_b[st][i][1]};
      uint4 crow[2] = {};
      if constexpr (APPLY) crow[0] = s_c[st][i][0], crow[1] = s_c[st][i][1];
      const float y = seg_row<NS, APPLY>(h, A2, delta, du, [&](int n) { return pick(brow, n); }, [&](int n) { return pick(crow, n); });
      if constexpr (APPLY) {
        if (live) a.out[(row0 + tk + i) * a.di + ch] = __float2bfloat16_rn((y + D * u) * silu(bf16_bits(s_z[st][i][threadIdx.x])));
      } else {
        sum_delta += delta;
      }
    }
    __syncthreads();  // stage st is refilled by the next iteration's issue
  }
  if constexpr (!APPLY) {
    if (live) seg_finish<NS>(a, rec, ch, h, sum_delta);
  }
}

/** Step 2: per channel, the state entering each segment (into its record) and the slot's new state. */
template <int NS>
__global__ void __launch_bounds__(kSegThreads) seg_combine_kernel(ScanArgs a) {
  pdl_enter();
  const int* m = a.meta + blockIdx.y * JB_META_INTS;
  const int rows = m[JB_META_NUM_ROWS];
  const int ch = blockIdx.x * kSegThreads + threadIdx.x;
  if (rows < a.segmented_rows || ch >= a.di) return;
  const Segments sg = segments_of(rows);
  const size_t row0 = m[JB_META_ROW_START];
  float* hp = a.state + ((size_t)m[JB_META_SLOT] * a.di + ch) * a.dstate;
  float A2[NS], h[NS];
#pragma unroll
  for (int n = 0; n < NS; n++) {
    A2[n] = n < a.dstate ? a.neg_a[(size_t)ch * a.dstate + n] * kLog2e : 0.f;
    h[n] = n < a.dstate ? hp[n] : 0.f;
  }
  // Segment s + 1's record is loaded before segment s's is rewritten: a chain of dependent round trips
  // otherwise, since the compiler cannot move loads past stores to the same buffer.
  auto load = [&](int s, float (&end)[NS + 1]) {
    const size_t rec = row0 + (size_t)s * sg.len;
#pragma unroll
    for (int n = 0; n < NS; n++) end[n] = n < a.dstate ? get_record(a.out, a.di, rec, ch, n) : 0.f;
    end[NS] = get_record(a.out, a.di, rec, ch, a.dstate);
  };
  float cur[NS + 1], next[NS + 1] = {};
  load(0, cur);
  for (int s = 0; s < sg.count; s++) {
    if (s + 1 < sg.count) load(s + 1, next);
    const size_t rec = row0 + (size_t)s * sg.len;
#pragma unroll
    for (int n = 0; n < NS; n++) {
      if (n >= a.dstate) continue;
      put_record(a.out, a.di, rec, ch, n, h[n]);
      h[n] = fast_exp2(A2[n] * cur[NS]) * h[n] + cur[n];
    }
#pragma unroll
    for (int n = 0; n <= NS; n++) cur[n] = next[n];
  }
#pragma unroll
  for (int n = 0; n < NS; n++)
    if (n < a.dstate) hp[n] = h[n];
}

/** The segmented scan of the sequences with at least `a.segmented_rows` rows (d_state ≤ 16). */
int launch_seg_scan(const ScanArgs& a, int seqs) {
  auto bf16 = [](const Mat& m) { return m.dtype == JB_DTYPE_BF16; };
  auto rows_of_16_bytes = [](const Mat& m) { return m.ld % 8 == 0 && m.ptr % 16 == 0; };
  const bool staged = bf16(a.x) && bf16(a.dt) && bf16(a.z) && bf16(a.b) && bf16(a.c) && a.dstate == 16 && a.di % 8 == 0 && rows_of_16_bytes(a.x) &&
                      rows_of_16_bytes(a.dt) && rows_of_16_bytes(a.z) && rows_of_16_bytes(a.b) && rows_of_16_bytes(a.c) && !env_is("JAMBA_SEG_SCAN", "loads");
  const dim3 scan_grid(ceil_div(a.di, kSegThreads), kSegMax, seqs), combine_grid(ceil_div(a.di, kSegThreads), seqs);
  auto step1 = staged ? seg_scan_bf16_kernel<false> : seg_scan_kernel<16, false>;
  auto step3 = staged ? seg_scan_bf16_kernel<true> : seg_scan_kernel<16, true>;
  if (launch_pdl("selective scan (segments)", step1, scan_grid, kSegThreads, 0, a) != 0) return -1;
  if (launch_pdl("selective scan (segment states)", seg_combine_kernel<16>, combine_grid, kSegThreads, 0, a) != 0) return -1;
  return launch_pdl("selective scan (segments, output)", step3, scan_grid, kSegThreads, 0, a);
}

/** Segmented scans for long prefills (d_state ≤ 16); JAMBA_SEGMENTED_SCAN=0 keeps them on the chunked kernel. */
bool use_segmented_scan() {
  static const bool on = !env_is("JAMBA_SEGMENTED_SCAN", "0");
  return on;
}

/**
 * Sequences per block and blocks per SM of scan_decode_bf16_kernel (H100, µs at batch 1 / 8 / 64 / 256,
 * clean L2; tools/gpu/mamba_decode_microbench.cu): two sequences at 6 blocks an SM (40 registers) 5.8 / 7.9
 * / 26.5 / 104.4; at 4 (46 registers) 5.7 / 7.9 / 26.9 / 107.7; at 8 (32, spilling) 6.1 / 8.6 / 30.7 /
 * 115.1; four sequences at 4 (62) 5.7 / 8.2 / 26.5 / 103.7; the quads kernel 6.8 / 8.7 / 36.0 / 135.7 and
 * a plain kernel rewriting the same state slots 4.8 / 6.7 / 22.7 / 96.5.
 */
constexpr int kDecodeSeqsPerBlock = 2, kDecodeMinBlocks = 6;

/** Whether scan_decode_bf16_kernel takes these inputs (JAMBA_SCAN_DECODE=quads keeps scan_decode_kernel, for comparison). */
bool decode_bf16_fits(const ScanArgs& a) {
  static const bool off = env_is("JAMBA_SCAN_DECODE", "quads");
  auto bf16 = [](const Mat& m) { return m.dtype == JB_DTYPE_BF16; };
  auto rows_of_8_bytes = [](const Mat& m) { return m.ld % 4 == 0 && m.ptr % 8 == 0; };  // B and C: four bf16 a load
  auto f32_16_bytes = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return !off && a.dstate == 16 && bf16(a.x) && bf16(a.dt) && bf16(a.z) && bf16(a.b) && bf16(a.c) && rows_of_8_bytes(a.b) && rows_of_8_bytes(a.c) &&
         f32_16_bytes(a.state) && f32_16_bytes(a.neg_a);
}

/**
 * The decode update: the bf16 kernel where it fits, else the quads kernel with two channels a thread once
 * there are blocks enough to fill the GPU (batch 64: 36 against 46 µs with one, 48 with four; batch 256:
 * 128 against 168 and 176), one below (batch 1: 5.7 against 6.4).
 */
template <int QUADS>
int launch_scan_decode(const ScanArgs& a, const int* decode_seqs, int decodes) {
  if (decode_bf16_fits(a)) {
    const dim3 grid(ceil_div(a.di, 64), ceil_div(decodes, kDecodeSeqsPerBlock));
    return launch_pdl("selective scan (decode, bf16)", scan_decode_bf16_kernel<kDecodeSeqsPerBlock, kDecodeMinBlocks>, grid, 256, 0, a, decode_seqs, decodes);
  }
  const int cpt = decodes >= 8 ? 2 : 1;
  const dim3 grid(ceil_div(a.di, cpt * 256 / QUADS), decodes);
  return launch_pdl("selective scan (decode)", cpt == 2 ? scan_decode_kernel<QUADS, 2> : scan_decode_kernel<QUADS, 1>, grid, 256, 0, a, decode_seqs);
}

template <int GROUP>
int launch_scan(const ScanArgs& a, int seqs, const int* decode_seqs, int decodes) {
  if (decodes > 0) {
    if (launch_scan_decode<(GROUP + 3) / 4>(a, decode_seqs, decodes) != 0) return -1;
    if (decodes == seqs) return 0;
  }
  if (a.segmented_rows > 0 && launch_seg_scan(a, seqs) != 0) return -1;
  dim3 grid(ceil_div(a.di, kScanThreads / GROUP), seqs);
  return launch_pdl("selective scan", scan_kernel<GROUP>, grid, kScanThreads, 0, a);
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
  if (launch_pdl("conv", conv_kernel, dim3(x.rows, ceil_div(di, threads)), threads, 0, as<void>(x.ptr), x.dtype, x.ld, as<float>(w),
                 bias ? as<float>(bias) : nullptr, as<__nv_bfloat16>(state), di, dconv, as<int>(meta), as<int>(row_seq), x.rows, as<__nv_bfloat16>(out)) != 0)
    return -1;
  // Every sequence has at least one row, so as many rows as sequences means all are single-row.
  if (dconv > 1 && x.rows > seqs) {
    if (launch_pdl("conv state", conv_state_kernel, dim3(ceil_div(di, threads), seqs), threads, 0, as<void>(x.ptr), x.dtype, x.ld, as<__nv_bfloat16>(state), di,
                   dconv, as<int>(meta), seqs) != 0)
      return -1;
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
  const int* decode_seqs = as<int>(a.ptr());
  const int decodes = a.i();
  s.out = as<__nv_bfloat16>(a.ptr());
  s.di = s.x.cols;
  s.decodes_done = decodes > 0;
  // Sequences long enough for two segments take the segmented scan (d_state ≤ 16); the chunked kernel
  // keeps the shorter ones.
  s.segmented_rows = s.dstate <= 16 && s.x.rows >= 2 * kSegRows && use_segmented_scan() ? 2 * kSegRows : 0;
  if (s.x.rows == 0) return 0;
  if (s.dstate <= 1) return launch_scan<1>(s, seqs, decode_seqs, decodes);
  if (s.dstate <= 2) return launch_scan<2>(s, seqs, decode_seqs, decodes);
  if (s.dstate <= 4) return launch_scan<4>(s, seqs, decode_seqs, decodes);
  if (s.dstate <= 8) return launch_scan<8>(s, seqs, decode_seqs, decodes);
  if (s.dstate <= 16) return launch_scan<16>(s, seqs, decode_seqs, decodes);
  if (s.dstate <= 32) return launch_scan<32>(s, seqs, decode_seqs, decodes);
  return fail("scan: d_state above 32");
}

}  // namespace ops
}  // namespace jb
