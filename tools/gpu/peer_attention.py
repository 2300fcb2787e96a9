#!/usr/bin/env python3
"""The attention baseline on the card at hand: PyTorch SDPA's cuDNN backend at issue 10's shapes.

The issue's cuDNN figures were taken on an H200. Run on whatever card is lent, in the same call as
`jamba-runtime bench --ops attention`, this gives the ratio on one card (docs/benchmarks/cuda.md).
Shapes: 32 query / 8 KV heads, head_dim 128, bf16; causal prefill of one sequence; decode of one query
token per sequence over an unpaged cache (the peers' layout; ours reads a paged one).

    python3 tools/gpu/peer_attention.py [--prefills 4096,32768,131072,262144] [--json out.json]
"""
import argparse
import json
import statistics

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from peer_timing import event_ms

Q_HEADS, KV_HEADS, HEAD_DIM = 32, 8, 128


def time_ms(fn, iters, warmup=3):
    """Median of per-call CUDA-event times (ms) after a warm-up."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = [event_ms(fn) for _ in range(iters)]
    return statistics.median(times), min(times), max(times)


def attention(backend, q, k, v, causal):
    """SDPA on one backend; GQA natively where the backend takes it, else with K/V repeated (said in the row)."""
    with sdpa_kernel([backend]):
        try:
            F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
            return (lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)), "native GQA"
        except RuntimeError:
            groups = q.shape[1] // k.shape[1]
            k2, v2 = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
            F.scaled_dot_product_attention(q, k2, v2, is_causal=causal)
            return (lambda: F.scaled_dot_product_attention(q, k2, v2, is_causal=causal)), "K/V repeated to 32 heads"


def measure(label, backend, q, k, v, causal, iters, flops, bytes_read):
    try:
        fn, gqa = attention(backend, q, k, v, causal)
    except RuntimeError as err:
        return {"case": label, "backend": backend.name, "error": str(err).splitlines()[0]}
    med, lo, hi = time_ms(fn, iters)
    row = {"case": label, "backend": backend.name, "gqa": gqa, "ms": med, "min_ms": lo, "max_ms": hi}
    if flops:
        row["tflops"] = flops / med / 1e9
    if bytes_read:
        row["gb_s"] = bytes_read / med / 1e6
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefills", default="4096,32768,131072,262144")
    ap.add_argument("--backends", default="CUDNN_ATTENTION,FLASH_ATTENTION")
    ap.add_argument("--json")
    args = ap.parse_args()
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    print(f"card: {props.name}; torch {torch.__version__}; cuDNN {torch.backends.cudnn.version()}")
    backends = [getattr(SDPBackend, name) for name in args.backends.split(",")]
    rows = []
    gen = torch.Generator(device=dev).manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, device=dev, dtype=torch.bfloat16, generator=gen)

    for n in (int(x) for x in args.prefills.split(",")):
        q, k, v = randn(1, Q_HEADS, n, HEAD_DIM), randn(1, KV_HEADS, n, HEAD_DIM), randn(1, KV_HEADS, n, HEAD_DIM)
        flops = 4 * Q_HEADS * HEAD_DIM * n * n / 2  # causal: half the score matrix, QK^T and PV
        iters = 20 if n <= 32768 else 5
        for b in backends:
            rows.append(measure(f"prefill {n}", b, q, k, v, True, iters, flops, 0))
        del q, k, v
        torch.cuda.empty_cache()
    for batch, ctx in ((1, 262144), (64, 4096)):
        q = randn(batch, Q_HEADS, 1, HEAD_DIM)
        k, v = randn(batch, KV_HEADS, ctx, HEAD_DIM), randn(batch, KV_HEADS, ctx, HEAD_DIM)
        kv_bytes = 2 * batch * KV_HEADS * ctx * HEAD_DIM * 2
        for b in backends:
            rows.append(measure(f"decode batch {batch} over {ctx}", b, q, k, v, False, 50, 0, kv_bytes))
        del q, k, v
        torch.cuda.empty_cache()
    for row in rows:
        if "error" in row:
            print(f"{row['case']:>26}  {row['backend']:<16} error: {row['error']}")
            continue
        extra = f"{row['tflops']:.0f} TFLOP/s" if "tflops" in row else f"{row['gb_s']:.0f} GB/s"
        print(f"{row['case']:>26}  {row['backend']:<16} {row['ms'] * 1000:10.1f} µs  "
              f"(min {row['min_ms'] * 1000:.1f}, max {row['max_ms'] * 1000:.1f})  {extra}  [{row['gqa']}]")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"card": props.name, "torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
