// Token sampling on the device, one block per sampled row, following the reference sampler
// (runtime/sampling/sampler.ts) step by step:
//   logprobs: log_softmax of the raw logits at the chosen token, and the top-n (value desc, id asc);
//   greedy:   argmax, lowest id on ties (temperature 0 or top_k 1);
//   sampling: w = exp((l − max) / T); min-p keeps w ≥ min_p; top-k keeps logits ≥ the k-th largest
//             kept one; top-p keeps logits ≥ the largest τ whose kept mass at or above τ reaches
//             p · (kept mass); then an inverse-CDF walk in token-id order with u = counterUniform(seed,
//             counter). Thresholds are found by radix selection over order-preserving keys (4 passes
//             of 8 bits), by count for top-k and by mass for top-p: no sort of the vocabulary.
// Output per row: token id, its logprob (NaN when none was asked), then JB_MAX_TOP_LOGPROBS ids and
// logprobs (id -1 past the row's n).
#include "common.cuh"

namespace jb {
namespace {

constexpr int kThreads = 1024;

__device__ __forceinline__ uint32_t key_of(float v) {
  const uint32_t b = __float_as_uint(v);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

/** runtime/sampling/prng.ts counterUniform, bit for bit. */
__device__ __forceinline__ float counter_uniform(uint32_t seed, uint32_t counter) {
  const uint32_t bits = mix32(mix32(seed ^ 0x9e3779b9u) ^ ((counter + 1u) * 0x85ebca6bu));
  return (static_cast<float>(bits >> 9) + 0.5f) / 8388608.f;
}

struct Shared {
  float red[32];
  int redi[32];
  unsigned int hist_count[256];
  float hist_mass[256];
  uint32_t prefix, prefix_mask;
  float need;
  int remaining;
  float run[kThreads];
  int chosen;
};

/** Block argmax by (value desc, index asc) among elements strictly after (prev_v, prev_i) in that order. */
__device__ void block_argmax_after(const float* row, int vocab, float prev_v, int prev_i, Shared& sh, float& out_v, int& out_i) {
  float bv = -INFINITY;
  int bi = 0x7fffffff;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float v = row[i];
    const bool after = v < prev_v || (v == prev_v && i > prev_i);
    if (after && (v > bv || (v == bv && i < bi))) {
      bv = v;
      bi = i;
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (ov > bv || (ov == bv && oi < bi)) {
      bv = ov;
      bi = oi;
    }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) {
    sh.red[warp] = bv;
    sh.redi[warp] = bi;
  }
  __syncthreads();
  if (warp == 0) {
    bv = lane < (int)(blockDim.x >> 5) ? sh.red[lane] : -INFINITY;
    bi = lane < (int)(blockDim.x >> 5) ? sh.redi[lane] : 0x7fffffff;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (ov > bv || (ov == bv && oi < bi)) {
        bv = ov;
        bi = oi;
      }
    }
    if (lane == 0) {
      sh.red[0] = bv;
      sh.redi[0] = bi;
    }
  }
  __syncthreads();
  out_v = sh.red[0];
  out_i = sh.redi[0];
  __syncthreads();
}

struct Filter {
  float max, inv_t, min_p;
  uint32_t floor_key;  // keep keys >= this (top-k / top-p thresholds)
  __device__ __forceinline__ float weight(float l) const { return __expf((l - max) * inv_t); }
  __device__ __forceinline__ bool kept(float l) const { return key_of(l) >= floor_key && !(weight(l) < min_p); }
};

/**
 * Radix selection over the kept elements, largest keys first. by_mass false: the key of the
 * `target`-th largest (count); true: the largest key whose kept mass at or above it reaches `target`.
 */
__device__ uint32_t radix_select(const float* row, int vocab, const Filter& f, bool by_mass, float target, Shared& sh) {
  if (threadIdx.x == 0) {
    sh.prefix = 0;
    sh.prefix_mask = 0;
    sh.need = target;
    sh.remaining = static_cast<int>(target);
  }
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < 256; b += blockDim.x) {
      sh.hist_count[b] = 0;
      sh.hist_mass[b] = 0.f;
    }
    __syncthreads();
    const uint32_t prefix = sh.prefix, mask = sh.prefix_mask;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
      const float l = row[i];
      if (!f.kept(l)) continue;
      const uint32_t k = key_of(l);
      if ((k & mask) != prefix) continue;
      const int digit = (k >> shift) & 0xff;
      if (by_mass) atomicAdd(&sh.hist_mass[digit], f.weight(l));
      else atomicAdd(&sh.hist_count[digit], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int d = 255;
      if (by_mass) {
        float acc = 0.f;
        for (; d > 0; d--) {
          if (acc + sh.hist_mass[d] >= sh.need) break;
          acc += sh.hist_mass[d];
        }
        sh.need -= acc;
      } else {
        int acc = 0;
        for (; d > 0; d--) {
          if (acc + (int)sh.hist_count[d] >= sh.remaining) break;
          acc += sh.hist_count[d];
        }
        sh.remaining -= acc;
      }
      sh.prefix |= static_cast<uint32_t>(d) << shift;
      sh.prefix_mask |= 0xffu << shift;
    }
    __syncthreads();
  }
  const uint32_t result = sh.prefix;
  __syncthreads();
  return result;
}

