#!/usr/bin/env python3
"""The MoE baseline on the card at hand: vLLM's Triton `fused_moe_kernel` in its int8_w8a16 mode.

Issue 10 quotes this kernel's H200 figures (the best of a 48-config sweep). This runs the same kernel on
whatever card is lent, at Jamba-1.5-Mini's shapes (hidden 4096, ffn 14336, 16 experts, top-2, int8 weights
with per-output-channel fp32 scales, bf16 activations), and sweeps 48 configs per token count (`configs`).

vLLM is not a dependency of the project and does not import without its compiled parts: pass its unpacked
sdist. Its kernel and the helper it calls are taken from the file by name and imported on their own; the
launch follows vLLM's `fused_experts_impl` (gated GEMM, SiLU-and-mul, down GEMM with the routing weight,
sum over top-k, and the one-token-per-block path when tokens × top-k × 4 ≤ experts). What vLLM does in
compiled ops is done here by small stand-ins, each one kernel as in vLLM: the block alignment (not timed:
routing is precomputed, as in `jamba-runtime bench --ops moe`, whose figure includes its own alignment), a
Triton SiLU-and-mul, and torch.sum for the top-k sum. Each op is timed as `bench --ops` times ours:
CUDA events around it after a 256 MiB write that cools the L2, median of the runs.

    python3 tools/gpu/peer_moe.py --vllm DIR [--tokens 1,8,64,256,1024,4096] [--json out.json]
"""
import argparse
import ast
import importlib.util
import itertools
import json
import os
import statistics
import tempfile

import torch
import triton
import triton.language as tl

from peer_timing import event_ms

HIDDEN, FFN, EXPERTS, TOP_K = 4096, 14336, 16, 2
KERNEL_FILE = "vllm/model_executor/layers/fused_moe/fused_moe.py"


