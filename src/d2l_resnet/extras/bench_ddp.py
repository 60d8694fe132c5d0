"""``python -m d2l_resnet bench ddp``: one process against several, where the time goes.

:func:`bench_ddp` starts ``torchrun`` with 1 and with 2 processes (the same threads in
all); each runs :func:`ddp_worker`, which times training steps as ``train`` takes them
(gradients all-reduced, BatchNorm synchronized), with BatchNorm per process, and with no
communication at all, and an all-reduce of the gradients alone; :class:`DdpBench` puts
what rank 0 reports side by side.
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
from d2l_resnet.data import InMemoryLoader, load_fashion_mnist_tensors
from d2l_resnet.devices import resolve_precision
from d2l_resnet.extras.distributed import world, wrap_ddp
from d2l_resnet.extras.launch import run_torchrun
from d2l_resnet.extras.parallel import allreduce_seconds
from d2l_resnet.model import count_parameters, resnet18
from d2l_resnet.profiles import get_profile
from d2l_resnet.train import make_optimizer, prepare_network, train_epoch

__all__ = ["DdpBench", "bench_ddp", "ddp_worker", "report_line"]

#: The line prefix by which rank 0 of a worker reports its measurements.
REPORT_PREFIX = "d2l-resnet-bench-ddp "


def _bench_net(sync_bn: bool) -> tuple[nn.Module, torch.optim.Optimizer, nn.Module]:
    """The course recipe's network (in DDP with several ranks, BatchNorm synchronized or
    not), its optimizer and its loss, made as ``train`` makes them."""
    recipe, cpu = get_profile("course").recipe, torch.device("cpu")
    net = prepare_network(resnet18(), recipe, cpu)
    if world()[1] > 1:
        net = wrap_ddp(net, cpu, sync_bn=sync_bn)
    optimizer, _ = make_optimizer(net, recipe, num_batches=1)    # the rate plays no part
    return net, optimizer, nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)


def _bench_steps(sync_bn: bool, sync_grads: bool, loader: Any, warmup: int, steps: int,
                 precision: str) -> float:
    """Seconds per training step (after ``warmup`` steps) of :func:`_bench_net`; without
    ``sync_grads`` inside DDP's ``no_sync`` (the gradients are not all-reduced)."""
    net, optimizer, loss = _bench_net(sync_bn)
    w = world()[1]
    batches = iter(loader)

    def run(k: int) -> None:
        train_epoch(net, islice(batches, k), loss, optimizer, precision=precision,
                    channels_last=True)

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