__global__ void __launch_bounds__(kThreads) sample_kernel(const float* logits, int vocab, const uint32_t* params, int* out_ids, float* out_lp, int* top_ids,
                                                          float* top_lp, int rows) {
  pdl_enter();
  __shared__ Shared sh;
  const int r = blockIdx.x;
  const float* row = logits + (size_t)r * vocab;
  const uint32_t* p = params + r * JB_SAMPLE_PARAM_WORDS;
  const float temperature = __uint_as_float(p[0]), top_p = __uint_as_float(p[1]), min_p = __uint_as_float(p[3]);
  const int top_k = static_cast<int>(p[2]), want = static_cast<int>(p[6]);
  const uint32_t seed = p[4], counter = p[5];

  float mx;
  int amax;
  block_argmax_after(row, vocab, INFINITY, -1, sh, mx, amax);

  int token = amax;
  if (!(temperature == 0.f || top_k == 1)) {
    Filter f{mx, 1.f / temperature, min_p, 0u};
    if (top_k > 0 && top_k < vocab) {
      // Count what min-p keeps: top-k applies only when it keeps fewer.
      float kept = 0.f;
      for (int i = threadIdx.x; i < vocab; i += blockDim.x) kept += f.kept(row[i]) ? 1.f : 0.f;
      kept = block_sum(kept, sh.red);
      if (top_k < kept) f.floor_key = radix_select(row, vocab, f, false, static_cast<float>(top_k), sh);
    }
    if (top_p < 1.f) {
      float mass = 0.f;
      for (int i = threadIdx.x; i < vocab; i += blockDim.x) mass += f.kept(row[i]) ? f.weight(row[i]) : 0.f;
      mass = block_sum(mass, sh.red);
      f.floor_key = radix_select(row, vocab, f, true, top_p * mass, sh);
    }
    // Inverse CDF in id order: each thread owns a contiguous run of ids; one scan over the runs.
    const int per = (vocab + blockDim.x - 1) / blockDim.x;
    const int lo = threadIdx.x * per, hi = min(vocab, lo + per);
    float local = 0.f;
    for (int i = lo; i < hi; i++) local += f.kept(row[i]) ? f.weight(row[i]) : 0.f;
    sh.run[threadIdx.x] = local;
    if (threadIdx.x == 0) sh.chosen = -1;
    __syncthreads();
    // Inclusive scan of the runs (Hillis-Steele over shared memory).
    for (int o = 1; o < (int)blockDim.x; o <<= 1) {
      const float add = threadIdx.x >= (unsigned)o ? sh.run[threadIdx.x - o] : 0.f;
      __syncthreads();
      sh.run[threadIdx.x] += add;
      __syncthreads();
    }
    const float total = sh.run[blockDim.x - 1];
    const float target = counter_uniform(seed, counter) * total;
    const float before = threadIdx.x > 0 ? sh.run[threadIdx.x - 1] : 0.f;
    if (target >= before && target < sh.run[threadIdx.x]) {
      float acc = before;
      int pick = -1;
      for (int i = lo; i < hi && pick < 0; i++) {
        if (!f.kept(row[i])) continue;
        acc += f.weight(row[i]);
        if (target < acc) pick = i;
      }
      if (pick < 0) {  // rounding: the run's last kept id
        for (int i = hi - 1; i >= lo && pick < 0; i--)
          if (f.kept(row[i])) pick = i;
      }
      atomicMax(&sh.chosen, pick);
    }
    __syncthreads();
    token = sh.chosen;
    if (token < 0) {  // target beyond the last partial sum: the last kept id
      int last = -1;
      for (int i = threadIdx.x; i < vocab; i += blockDim.x)
        if (f.kept(row[i])) last = max(last, i);
      __syncthreads();
      if (threadIdx.x == 0) sh.chosen = -1;
      __syncthreads();
      atomicMax(&sh.chosen, last);
      __syncthreads();
      token = sh.chosen;
    }
  }

  float logprob = __int_as_float(0x7fc00000);  // NaN: no logprobs asked
  if (want >= 0) {
    float s = 0.f;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) s += __expf(row[i] - mx);
    const float lse = mx + logf(block_sum(s, sh.red));
    logprob = row[token] - lse;
    float pv = INFINITY;
    int pi = -1;
    for (int j = 0; j < JB_MAX_TOP_LOGPROBS; j++) {
      if (j < want && j < vocab) {
        block_argmax_after(row, vocab, pv, pi, sh, pv, pi);
        if (threadIdx.x == 0) {
          top_ids[r * JB_MAX_TOP_LOGPROBS + j] = pi;
          top_lp[r * JB_MAX_TOP_LOGPROBS + j] = pv - lse;
        }
      } else if (threadIdx.x == 0) {
        top_ids[r * JB_MAX_TOP_LOGPROBS + j] = -1;
        top_lp[r * JB_MAX_TOP_LOGPROBS + j] = 0.f;
      }
    }
  } else if (threadIdx.x < JB_MAX_TOP_LOGPROBS) {
    top_ids[r * JB_MAX_TOP_LOGPROBS + threadIdx.x] = -1;
    top_lp[r * JB_MAX_TOP_LOGPROBS + threadIdx.x] = 0.f;
  }
  if (threadIdx.x == 0) {
    out_ids[r] = token;
    out_lp[r] = logprob;
  }
  (void)rows;
}

}  // namespace

namespace ops {

int sample(Args& a) {
  const uint64_t logits = a.ptr();
  const int rows = a.i(), vocab = a.i();
  const uint64_t params = a.ptr(), out = a.ptr();
  if (rows == 0) return 0;
  int* ids = as<int>(out);
  float* lp = reinterpret_cast<float*>(ids + rows);
  int* top_ids = reinterpret_cast<int*>(lp + rows);
  float* top_lp = reinterpret_cast<float*>(top_ids + rows * JB_MAX_TOP_LOGPROBS);
  return launch_pdl("sample", sample_kernel, rows, kThreads, 0, as<float>(logits), vocab, as<uint32_t>(params), ids, lp, top_ids, top_lp, rows);
}

}  // namespace ops
}  // namespace jb