def load_vllm_kernel(root):
    """vLLM's fused_moe_kernel and write_zeros_to_output, cut from its source into a module of their own."""
    source = open(os.path.join(root, KERNEL_FILE)).read()
    tree = ast.parse(source)
    wanted = {"write_zeros_to_output", "fused_moe_kernel"}
    decorated = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in wanted:
            start = min(d.lineno for d in node.decorator_list) if node.decorator_list else node.lineno
            decorated.append("\n".join(source.splitlines()[start - 1:node.end_lineno]))
    assert len(decorated) == len(wanted), "vLLM's kernel file no longer has the expected functions"
    path = os.path.join(tempfile.mkdtemp(), "vllm_fused_moe_kernel.py")
    with open(path, "w") as f:
        f.write("import triton\nimport triton.language as tl\n\n\n" + "\n\n\n".join(decorated) + "\n")
    spec = importlib.util.spec_from_file_location("vllm_fused_moe_kernel", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fused_moe_kernel


@triton.jit
def silu_and_mul_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    """out[r, j] = silu(x[r, j]) * x[r, n + j], one row per program axis 0, BLOCK columns per axis 1."""
    row = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < n
    gate = tl.load(x_ptr + row * 2 * n + cols, mask=mask).to(tl.float32)
    up = tl.load(x_ptr + row * 2 * n + n + cols, mask=mask).to(tl.float32)
    tl.store(out_ptr + row * n + cols, (gate / (1 + tl.exp(-gate)) * up).to(out_ptr.dtype.element_ty), mask=mask)


def align_block_size(topk_ids, block_m, experts):
    """vLLM's moe_align_block_size: (token, k) pairs grouped by expert, each group padded to block_m."""
    flat = topk_ids.view(-1)
    sentinel = flat.numel()
    capacity = flat.numel() + experts * (block_m - 1)
    sorted_ids = torch.full((capacity,), sentinel, dtype=torch.int32, device=flat.device)
    expert_ids, offset = [], 0
    for e in range(experts):
        pairs = (flat == e).nonzero().view(-1).to(torch.int32)
        if pairs.numel() == 0:
            continue
        sorted_ids[offset:offset + pairs.numel()] = pairs
        blocks = triton.cdiv(pairs.numel(), block_m)
        expert_ids += [e] * blocks
        offset += blocks * block_m
    ids = torch.tensor(expert_ids or [0], dtype=torch.int32, device=flat.device)
    return sorted_ids, ids, torch.tensor([offset], dtype=torch.int32, device=flat.device)


class FusedMoe:
    """vLLM's int8_w8a16 fused_experts at one config, routing aligned up front."""

    def __init__(self, kernel, w1, s1, w2, s2, x, topk_ids, topk_weights, config):
        self.kernel, self.w1, self.s1, self.w2, self.s2, self.x = kernel, w1, s1, w2, s2, x
        self.topk_weights, self.config = topk_weights, config
        m = x.shape[0]
        if m * TOP_K * 4 <= EXPERTS:  # vLLM's one-token-per-block path
            self.sorted_ids, self.expert_ids = None, topk_ids.view(-1).to(torch.int32)
            self.post_padded = torch.tensor([topk_ids.numel() * config["BLOCK_SIZE_M"]], dtype=torch.int32, device=x.device)
        else:
            self.sorted_ids, self.expert_ids, self.post_padded = align_block_size(topk_ids, config["BLOCK_SIZE_M"], EXPERTS)
        self.cache1 = torch.empty(m, TOP_K, 2 * FFN, device=x.device, dtype=x.dtype)
        self.cache2 = torch.empty(m * TOP_K, FFN, device=x.device, dtype=x.dtype)
        self.cache3 = torch.empty(m, TOP_K, HIDDEN, device=x.device, dtype=x.dtype)
        self.out = torch.empty_like(x)

    def gemm(self, a, b, scale, c, mul_routed_weight, top_k):
        cfg = dict(self.config)
        block_k = cfg.pop("BLOCK_SIZE_K")
        m = a.shape[0]
        if self.sorted_ids is not None:
            em = self.sorted_ids.numel()
            if m < cfg["BLOCK_SIZE_M"]:
                em = min(em, m * top_k * cfg["BLOCK_SIZE_M"])
        else:
            em = m * top_k * cfg["BLOCK_SIZE_M"]
        grid = (triton.cdiv(em, cfg["BLOCK_SIZE_M"]) * triton.cdiv(b.shape[1], cfg["BLOCK_SIZE_N"]),)
        self.kernel[grid](
            a, b, None, c, None, None, scale, self.topk_weights, self.sorted_ids, self.expert_ids, self.post_padded, None,
            b.shape[1], b.shape[2], em, m * top_k,
            a.stride(0), a.stride(1), b.stride(0), b.stride(2), b.stride(1), c.stride(1), c.stride(2),
            0, 0, scale.stride(0), 0, scale.stride(1), 0, 0, 0, 0,
            MUL_ROUTED_WEIGHT=mul_routed_weight, top_k=top_k, compute_type=tl.bfloat16,
            use_fp8_w8a8=False, use_int8_w8a8=False, use_int8_w8a16=True, per_channel_quant=False,
            naive_block_assignment=self.sorted_ids is None, HAS_BIAS=False, BLOCK_SIZE_K=block_k, SWAP_AB=False,
            SPLIT_K=1, **cfg)

    def __call__(self):
        m = self.x.shape[0]
        self.gemm(self.x, self.w1, self.s1, self.cache1, False, TOP_K)
        silu_and_mul_kernel[(m * TOP_K, triton.cdiv(FFN, 1024))](self.cache1, self.cache2, FFN, BLOCK=1024)
        # The down GEMM reads cache2 as (m·top-k, ffn) rows, one per (token, k) pair: top_k = 1 there.
        self.gemm(self.cache2, self.w2, self.s2, self.cache3, True, 1)
        torch.sum(self.cache3, dim=1, out=self.out)


class Xoshiro128:
    """runtime/sampling/prng.ts's Xoshiro128 (xoshiro128** seeded through splitmix32), for the same routing."""

    def __init__(self, seed):
        x = seed & 0xFFFFFFFF
        state = []
        for _ in range(4):
            x = (x + 0x9E3779B9) & 0xFFFFFFFF
            z = ((x ^ (x >> 16)) * 0x85EBCA6B) & 0xFFFFFFFF
            z = ((z ^ (z >> 13)) * 0xC2B2AE35) & 0xFFFFFFFF
            state.append(z ^ (z >> 16))
        self.s = state

    @staticmethod
    def rotl(v, k):
        return ((v << k) | (v >> (32 - k))) & 0xFFFFFFFF

    def next_uint32(self):
        s0, s1, s2, s3 = self.s
        result = (self.rotl((s1 * 5) & 0xFFFFFFFF, 7) * 9) & 0xFFFFFFFF
        t = (s1 << 9) & 0xFFFFFFFF
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = self.rotl(s3, 11)
        self.s = [s0, s1, s2, s3]
        return result


def routing_of_op_bench(m):
    """The top-2 expert ids `jamba-runtime bench --ops moe` draws for m tokens (op-bench.ts, benchRouting)."""
    rng, ids = Xoshiro128(3 + m), []
    for _ in range(m):
        first = rng.next_uint32() % EXPERTS
        ids += [first, (first + 1 + rng.next_uint32() % (EXPERTS - 1)) % EXPERTS]
    return ids


def configs(rows_per_expert):
    """48 configs. Few rows per expert (memory-bound): BLOCK_SIZE_M 16/32/64 × N 32-256 × K 64/128 × 3/4 stages,
    4 warps. From 64 rows per expert (compute-bound, as vLLM's tuned tables for large batches): BLOCK_SIZE_M
    64/128 × N 64-256 × K 64/128 × 4/8 warps × 3/4 stages, GROUP_SIZE_M 16."""
    if rows_per_expert < 64:
        for bm, bn, bk, stages in itertools.product((16, 32, 64), (32, 64, 128, 256), (64, 128), (3, 4)):
            yield {"BLOCK_SIZE_M": bm, "BLOCK_SIZE_N": bn, "BLOCK_SIZE_K": bk, "GROUP_SIZE_M": 1, "num_warps": 4, "num_stages": stages}
        return
    for bm, bn, bk, warps, stages in itertools.product((64, 128), (64, 128, 256), (64, 128), (4, 8), (3, 4)):
        yield {"BLOCK_SIZE_M": bm, "BLOCK_SIZE_N": bn, "BLOCK_SIZE_K": bk, "GROUP_SIZE_M": 16, "num_warps": warps, "num_stages": stages}


def timed_ms(op, flush, runs):
    """Median ms of `runs` calls (after one more), each behind a 256 MiB write: the L2 holds none of the op's bytes."""
    times = [event_ms(op, before=lambda: flush.add_(1)) for _ in range(runs + 1)]
    return statistics.median(times[1:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vllm", required=True, help="the unpacked vLLM sdist")
    ap.add_argument("--tokens", default="1,8,64,256,1024,4096")
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--config", help="one config as JSON instead of the sweep (profiling)")
    ap.add_argument("--json")
    args = ap.parse_args()
    kernel = load_vllm_kernel(args.vllm)
    dev = torch.device("cuda")
    print(f"card: {torch.cuda.get_device_name(dev)}; torch {torch.__version__}; triton {triton.__version__}")
    gen = torch.Generator(device=dev).manual_seed(0)
    w1 = torch.randint(-127, 128, (EXPERTS, 2 * FFN, HIDDEN), dtype=torch.int8, device=dev, generator=gen)
    w2 = torch.randint(-127, 128, (EXPERTS, HIDDEN, FFN), dtype=torch.int8, device=dev, generator=gen)
    s1 = torch.rand(EXPERTS, 2 * FFN, device=dev, generator=gen) * 1e-3
    s2 = torch.rand(EXPERTS, HIDDEN, device=dev, generator=gen) * 1e-3
    flush = torch.zeros(64 << 20, dtype=torch.float32, device=dev)
    rows = []
    for m in (int(t) for t in args.tokens.split(",")):
        x = torch.randn(m, HIDDEN, device=dev, dtype=torch.bfloat16, generator=gen)
        topk_ids = torch.tensor(routing_of_op_bench(m), dtype=torch.int32, device=dev).view(m, TOP_K)
        topk_weights = torch.full((m, TOP_K), 0.5, device=dev)
        results = []
        for cfg in [json.loads(args.config)] if args.config else configs(m * TOP_K // EXPERTS):
            op = FusedMoe(kernel, w1, s1, w2, s2, x, topk_ids, topk_weights, cfg)
            try:
                op()
                torch.cuda.synchronize()
            except Exception as err:  # a config the card cannot run (shared memory): not a candidate
                print(f"  {m} tokens {cfg}: {type(err).__name__}")
                continue
            results.append((timed_ms(op, flush, args.runs), cfg))
        results.sort(key=lambda r: r[0])
        best_ms, best_cfg = results[0]
        touched = int(torch.unique(topk_ids).numel())
        weight_bytes = touched * 3 * FFN * HIDDEN
        rows.append({"tokens": m, "ms": best_ms, "config": best_cfg, "experts": touched, "configs_run": len(results)})
        print(f"vLLM fused_moe int8_w8a16 {m:>5} tokens ({touched:>2} experts): best {best_ms * 1000:8.1f} µs "
              f"({weight_bytes / best_ms / 1e9:.2f} TB/s of int8 weights; second {results[min(1, len(results) - 1)][0] * 1000:.1f} µs) "
              f"{best_cfg}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"card": torch.cuda.get_device_name(dev), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
