"""What data parallelism computes and costs: notebook 06's experiments and ``bench ddp``.

Each function of the first part runs in every process of a group started by
:func:`d2l_resnet.launch.spawn` (and alone, in one process, for the reference):

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

The second part is ``python -m d2l_resnet bench ddp``: :func:`bench_ddp` starts
``torchrun`` with 1 and with 2 processes (the same threads in all), each runs
:func:`ddp_worker`, and :class:`DdpBench` puts what rank 0 reports side by side.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from d2l_resnet.checks import check_int, check_positive_int
from d2l_resnet.distributed import world, wrap_ddp

__all__ = [
    "GRADIENT_CASES",
    "DdpBench",
    "allreduce_seconds",
    "batchnorm_statistics",
    "bench_ddp",
    "ddp_worker",
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
            (:func:`d2l_resnet.distributed.sync_batchnorm`), as ``train`` does.
        seed: Seeds the network's initialisation.
    """
    from d2l_resnet.model import init_weights, resnet18

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
        all-reduces: of the sums and of the sums of squares, with the counts), what
        ``SyncBatchNorm`` computes. Alone, both are the whole batch's.
    """
    from d2l_resnet.model import resnet18

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


# -- bench ddp --------------------------------------------------------------------------------

#: The line prefix by which rank 0 of a worker reports its measurements.
REPORT_PREFIX = "d2l-resnet-bench-ddp "


def _bench_net(sync_bn: bool) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The course recipe's network (in DDP with several ranks, BatchNorm synchronized or
    not) and its optimizer."""
    from d2l_resnet.model import init_weights, resnet18, use_matmul_convs
    from d2l_resnet.profiles import get_profile

    recipe = get_profile("course").recipe
    torch.manual_seed(0)
    net: nn.Module = use_matmul_convs(init_weights(resnet18(), recipe.init))
    net.to(memory_format=torch.channels_last)
    if world()[1] > 1:
        net = wrap_ddp(net, torch.device("cpu"), sync_bn=sync_bn)
    optimizer = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                nesterov=recipe.nesterov, weight_decay=recipe.weight_decay,
                                fused=True)
    return net, optimizer


def _bench_steps(sync_bn: bool, sync_grads: bool, loader: Any, warmup: int, steps: int,
                 precision: str) -> float:
    """Seconds per training step (after ``warmup`` steps) of :func:`_bench_net`; without
    ``sync_grads`` inside DDP's ``no_sync`` (the gradients are not all-reduced)."""
    from d2l_resnet.train import train_epoch

    net, optimizer = _bench_net(sync_bn)
    loss, w = nn.CrossEntropyLoss(), world()[1]
    batches = iter(loader)

    def run(k: int) -> None:
        train_epoch(net, islice(batches, k), loss, optimizer, device="cpu",
                    precision=precision, channels_last=True)

    run(warmup)
    if w > 1:
        dist.barrier()
    t0 = time.perf_counter()
    with net.no_sync() if w > 1 and not sync_grads else contextlib.nullcontext():
        run(steps)
    if w > 1:
        dist.barrier()
    return (time.perf_counter() - t0) / steps


def ddp_worker(batch_size: int = 256, steps: int = 10, warmup: int = 2) -> dict[str, Any]:
    """Measure training steps of ResNet-18 (course recipe) in this rank of a run.

    Every rank trains on its share of each batch of ``batch_size`` (all ranks together),
    ``warmup`` steps and then ``steps`` timed ones: as ``train`` does (gradients
    all-reduced, BatchNorm synchronized) and, with several ranks, with BatchNorm per
    rank, and with no communication at all (BatchNorm per rank, DDP's ``no_sync``);
    then it times all-reduces of one gradient's worth of float32 values.

    Returns:
        Seconds per step of each kind, seconds per all-reduce, and the run's shape
        (processes, threads, precision).
    """
    from d2l_resnet.data import InMemoryLoader, load_fashion_mnist_tensors
    from d2l_resnet.devices import resolve_precision
    from d2l_resnet.model import count_parameters, resnet18
    from d2l_resnet.profiles import get_profile

    rank, w = world()
    precision = resolve_precision(get_profile("course").recipe.precision, "cpu")
    images, labels = load_fashion_mnist_tensors(True)
    n = (warmup + steps) * batch_size
    loader = InMemoryLoader(images[:n], labels[:n], batch_size, shuffle=True, augment=True,
                            max_shift=0, rank=rank, world_size=w, drop_last=True)
    kinds = {"step_s": (True, True), "plain_bn_step_s": (False, True),
             "compute_step_s": (False, False)}
    seconds = {key: _bench_steps(sync_bn, sync_grads, loader, warmup, steps, precision.name)
               for key, (sync_bn, sync_grads) in (kinds.items() if w > 1 else
                                                  [("step_s", (True, True))])}
    params = count_parameters(resnet18())
    allreduce = statistics.median(allreduce_seconds(params)) if w > 1 else 0.0
    return {"processes": w, "threads": torch.get_num_threads(), "batch_size": batch_size,
            "steps": steps, **{key: seconds.get(key, seconds["step_s"]) for key in kinds},
            "allreduce_s": allreduce, "params": params, "precision": str(precision)}


