// The ExpertsInt8 MoE stages one at a time, and variants of the decode kernel, on the GPU machine (a
// benchmark, not a test; it is built there with its nvcc):
//   nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr \
//        -Iruntime/native/include tools/gpu/moe_microbench.cu -o /tmp/moe_microbench && /tmp/moe_microbench
// Mini shapes (16 experts, top-2, hidden 4096, ffn 14336), random int8 weights, random distinct routing.
// Each figure is the median of 20 runs of device time with a cold L2 (a 256 MiB write between runs), with
// the bytes of the experts actually touched over that time, and a plain read of the same bytes as the
// ceiling. It includes the kernels' source so that it can time their parts; nothing here ships.
// MB_TOKENS=1024,4096 runs only those token counts (for a profiler: the first kernels it launches for
// each are one whole MoE layer's).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "../../runtime/native/src/moe.cu"

#include "bench_common.cuh"

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

/** The streamed kernel's access pattern without its arithmetic: warps of 16-row strips reading whole
 *  1 KiB tiles, BATCH k-blocks at a time, K split over gridDim.z. KB_MAJOR stores the tiles of one
 *  k-block of every strip together (tile (s, kb) at kb·strips + s) instead of each strip's run along K
 *  (s·k_blocks + kb, the layout of int8_tiles.cuh): warps that advance together then sweep one window. */
template <bool KB_MAJOR, int BATCH>
__global__ void read_tiles(const unsigned char* w, int strips, int k_blocks, uint32_t* sink) {
  const int lane = threadIdx.x & 31, strip = blockIdx.y * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (strip >= strips) return;
  const int per = (k_blocks + gridDim.z - 1) / gridDim.z, kb0 = blockIdx.z * per, kb1 = min(k_blocks, kb0 + per);
  uint32_t acc = 0;
  for (int kb = kb0; kb < kb1; kb += BATCH) {
    uint4 v[BATCH][2];
#pragma unroll
    for (int u = 0; u < BATCH; u++) {
      const size_t tile = KB_MAJOR ? (size_t)(kb + u) * strips + strip : (size_t)strip * k_blocks + kb + u;
      const unsigned char* t = w + tile * 1024 + lane * 16;
      const bool ok = kb + u < kb1;
      v[u][0] = ok ? load_streamed<true>(t) : make_uint4(0, 0, 0, 0);
      v[u][1] = ok ? load_streamed<true>(t + 512) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < BATCH; u++) acc ^= v[u][0].x ^ v[u][1].y;
  }
  if (acc == 0x12345678u) *sink = acc;
}

constexpr size_t kPartialBytes = (size_t)4 * 512 * 2 * 14336 * 4;  // 4 gated K slices at 256 tokens

