"""What data parallelism computes and costs: notebook 06's experiments.

Each function runs in every process of a group started by
:func:`d2l_resnet.extras.launch.spawn` (and alone, in one process, for the reference):

- :func:`shard_gradient`: ResNet-18's gradient as ``DistributedDataParallel`` leaves it
  on each rank (the average of the ranks' gradients on their shares of one batch), or,
  alone, the gradient of the whole batch; :func:`shard_gradients` with BatchNorm in
  eval mode, in train mode, and in train mode synchronized across the ranks;
- :func:`batchnorm_statistics`: the per-channel mean and variance BatchNorm computes
  from a rank's share, and those of the whole batch, reduced across ranks as
  ``SyncBatchNorm`` does;
- :func:`try_sync_batchnorm`: what ``SyncBatchNorm`` does with CPU tensors (alone and in
  ``DistributedDataParallel``);
- :func:`allreduce_seconds`: how long one all-reduce of n float32 values takes.
"""

from __future__ import annotations

import time

import torch
import torch.distributed as dist
from torch import nn

from d2l_resnet.checks import check_positive_int
from d2l_resnet.extras.distributed import world, wrap_ddp
from d2l_resnet.model import init_weights, resnet18

__all__ = [
    "GRADIENT_CASES",
    "allreduce_seconds",
    "batchnorm_statistics",
    "shard_gradient",
    "shard_gradients",
    "try_sync_batchnorm",
]


def _share(X: torch.Tensor, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """This rank's rows of a batch: ``[r*B//W, (r+1)*B//W)``, as the loader gives them."""
    rank, w = world()
    b = len(X)
    rows = slice(rank * b // w, (rank + 1) * b // w)
    return (X[rows], *(t[rows] for t in tensors))


def shard_gradient(X: torch.Tensor, y: torch.Tensor, *, train_mode: bool,
                   sync_bn: bool = False, seed: int = 0) -> torch.Tensor:
    """ResNet-18's gradient of the mean cross-entropy loss, flattened (P,).

    The network is made from ``seed`` (Xavier init, as the source), so every process
    holds the same one. In a process group each rank computes the loss on its share of
    the batch ``(X, y)`` and ``DistributedDataParallel`` averages the gradients of all
    ranks during the backward pass; the result, the same on every rank, is returned.
    Alone, it is the gradient of the whole batch.

    Args:
        X: Images (B, 1, H, W).
        y: Labels (B,).
        train_mode: BatchNorm in train mode (statistics of the batch each process sees)
            or in eval mode (its running statistics: the network is then the same
            function of each example wherever the example is).
        sync_bn: In a process group, synchronize BatchNorm across the ranks
            (:func:`d2l_resnet.extras.distributed.sync_batchnorm`), as ``train`` does.
        seed: Seeds the network's initialization.
    """
    torch.manual_seed(seed)
    net: nn.Module = init_weights(resnet18(), "xavier")
    net.train(train_mode)
    if world()[1] > 1:
        net = wrap_ddp(net, torch.device("cpu"), sync_bn=sync_bn)
    X_share, y_share = _share(X, y)
    nn.functional.cross_entropy(net(X_share), y_share).backward()
    return torch.cat([p.grad.flatten() for p in net.parameters()])


#: The three ways :func:`shard_gradients` runs BatchNorm: (train_mode, sync_bn).
GRADIENT_CASES = {"eval mode": (False, False), "train mode": (True, False),
                  "train mode, synchronized": (True, True)}


def shard_gradients(X: torch.Tensor, y: torch.Tensor, seed: int = 0
                    ) -> dict[str, torch.Tensor]:
    """:func:`shard_gradient` for each of :data:`GRADIENT_CASES` (one process start for
    all three): BatchNorm in eval mode, in train mode on each rank's share, and in train
    mode synchronized across the ranks."""
    return {case: shard_gradient(X, y, train_mode=train_mode, sync_bn=sync_bn, seed=seed)
            for case, (train_mode, sync_bn) in GRADIENT_CASES.items()}


def batchnorm_statistics(X: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """What the first BatchNorm of ResNet-18 (after b1's 7x7 convolution) normalizes
    with in train mode: per-channel means and variances (64,).

    Returns:
        ``"own_mean"``, ``"own_var"``: from this rank's share of ``X`` only, what
        ``nn.BatchNorm2d`` uses in each process of a data-parallel run;
        ``"synced_mean"``, ``"synced_var"``: from the sums over all ranks' shares (two
        all-reduces: one of the sums and sums of squares, one of the counts), what
        ``SyncBatchNorm`` computes. Alone, both are the whole batch's.
    """
    torch.manual_seed(seed)
    conv = resnet18()[0][0]
    with torch.no_grad():
        Z = conv(_share(X)[0]).double()                          # (b, 64, h, w)
        count = torch.tensor([float(Z.numel() // Z.shape[1])], dtype=torch.float64)
        sums = torch.stack([Z.sum(dim=(0, 2, 3)), (Z * Z).sum(dim=(0, 2, 3))])   # (2, 64)
        own_mean = sums[0] / count
        own_var = sums[1] / count - own_mean**2
        if world()[1] > 1:
            dist.all_reduce(sums)
            dist.all_reduce(count)
        mean = sums[0] / count
    return {"own_mean": own_mean, "own_var": own_var, "synced_mean": mean,
            "synced_var": sums[1] / count - mean**2}


def try_sync_batchnorm() -> dict[str, str]:
    """Try ``SyncBatchNorm`` on CPU tensors in this process group, in train mode: the layer
    alone, and inside ``DistributedDataParallel``.

    Returns:
        ``{"layer": ..., "ddp": ...}``, each ``"ran"`` or the error raised, as
        ``"TypeName: message"``.
    """
    outcomes = {}
    for where in ("layer", "ddp"):
        layer: nn.Module = nn.SyncBatchNorm(4).train()
        try:
            if where == "ddp":
                layer = nn.parallel.DistributedDataParallel(layer)
            layer(torch.randn(4, 4, 2, 2))
            outcomes[where] = "ran"
        except (ValueError, RuntimeError) as err:
            outcomes[where] = f"{type(err).__name__}: {err}"
    return outcomes


def allreduce_seconds(numel: int, repeats: int = 5) -> list[float]:
    """Seconds of each of ``repeats`` all-reduces (sums) of ``numel`` float32 values on
    this rank, after one to warm up; the ranks start each one together (a barrier)."""
    check_positive_int("numel", numel)
    check_positive_int("repeats", repeats)
    if world()[1] == 1:
        return [0.0] * repeats
    t = torch.ones(numel)
    dist.all_reduce(t)
    seconds = []
    for _ in range(repeats):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(t)
        seconds.append(time.perf_counter() - t0)
    return seconds
