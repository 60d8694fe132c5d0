"""Data parallelism across processes with ``torch.distributed``: the small parts ``train`` needs.

In a single process every function here is a no-op (rank 0 of 1), so the training loop
reads the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

__all__ = ["is_main", "sum_across_ranks", "world"]


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised process group, else ``(0, 1)``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True in the process that prints, plots and writes checkpoints (rank 0)."""
    return world()[0] == 0


def sum_across_ranks(values: Sequence[float], device: torch.device | str = "cpu"
                     ) -> list[float]:
    """Each value summed over all processes (one all-reduce); the values as they are in a
    single process."""
    if world()[1] == 1:
        return [float(v) for v in values]
    if dist.get_backend() == "gloo":
        device = "cpu"     # gloo reduces CPU tensors
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()
