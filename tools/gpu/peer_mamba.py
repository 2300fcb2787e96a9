#!/usr/bin/env python3
"""The Mamba-1 decode baseline on the card at hand: mamba-ssm's Triton `selective_state_update`.

Issue 10 quotes this kernel's H200 figures. This runs it on whatever card is lent, measured as
`tools/gpu/mamba_decode_microbench.cu` measures ours (`Timer::graph_cold_us`): 20 calls captured in a CUDA
graph, each after a 256 MiB read that evicts the L2, less the same graph of reads alone, per call.

mamba-ssm is not a dependency of the project: pass the directory of its unpacked sdist (PyPI
`mamba-ssm`, whose package __init__ needs the compiled extension, so only its Triton ops are imported).

    python3 tools/gpu/peer_mamba.py --mamba-ssm DIR [--batches 1,8,64,256]
"""
import argparse
import importlib
import os
import statistics
import sys
import types

import torch

from peer_timing import event_ms

D_INNER, D_STATE = 8192, 16


def import_triton_ops(root):
    """mamba_ssm.ops.triton.* without mamba_ssm/__init__.py (which imports the CUDA extension)."""
    for name in ("mamba_ssm", "mamba_ssm.ops", "mamba_ssm.ops.triton"):
        pkg = types.ModuleType(name)
        pkg.__path__ = [os.path.join(root, *name.split("."))]
        sys.modules[name] = pkg
    return importlib.import_module("mamba_ssm.ops.triton.selective_state_update")


def graph_replay_us(record, replays=13, warmups=3):
    """Median µs of one replay of the graph that `record` captures."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        record()
    times = [event_ms(graph.replay) * 1000 for _ in range(replays)]
    return statistics.median(times[warmups:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mamba-ssm", required=True, help="the unpacked mamba-ssm sdist")
    ap.add_argument("--batches", default="1,8,64,256")
    ap.add_argument("--calls", type=int, default=20)
    args = ap.parse_args()
    ssu = import_triton_ops(args.mamba_ssm)
    dev = torch.device("cuda")
    print(f"card: {torch.cuda.get_device_name(dev)}; torch {torch.__version__}")
    flush = torch.empty(256 << 20, dtype=torch.uint8, device=dev)
    flush_sink = torch.empty((), dtype=torch.int64, device=dev)

    def read_flush():
        torch.sum(flush.view(torch.int64), dim=0, out=flush_sink)

    gen = torch.Generator(device=dev).manual_seed(0)
    A = -torch.rand(D_INNER, D_STATE, device=dev, generator=gen) - 0.5
    D = torch.rand(D_INNER, device=dev, generator=gen)
    dt_bias = torch.rand(D_INNER, device=dev, generator=gen) - 4.0
    for batch in (int(b) for b in args.batches.split(",")):
        bf16 = dict(device=dev, dtype=torch.bfloat16, generator=gen)
        state = torch.randn(batch, D_INNER, D_STATE, device=dev, generator=gen)
        x, dt, z = (torch.randn(batch, D_INNER, **bf16) for _ in range(3))
        B, C = (torch.randn(batch, D_STATE, **bf16) for _ in range(2))

        # Direct (state row i for sequence i), and through state_batch_indices as vLLM's mixer calls it,
        # scattered as the microbenchmark scatters ours (sequence i in slot (7i + 3) mod batch).
        slots = ((torch.arange(batch, device=dev) * 7 + 3) % batch).to(torch.int32)
        for label, indices in (("direct", None), ("slots", slots)):
            def update():
                ssu.selective_state_update(state, x, dt, A, B, C, D=D, z=z, dt_bias=dt_bias, dt_softplus=True,
                                           state_batch_indices=indices)

            update()  # compiles the Triton kernel outside the capture
            torch.cuda.synchronize()

            def both():
                for _ in range(args.calls):
                    read_flush()
                    update()

            def reads():
                for _ in range(args.calls):
                    read_flush()

            cold = (graph_replay_us(both) - graph_replay_us(reads)) / args.calls
            warm = graph_replay_us(lambda: [update() for _ in range(args.calls)]) / args.calls
            state_bytes = 2 * batch * D_INNER * D_STATE * 4
            print(f"selective_state_update batch {batch:>3} {label:<6}: graph cold L2 {cold:7.1f} µs  "
                  f"(warm L2 {warm:6.1f} µs; state read + write {state_bytes / cold / 1e3:.0f} GB/s cold)", flush=True)


if __name__ == "__main__":
    main()
