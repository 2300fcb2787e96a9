"""CUDA-event timing shared by the peer baselines (tools/gpu/peer_*.py)."""
import torch


def event_ms(fn, before=None):
    """One call of `fn` timed with CUDA events, in ms; `before` runs first, outside the timed span."""
    if before is not None:
        before()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)