int main() {
  const int E = 16, K = 2, H = 4096, F = 14336;
  bench_init();
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
  const int max_t = 4096;
  __nv_bfloat16 *x, *h;
  float *partial, *out, *route_w;
  int *ids, *align;
  uint32_t* sink;
  CHECK(cudaMalloc(&x, (size_t)max_t * H * 2));
  fill_bf16<<<1024, 256>>>(x, (size_t)max_t * H, 1.f);
  CHECK(cudaMalloc(&h, (size_t)max_t * K * F * 2 + (size_t)max_t * H * 2 + (size_t)max_t * (1 + K * F / 64) * 4));  // OP_MOE's h layout
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
  std::vector<int> token_counts = {1, 8, 64, 256, 1024, 4096};
  if (const char* only = getenv("MB_TOKENS")) {
    token_counts.clear();
    for (const char* c = only; *c;) {
      if (const int t = std::atoi(c); t > 0) token_counts.push_back(std::min(t, max_t));
      c += strcspn(c, ",");
      if (*c == ',') c++;
    }
  }
  for (int T : token_counts) {
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
    // The partial-sum buffer as the CUDA backend sizes it (moePartialFloats, runtime/models/geometry.ts).
    const int pairs = T * K;
    const double partial_bytes = (pairs <= 64 ? 8.0 : pairs <= 1024 ? 4.0 : 1.0) * pairs * (pairs <= 16 ? std::max(H, 2 * F) : H) * 4;
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
      // The same bytes in the streamed kernel's pattern (tiles of the touched experts' gate and up as
      // one matrix, the gated GEMM's K slices), in today's layout and with k-block-major tiles.
      const int strips = 2 * n_touched * F / 16, k_blocks = H / 64;
      const dim3 grid(1, ceil_div(strips, 4), r.gated_splits);
      row("read tiles, strip-major", timer.median_us([&] { read_tiles<false, 4><<<grid, 128, 0, stream()>>>(big, strips, k_blocks, sink); }), (double)strips * 16 * H);
      row("read tiles, k-block-major", timer.median_us([&] { read_tiles<true, 4><<<grid, 128, 0, stream()>>>(big, strips, k_blocks, sink); }), (double)strips * 16 * H);
      // The down projection's: K = F, the touched experts' [H, F] matrices, its K slices.
      const int d_strips = n_touched * H / 16, d_blocks = F / 64;
      const dim3 d_grid(1, ceil_div(d_strips, 4), r.splits);
      row("read down tiles, strip-major", timer.median_us([&] { read_tiles<false, 4><<<d_grid, 128, 0, stream()>>>(big, d_strips, d_blocks, sink); }), (double)d_strips * 16 * F);
      row("read down tiles, kb-major", timer.median_us([&] { read_tiles<true, 4><<<d_grid, 128, 0, stream()>>>(big, d_strips, d_blocks, sink); }), (double)d_strips * 16 * F);
    }
    row("whole moe", timer.median_us([&] { run_moe(r); }), gated_bytes + down_bytes);
    row("align", timer.median_us([&] { moe_align(r); }), 0);
    printf("       (gated K slices %d, down K slices %d)\n", r.gated_splits, r.splits);
    printf("       (fp16 inputs: gated %d, down %d)\n", r.f16_gated, r.f16_down);
    row("gated (default)", timer.median_us([&] { moe_gated(r); }), gated_bytes);
    row("down (default)", timer.median_us([&] { run_gemm<DOWN>(true, r.bm, r.down, r.tiles, r.splits, r.f16_down); }), down_bytes);
    if (r.f16_gated) {
      // The same stages on bf16 inputs (JAMBA_MOE_F16=0); the books and h are the same.
      MoeRun b = r;
      b.f16_gated = b.f16_down = false;
      row("whole moe, bf16 inputs", timer.median_us([&] { run_moe(b); }), gated_bytes + down_bytes);
      row("align, bf16 inputs", timer.median_us([&] { moe_align(b); }), 0);
      row("gated, bf16 inputs", timer.median_us([&] { moe_gated(b); }), gated_bytes);
      row("down, bf16 inputs", timer.median_us([&] { run_gemm<DOWN>(true, b.bm, b.down, b.tiles, b.splits, false); }), down_bytes);
      // The gated GEMM alone (no finish) on each input type.
      row("gated GEMM only, fp16", timer.median_us([&] { run_gemm<GATED>(true, r.bm, r.up, r.tiles, r.gated_splits, true); }), gated_bytes);
      row("gated GEMM only, bf16", timer.median_us([&] { run_gemm<GATED>(true, r.bm, r.up, r.tiles, r.gated_splits, false); }), gated_bytes);
      moe_align(r);
    }
    if (r.bm >= 64) {
      // Prefill sizes (wgmma kernel): each GEMM's rate against the bf16 GEMM's ~790 TFLOP/s, and the
      // block order's share (output blocks fastest, the order before tile groups; moe.cu grouped_block).
      auto flops_row = [&](const char* what, float us, double flops) { printf("%-6d %-28s %10.1f %10.0f TFLOP/s\n", T, what, us, flops / us / 1e6); };
      const double gated_flops = 2.0 * pairs * 2 * F * H, down_flops = 2.0 * pairs * F * H;
      flops_row("gated GEMM, wgmma", timer.median_us([&] { run_gemm<GATED>(true, r.bm, r.up, r.tiles, r.gated_splits, r.f16_gated, r.groups); }), gated_flops);
      flops_row("down GEMM, wgmma", timer.median_us([&] { run_gemm<DOWN>(true, r.bm, r.down, r.tiles, r.splits, false, r.down_groups); }), down_flops);
      for (int wgs : {1, 2, 4, kWideWarpgroup, kMulticastPair}) {  // JAMBA_WGMMA_DOWN_GROUPS: warpgroups sharing each token tile
        if (wgs == 4 && r.bm != 128) continue;
        flops_row(wgs == kWideWarpgroup   ? "down, 1 warpgroup, 128 channels"
                  : wgs == kMulticastPair ? "down, 2 warpgroups, cluster of 2"
                  : wgs == 1              ? "down, 1 warpgroup a block"
                  : wgs == 2              ? "down, 2 warpgroups a block"
                                          : "down, 4 warpgroups a block",
                  timer.median_us([&] { run_gemm<DOWN>(true, r.bm, r.down, r.tiles, r.splits, false, wgs); }), down_flops);
      }
      MoeRun plain = r;
      plain.up.tile_group = plain.down.tile_group = 1;
      flops_row("gated, output blocks fastest", timer.median_us([&] { run_gemm<GATED>(true, r.bm, plain.up, r.tiles, r.gated_splits, r.f16_gated, r.groups); }), gated_flops);
      flops_row("down, output blocks fastest", timer.median_us([&] { run_gemm<DOWN>(true, r.bm, plain.down, r.tiles, r.splits, false, r.down_groups); }), down_flops);
      printf("       (tile group %d, tail tiles %d)\n", r.up.tile_group, r.tail);
    }
    if (r.bm == 16)  // JAMBA_MOE_STREAMED_DOWN_WARPS: more warps sharing each block's token rows in L1
      for (const bool eight : {false, true})
        row(eight ? "down, 8 warps a block" : "down, 4 warps a block", timer.median_us([&] {
              if (eight) launch_streamed_piped<DOWN, 16, false, 8>(r.down, r.tiles, r.splits);
              else launch_streamed_piped<DOWN, 16, false, 4>(r.down, r.tiles, r.splits);
            }), down_bytes);
    row("reduce", timer.median_us([&] { moe_reduce(r); }), 0);
    if (r.bm == 8) {
      // The dequantization's share: the streamed gated GEMM fed raw bytes (wrong results, same loads), with
      // the default's two batches in registers (moe.cu streamed_pipe).
      row("gated, no int8 conversion", timer.median_us([&] { launch_streamed<GATED, 8, false, 4, streamed_batch(8), true, false, true>(r.up, r.tiles, r.gated_splits); }), gated_bytes);
      row("down, no int8 conversion", timer.median_us([&] { launch_streamed<DOWN, 8, false, 4, streamed_batch(8), true, false, true>(r.down, r.tiles, r.splits); }), down_bytes);
    }
    // The streamed kernel at each token tile (rows per tile) and K-slice count, with the books rebuilt
    // for that tile: which shape the planner should pick.
    for (int tn : {8, 16, 32}) {
      if ((tn > 8 && pairs / E < tn / 4) || pairs / E > 64) continue;  // tiles mostly empty, or far too many
      MoeRun v = r;
      v.bm = tn;
      v.tiles = ceil_div(pairs, tn) + E;
      moe_align(v);
      for (int splits : {1, 2, 4, 8}) {
        char label[64];
        snprintf(label, sizeof label, "gated tile %d, %d K slices", tn, splits);
        if ((double)splits * pairs * 2 * F * 4 <= kPartialBytes) row(label, timer.median_us([&] { run_gemm<GATED>(true, tn, v.up, v.tiles, splits, v.f16_gated); }), gated_bytes);
        snprintf(label, sizeof label, "down tile %d, %d K slices", tn, splits);
        row(label, timer.median_us([&] { run_gemm<DOWN>(true, tn, v.down, v.tiles, splits, v.f16_down); }), down_bytes);
      }
    }
    // The large (prefill) kernel's tile shapes, where the planner picks it: books rebuilt per row tile.
    if (r.bm == 128) {
      auto large = [&](const char* name, auto gated_cfg, auto down_cfg, int bm) {
        MoeRun v = r;
        v.bm = bm;
        v.tiles = ceil_div(pairs, bm) + E;
        moe_align(v);
        char label[64];
        snprintf(label, sizeof label, "gated %s", name);
        row(label, timer.median_us([&] { launch_gemm(v.up, v.tiles, 1, gated_cfg); }), gated_bytes);
        snprintf(label, sizeof label, "down %s", name);
        row(label, timer.median_us([&] { launch_gemm(v.down, v.tiles, 1, down_cfg); }), down_bytes);
        CHECK(cudaGetLastError());
      };
      large("128x64x64 w4x2 s3", GemmConfig<true, GATED, 128, 64, 64, 4, 2, 3>{}, GemmConfig<true, DOWN, 128, 64, 64, 4, 2, 3>{}, 128);
      large("128x128x64 w4x2 s3", GemmConfig<true, GATED, 128, 128, 64, 4, 2, 3>{}, GemmConfig<true, DOWN, 128, 128, 64, 4, 2, 3>{}, 128);
      large("128x128x32 w4x2 s4", GemmConfig<true, GATED, 128, 128, 32, 4, 2, 4>{}, GemmConfig<true, DOWN, 128, 128, 32, 4, 2, 4>{}, 128);
      large("128x64x64 w4x2 s4", GemmConfig<true, GATED, 128, 64, 64, 4, 2, 4>{}, GemmConfig<true, DOWN, 128, 64, 64, 4, 2, 4>{}, 128);
      large("128x64x128 w4x2 s2", GemmConfig<true, GATED, 128, 64, 128, 4, 2, 2>{}, GemmConfig<true, DOWN, 128, 64, 128, 4, 2, 2>{}, 128);
      large("64x128x64 w2x4 s3", GemmConfig<true, GATED, 64, 128, 64, 2, 4, 3>{}, GemmConfig<true, DOWN, 64, 128, 64, 2, 4, 3>{}, 64);
      large("256x64x64 w8x2 s3", GemmConfig<true, GATED, 256, 64, 64, 8, 2, 3>{}, GemmConfig<true, DOWN, 256, 64, 64, 8, 2, 3>{}, 256);
      large("128x128x64 w2x4 s3", GemmConfig<true, GATED, 128, 128, 64, 2, 4, 3>{}, GemmConfig<true, DOWN, 128, 128, 64, 2, 4, 3>{}, 128);
    }
    moe_align(r);
    CHECK(cudaGetLastError());
  }
  return 0;
}