@dataclass(frozen=True)
class DdpBench:
    """What ``bench ddp`` measured: the best of its rounds for each side.

    Attributes:
        one: Rank 0's report of the 1-process run (see :func:`ddp_worker`).
        many: Rank 0's report of the run with several processes.
        cpus: The CPUs this process may run on.
    """

    one: dict[str, Any]
    many: dict[str, Any]
    cpus: int

    @property
    def speedup(self) -> float:
        """Examples/s of several processes over one (the same global batch)."""
        return self.one["step_s"] / self.many["step_s"]

    @property
    def allreduce_share(self) -> float:
        """The all-reduce of one step's gradients, timed alone, as a fraction of a step
        of several processes."""
        return self.many["allreduce_s"] / self.many["step_s"]

    @property
    def communication_share(self) -> float:
        """The part of a step of several processes that communication costs: the step
        as ``train`` takes it less the step without any communication, over the step."""
        return 1 - self.many["compute_step_s"] / self.many["step_s"]

    def report(self) -> str:
        """The table; the ratios on the last line."""
        b, p, k = self.one["batch_size"], self.many["params"], self.many["processes"]

        def row(label: str, report: dict[str, Any], key: str) -> str:
            threads = f"{report['processes']} x {report['threads']}"
            return (f"{label:<46}{threads:>8}{b / report[key]:>12,.0f}"
                    f"{1000 * report[key]:>9,.0f}")

        return "\n".join([
            f"ResNet-18 ({p:,} parameters), 28x28, global batch {b} (batch / processes "
            f"each), course recipe, {self.one['precision']}; torch {torch.__version__}, "
            f"{self.cpus} CPUs",
            f"{'':<46}{'threads':>8}{'examples/s':>12}{'ms/step':>9}",
            row("1 process", self.one, "step_s"),
            row(f"{k} processes, as train runs them (DDP, gloo)", self.many, "step_s"),
            row(f"{k} processes, BatchNorm per process", self.many, "plain_bn_step_s"),
            row(f"{k} processes, no communication (no_sync)", self.many, "compute_step_s"),
            f"one all-reduce of {p:,} float32 gradients ({4 * p / 1e6:.0f} MB), timed alone: "
            f"{1000 * self.many['allreduce_s']:,.0f} ms",
            f"{k} processes / 1 process: {self.speedup:.2f}x examples/s; all-reduce "
            f"{100 * self.allreduce_share:.0f}% of a step, all communication "
            f"{100 * self.communication_share:.0f}%",
        ])


def _parse_report(stdout: str) -> dict[str, Any]:
    """The report a worker's rank 0 printed (one line starting with :data:`REPORT_PREFIX`)."""
    for line in stdout.splitlines():
        if line.startswith(REPORT_PREFIX):
            return json.loads(line[len(REPORT_PREFIX):])
    raise RuntimeError(f"the worker printed no report line; its output was:\n{stdout}")


def bench_ddp(batch_size: int = 256, steps: int = 10, nprocs: int = 2, rounds: int = 2, *,
              timeout: float = 300, log: Callable[[str], None] | None = None) -> DdpBench:
    """Run :func:`ddp_worker` under ``torchrun`` with 1 process and with ``nprocs``,
    alternating for ``rounds`` rounds (a busy machine slows both); keep the best of each.

    Raises:
        ValueError: If a count is out of range or ``batch_size`` cannot be shared.
        RuntimeError: If a run fails (its output is in the message).
    """
    from d2l_resnet.launch import run_torchrun

    for name, value in (("batch_size", batch_size), ("steps", steps), ("nprocs", nprocs),
                        ("rounds", rounds)):
        check_positive_int(name, value)
    check_int("nprocs", nprocs, minimum=2)
    if batch_size % nprocs or batch_size // nprocs < 2:
        raise ValueError(f"batch_size must be a multiple of nprocs ({nprocs}) with at least "
                         f"2 examples per process, got {batch_size}")
    say = log or (lambda _line: None)
    best: dict[int, dict[str, Any]] = {}
    for r in range(rounds):
        for k in (1, nprocs):
            result = run_torchrun(["-m", "d2l_resnet", "bench", "ddp", "--worker",
                                   "--batch-size", str(batch_size), "--steps", str(steps)],
                                  k, timeout=timeout)
            if result.returncode != 0:
                raise RuntimeError(f"the {k}-process run failed (exit status "
                                   f"{result.returncode}):\n{result.stderr[-3000:]}")
            report = _parse_report(result.stdout)
            say(f"round {r + 1}, {k} process{'es' * (k > 1)}: "
                f"{batch_size / report['step_s']:,.0f} examples/s")
            if k not in best or report["step_s"] < best[k]["step_s"]:
                best[k] = report
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return DdpBench(one=best[1], many=best[nprocs], cpus=cpus or 1)


def report_line(report: dict[str, Any]) -> str:
    """The line a worker's rank 0 prints for :func:`bench_ddp` to read."""
    return REPORT_PREFIX + json.dumps(report)

