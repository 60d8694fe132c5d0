"""Data parallelism across processes with ``torch.distributed``, launched by ``torchrun``.

``torchrun --standalone --nproc-per-node 2 -m d2l_resnet train`` starts two processes
(ranks) of the same command. Each learns from its environment who it is (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``, set by ``torchrun``);
:func:`process_group` joins them into one process group (``gloo`` on the CPU, ``nccl`` on
CUDA, one GPU per rank), and :func:`d2l_resnet.train.train` wraps the network in
``DistributedDataParallel``, which averages the ranks' gradients after every backward
pass (an *all-reduce*), so that every rank takes the same step.

The module reads in four parts:

- the exchanges: :func:`world`, :func:`is_main`, :func:`sum_across_ranks`,
  :func:`on_main` and :func:`sync_buffers` (no-ops in a single process, rank 0 of 1);
  and :func:`wrap_ddp`, which also puts synchronized BatchNorm in the network
  (:class:`SyncBatchNorm2d` on the CPU), so that the ranks together compute the
  single-process step;
- :func:`train_data_parallel`: :func:`d2l_resnet.train.train` for one rank, the same
  epochs of :func:`~d2l_resnet.train.train_epoch` around a ``DistributedDataParallel``
  network;
- what ``torchrun`` told this process: :func:`launched_by_torchrun`, :class:`Launch`;
- the life of a run: :func:`process_group` (join, with a bounded timeout; leave, also on
  errors) and :meth:`Session.agreement` (every rank checks its set-up, and all stop
  alike, with one message on rank 0, if any rank failed or was started with other
  settings).

Two environment variables tune it: ``D2L_RESNET_DIST_TIMEOUT`` (seconds a rank waits for
the others, default 60) and ``D2L_RESNET_THREADS`` (PyTorch threads per rank; default:
the cores divided among the ranks of the machine).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from d2l_resnet.checkpoint import load_checkpoint, save_checkpoint
from d2l_resnet.devices import get_device, resolve_precision
from d2l_resnet.notebook import progress_bar
from d2l_resnet.profiles import Recipe
from d2l_resnet.train import (
    DivergenceGuard,
    EpochRecorder,
    History,
    checkpoint_state,
    count_correct,
    make_optimizer,
    prepare_network,
    restore_run,
    scoring,
    train_epoch,
)

__all__ = [
    "THREADS_ENV",
    "TIMEOUT_ENV",
    "Launch",
    "Session",
    "SetupError",
    "SyncBatchNorm2d",
    "is_main",
    "launched_by_torchrun",
    "on_main",
    "process_group",
    "sum_across_ranks",
    "sync_batchnorm",
    "sync_buffers",
    "threads_per_process",
    "timeout_seconds",
    "train_data_parallel",
    "world",
    "wrap_ddp",
]

TIMEOUT_ENV = "D2L_RESNET_DIST_TIMEOUT"
THREADS_ENV = "D2L_RESNET_THREADS"
DEFAULT_TIMEOUT = 60.0

T = TypeVar("T")


# -- what the training loop needs ------------------------------------------------------------


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialized process group, else ``(0, 1)``."""
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


def on_main(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` computed on rank 0 and sent to every rank (in a single
    process, just the call).

    For what only rank 0 can see, such as a checkpoint that rank 0 wrote on its own disk.
    An exception raised on rank 0 is raised on every rank. The result travels pickled, so
    return CPU tensors.
    """
    if world()[1] == 1:
        return fn(*args, **kwargs)
    box: list[Any] = [None]
    if is_main():
        try:
            box[0] = (True, fn(*args, **kwargs))
        except Exception as err:  # sent to the other ranks, then raised everywhere
            box[0] = (False, err)
    dist.broadcast_object_list(box, src=0)
    ok, value = box[0]
    if not ok:
        raise value
    return value


def sync_buffers(net: nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm's running statistics).

    In train mode each rank's BatchNorm updates its running statistics from its own
    share of the batch, so after a step they differ between ranks.
    ``DistributedDataParallel`` copies rank 0's before every forward pass; calling this
    before scoring makes every rank score the model that rank 0 saves. No-op in a single
    process.
    """
    if world()[1] == 1:
        return
    module = net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net
    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)


class _AllReduceSum(torch.autograd.Function):
    """The sum of a tensor over all ranks, differentiable: each rank's input influences
    every rank's sum, so its gradient is the sum of all ranks' gradients (another
    all-reduce)."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor) -> torch.Tensor:
        t = t.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return _AllReduceSum.apply(grad)


class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the whole batch of all ranks, for any backend (``gloo`` on the CPU
    too): what ``nn.SyncBatchNorm`` computes, which PyTorch runs on GPUs only.

    In train mode each rank sums its share per channel (values, squares, count), one
    all-reduce adds the sums of all ranks, and every rank normalizes by the mean and
    variance of the whole batch. Autograd differentiates through the all-reduce (its
    backward pass is another all-reduce), so the gradients too are those of the whole
    batch. In eval mode, or in a single process, it is ``nn.BatchNorm2d``; it has the
    same parameters and buffers, so checkpoints load either way.
    """

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if not self.training or world()[1] == 1:
            return super().forward(X)
        x = X.float()                                                # (b, C, H, W)
        c = x.shape[1]
        # The sums in float64: the variance E[x²] - E[x]² loses float32's digits when a
        # channel's mean is large beside its spread (1% of the gradient in the test).
        x64 = x.double()
        count = torch.full((1,), x.numel() // c, dtype=torch.float64, device=x.device)
        sums = _AllReduceSum.apply(torch.cat([x64.sum(dim=(0, 2, 3)),
                                              (x64 * x64).sum(dim=(0, 2, 3)), count]))  # (2C+1,)
        n = sums[-1].detach()
        mean64 = sums[:c] / n                                        # (C,)
        var64 = sums[c:2 * c] / n - mean64 * mean64                  # (C,), biased
        if self.track_running_stats and self.running_mean is not None:
            self._update_running_stats(mean64.detach(), var64.detach(), n)
        mean, var = mean64.float(), var64.float()
        scale = self.weight * torch.rsqrt(var + self.eps)            # (C,)
        Y = (x - mean[:, None, None]) * scale[:, None, None] + self.bias[:, None, None]
        return Y.to(X.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor,
                              n: torch.Tensor) -> None:
        """As ``nn.BatchNorm2d``: exponential averages, the variance unbiased."""
        self.num_batches_tracked += 1
        momentum = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                    else self.momentum)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
        unbiased = var * n / (n - 1).clamp(min=1)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)


def sync_batchnorm(net: nn.Module, device: torch.device) -> nn.Module:
    """``net`` with every ``nn.BatchNorm2d`` synchronized across ranks: PyTorch's
    ``nn.SyncBatchNorm`` on CUDA, :class:`SyncBatchNorm2d` elsewhere (same parameters,
    same buffers, changed in place)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(net)
    for module in list(net.modules()):
        for name, child in module.named_children():
            if type(child) is nn.BatchNorm2d:
                synced = SyncBatchNorm2d(child.num_features, child.eps, child.momentum,
                                         child.affine, child.track_running_stats,
                                         device=child.weight.device)
                synced.load_state_dict(child.state_dict())
                synced.train(child.training)
                setattr(module, name, synced)
    return net


def wrap_ddp(net: nn.Module, device: torch.device, *, sync_bn: bool = True
             ) -> nn.parallel.DistributedDataParallel:
    """``net`` (on ``device``) wrapped in ``DistributedDataParallel``: it copies rank 0's
    parameters and buffers to every rank now, and averages the gradients of all ranks
    during every backward pass (in buckets of about 25 MB, each all-reduced as soon as
    its gradients are ready, while the backward pass goes on).

    With ``sync_bn`` (the default) its BatchNorm layers first become synchronized ones
    (:func:`sync_batchnorm`), so that the ranks together compute what one process
    computes on the whole batch; without, each rank normalizes by its own share.
    """
    # A 1x1 weight in channels-last layout has other strides than its gradient from a
    # matrix-product convolution, in the same memory order (the 1x1 dimensions): DDP
    # warns that copying it "may impair performance", which it does not here.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    if sync_bn:
        net = sync_batchnorm(net, device)
    return nn.parallel.DistributedDataParallel(
        net, device_ids=[device.index] if device.type == "cuda" else None)


# -- training, one rank of many ------------------------------------------------------------


def train_data_parallel(net: nn.Module, train_iter: Any, test_iter: Iterable | None,
                        recipe: Recipe, device: torch.device, *,
                        val_iter: Iterable | None = None, checkpoint: Any = None,
                        resume: bool = False, verbose: bool = True,
                        progress: bool | None = None) -> History:
    """:func:`d2l_resnet.train.train` for one rank of a run that ``torchrun`` started.

    The same epochs of :func:`~d2l_resnet.train.train_epoch`, with these differences: the
    network is wrapped in ``DistributedDataParallel`` (:func:`wrap_ddp`: BatchNorm
    synchronized, the gradients averaged in every backward pass); ``train_iter`` yields
    this rank's share of each batch; the metrics (each step's, for the divergence guard
    and the curves, each epoch's, and the held-out scores) are summed over the ranks, so
    that every rank sees the same and stops alike; only rank 0 prints and writes the
    checkpoint, which rank 0 alone reads back to resume.
    """
    precision = resolve_precision(recipe.precision, device)
    ddp = wrap_ddp(prepare_network(net, recipe, device), device)
    optimizer, scheduler = make_optimizer(ddp, recipe, len(train_iter))
    loss = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    history = History(device=f"{device.type} x {world()[1]} processes", lr=recipe.lr,
                      precision=str(precision))
    if resume:
        history = restore_run(on_main(load_checkpoint, checkpoint), checkpoint, recipe,
                              ddp.module, optimizer, scheduler, train_iter)
    verbose = verbose and is_main()
    if verbose:
        print(f"training on {history.device}, {precision}" + (
            f", resuming after epoch {len(history.epochs)}" if history.epochs else ""))
    guard = DivergenceGuard(recipe.lr)
    score = scoring(recipe, device)
    for epoch in range(len(history.epochs), recipe.num_epochs):
        t0 = time.perf_counter()
        recorder = EpochRecorder(history, guard, epoch, len(train_iter), None)

        def on_batch(step_loss: float, correct: float, size: int,
                     recorder: Any = recorder) -> None:
            loss_sum, correct_sum, n = sum_across_ranks([step_loss * size, correct, size],
                                                        device)
            recorder(loss_sum / n, correct_sum, int(n))

        batches = progress_bar(train_iter, progress if is_main() else False,
                               total=len(train_iter),
                               desc=f"epoch {epoch + 1}/{recipe.num_epochs}", unit="batch")
        mean_loss, mean_acc, n = train_epoch(
            ddp, batches, loss, optimizer, scheduler, precision=precision.name,
            channels_last=recipe.channels_last, on_batch=on_batch)
        train_time = time.perf_counter() - t0
        loss_sum, correct, n = sum_across_ranks([mean_loss * n, mean_acc * n, n], device)
        sync_buffers(ddp)        # every rank scores (and rank 0 saves) rank 0's model
        val_acc = _score(ddp.module, val_iter, score, device) if val_iter else None
        if epoch + 1 == recipe.num_epochs and test_iter is not None:
            history.test_acc = _score(ddp.module, test_iter, score, device)
        history.add_epoch(loss_sum / n, correct / n, val_acc, n / train_time,
                          time.perf_counter() - t0)
        if verbose:
            print(history.epoch_line())
        if checkpoint is not None and is_main():
            save_checkpoint(checkpoint, checkpoint_state(ddp.module, optimizer, scheduler,
                                                         recipe, history, train_iter))
    if verbose:
        print(history.final_lines())
    return history


def _score(net: nn.Module, data_iter: Iterable, score: dict[str, Any],
           device: torch.device) -> float:
    """The accuracy on a held-out set that the ranks share: each scores its share, and the
    counts are summed, so every example is scored exactly once."""
    correct, total = sum_across_ranks(count_correct(net, data_iter, **score), device)
    if total == 0:
        raise ValueError("a held-out set yielded no example; pass a non-empty data set")
    return correct / total


# -- what torchrun told this process ------------------------------------------------------------

_LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun(env: Mapping[str, str] | None = None) -> bool:
    """True if the environment says this process is one rank of a distributed run
    (``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and more)."""
    env = os.environ if env is None else env
    return any(name in env for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK",
                                        "TORCHELASTIC_RUN_ID"))


def _env_int(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    text = env.get(name)
    if text is None and default is not None:
        return default
    try:
        return int(str(text))
    except ValueError:
        raise ValueError(f"the environment variable {name} must be an integer, got {text!r}; "
                         f"start the processes with torchrun, which sets it") from None


@dataclass(frozen=True)
class Launch:
    """Who this process is in a run started by ``torchrun`` (read from the environment).

    Attributes:
        rank: This process's number among all processes, 0 to ``world_size`` - 1.
        world_size: The number of processes, over all machines.
        local_rank: Its number among the processes of this machine (its GPU there).
        local_world_size: The number of processes on this machine.
        master_addr: The address of the machine that hosts the rendezvous (node 0).
        master_port: Its port.
        restart_count: How many times ``torchrun`` has restarted the group
            (``--max-restarts``); 0 on the first start.
    """

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    master_addr: str
    master_port: int
    restart_count: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Launch:
        """Read the variables ``torchrun`` sets.

        Raises:
            ValueError: If one is missing or malformed; the message names it.
        """
        env = os.environ if env is None else env
        missing = [name for name in _LAUNCH_VARS if not env.get(name)]
        if missing:
            present = [name for name in _LAUNCH_VARS if env.get(name)]
            raise ValueError(
                f"this process has {', '.join(present) or 'some'} of the variables of a "
                f"distributed run but not {', '.join(missing)}; start it with torchrun "
                f"(which sets them all), e.g. `torchrun --standalone --nproc-per-node 2 -m "
                f"d2l_resnet train`, or set {', '.join(missing)} yourself (MASTER_ADDR and "
                f"MASTER_PORT: the address and a free port of the machine of rank 0)")
        launch = cls(rank=_env_int(env, "RANK"), world_size=_env_int(env, "WORLD_SIZE"),
                     local_rank=_env_int(env, "LOCAL_RANK"),
                     local_world_size=_env_int(env, "LOCAL_WORLD_SIZE", 1),
                     master_addr=env["MASTER_ADDR"], master_port=_env_int(env, "MASTER_PORT"),
                     restart_count=_env_int(env, "TORCHELASTIC_RESTART_COUNT", 0))
        if not (0 <= launch.rank < launch.world_size
                and 0 <= launch.local_rank < max(launch.local_world_size, 1)):
            raise ValueError(f"RANK={launch.rank}, WORLD_SIZE={launch.world_size}, LOCAL_RANK="
                             f"{launch.local_rank}, LOCAL_WORLD_SIZE={launch.local_world_size}"
                             f" are inconsistent: expected 0 <= RANK < WORLD_SIZE and 0 <= "
                             f"LOCAL_RANK < LOCAL_WORLD_SIZE; start the processes with torchrun")
        return launch


def timeout_seconds(env: Mapping[str, str] | None = None) -> float:
    """How long a rank waits for the others (joining, and in each collective):
    ``$D2L_RESNET_DIST_TIMEOUT`` seconds, default 60.

    Raises:
        ValueError: If the variable is not a positive number.
    """
    env = os.environ if env is None else env
    text = env.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise ValueError(f"{TIMEOUT_ENV} must be a positive number of seconds, got {text!r}")
    return seconds


def threads_per_process(local_world_size: int, env: Mapping[str, str] | None = None) -> int:
    """PyTorch threads for each of ``local_world_size`` processes on this machine:
    ``$D2L_RESNET_THREADS`` if set, else the machine's cores shared out (at least 1),
    so that 2 processes on 2 cores use 1 thread each, as 1 process uses 2."""
    env = os.environ if env is None else env
    text = env.get(THREADS_ENV, "").strip()
    if text:
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"{THREADS_ENV} must be a positive integer, got {text!r}")
        return int(text)
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count() or 1)
    return max(1, cores // max(1, local_world_size))


# -- the life of a run -------------------------------------------------------------------------


class SetupError(ValueError):
    """Every rank stops alike: a rank's set-up failed, or the ranks were started with
    different settings. Rank 0 says why (``report`` is True there only); the others
    exit quietly, so the message appears once."""

    def __init__(self, message: str, *, report: bool = True) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class Session:
    """This process's place in a run: rank 0 of 1 in a single process.

    Attributes:
        device: Where this rank trains (``cuda:LOCAL_RANK`` on GPUs).
        launch: What ``torchrun`` told this process, or None in a single process.
        backend: ``"gloo"`` or ``"nccl"``, or None in a single process.
        threads: PyTorch threads of this process.
    """

    device: torch.device
    launch: Launch | None = None
    backend: str | None = None
    threads: int = field(default_factory=torch.get_num_threads)

    @property
    def rank(self) -> int:
        """This process's rank (0 in a single process)."""
        return self.launch.rank if self.launch else 0

    @property
    def world_size(self) -> int:
        """The number of processes (1 in a single process)."""
        return self.launch.world_size if self.launch else 1

    @property
    def restart_count(self) -> int:
        """How many times ``torchrun`` has restarted the group (0: the first start)."""
        return self.launch.restart_count if self.launch else 0

    def describe(self) -> str:
        """One line for the run's header: processes, machines, backend, threads."""
        if self.launch is None:
            return f"1 process, {self.threads} PyTorch thread{'s' * (self.threads > 1)}"
        machines = max(1, self.world_size // max(1, self.launch.local_world_size))
        return (f"torchrun: {self.world_size} process{'es' * (self.world_size > 1)} on "
                f"{machines} machine{'s' * (machines > 1)}, {self.backend}, {self.threads} "
                f"PyTorch thread{'s' * (self.threads > 1)} per process")

    def check_batch(self, batch_size: int) -> None:
        """Raise ``ValueError`` unless the ranks can share ``batch_size`` equally."""
        w = self.world_size
        if batch_size % w:
            raise ValueError(
                f"a batch of {batch_size} examples cannot be shared equally by {w} "
                f"processes (each takes batch size / processes); use a --batch-size "
                f"divisible by {w}, e.g. {batch_size - batch_size % w or w} or "
                f"{batch_size + w - batch_size % w}")

    @contextlib.contextmanager
    def agreement(self) -> Iterator[dict[str, Any]]:
        """Run a set-up on every rank; then all ranks go on, or all stop alike.

        Yields a dict for the settings every rank must share (profile, recipe, data). On
        leaving, the ranks exchange (one ``all_gather_object``) their errors and settings:
        if any rank failed, or any setting differs, every rank raises
        :class:`SetupError`, whose message names the failure or the setting; rank 0
        reports it and the others wait for rank 0 to leave. In a single process the body
        runs as it is.
        """
        settings: dict[str, Any] = {}
        if self.world_size == 1:
            yield settings
            return
        error: Exception | None = None
        try:
            yield settings
        except Exception as err:  # exchanged with the other ranks below
            error = err
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, (None if error is None else str(error), settings))
        message = _disagreement(gathered)
        if message is None:
            return
        if error is not None and not isinstance(error, (ValueError, OSError, RuntimeError)):
            raise error           # a defect, not a setting: keep its traceback
        if self.rank != 0:
            with contextlib.suppress(Exception):
                dist.barrier()    # returns with an error when rank 0 leaves
        raise SetupError(message, report=self.rank == 0) from error


def _ranks(ranks: Sequence[int]) -> str:
    return f"rank{'s' * (len(ranks) > 1)} {', '.join(map(str, ranks))}"


def _disagreement(gathered: Sequence[tuple[str | None, dict[str, Any]]]) -> str | None:
    """The message for what the ranks reported (errors, settings), or None if all is well."""
    failures: dict[str, list[int]] = {}
    for rank, (error, _) in enumerate(gathered):
        if error is not None:
            failures.setdefault(error, []).append(rank)
    if len(failures) == 1 and len(next(iter(failures.values()))) == len(gathered):
        return next(iter(failures))          # every rank failed alike: the message once
    if failures:
        return "; ".join(f"{_ranks(ranks)}: {error}" for error, ranks in failures.items())
    names = list(dict.fromkeys(name for _, settings in gathered for name in settings))
    differences = []
    for name in names:
        by_value: dict[str, list[int]] = {}
        for rank, (_, settings) in enumerate(gathered):
            by_value.setdefault(repr(settings.get(name, "(not set)")), []).append(rank)
        if len(by_value) > 1:
            differences.append(f"{name} is " + ", ".join(
                f"{value} on {_ranks(ranks)}" for value, ranks in by_value.items()))
    if not differences:
        return None
    return (f"the processes were started with different settings: {'; '.join(differences)}"
            f". Start every machine's torchrun with the same command after its own "
            f"options (the same -m d2l_resnet train options and D2L_RESNET_PROFILE)")


def _rank_device(name: str | torch.device | None, launch: Launch) -> torch.device:
    """This rank's device: ``cuda:LOCAL_RANK`` on GPUs, else the CPU."""
    auto = name is None or (isinstance(name, str) and name.strip().lower() == "auto")
    device = get_device(name)
    if device.type == "mps":
        if auto:
            return torch.device("cpu")
        raise ValueError("torch.distributed has no backend for mps: train data-parallel on "
                         "the CPU (--device cpu) or on CUDA GPUs")
    if device.type != "cuda":
        return device
    count = torch.cuda.device_count()
    if launch.local_rank >= count:
        raise ValueError(f"this machine has {count} GPU(s) but torchrun started "
                         f"{launch.local_world_size} processes on it: use --nproc-per-node "
                         f"{count} at most (one process per GPU), or --device cpu")
    if device.index is not None and device.index != launch.local_rank:
        raise ValueError(f"--device {name} would put several processes on one GPU; under "
                         f"torchrun each process uses the GPU of its LOCAL_RANK: pass "
                         f"--device cuda (or auto)")
    torch.cuda.set_device(launch.local_rank)
    return torch.device("cuda", launch.local_rank)


def _join(launch: Launch, backend: str, timeout: float) -> None:
    """``init_process_group`` with a bounded wait, and a message that says what to check.

    The processes meet through the key-value store that torchrun hosts (at MASTER_ADDR:
    MASTER_PORT), under keys of their own start: torchrun keeps its store when it
    restarts the processes, and the new ones must not read the addresses of the old.
    """
    wait = datetime.timedelta(seconds=timeout)
    try:
        store, rank, world_size = next(dist.rendezvous("env://", timeout=wait))
        store = dist.PrefixStore(f"d2l_resnet/start-{launch.restart_count}", store)
        dist.init_process_group(backend, store=store, rank=rank, world_size=world_size,
                                timeout=wait)
    except Exception as err:  # torch raises several kinds for a rank that cannot connect
        first = (str(err).strip().splitlines() or [""])[0]
        raise RuntimeError(
            f"rank {launch.rank} of {launch.world_size} could not join the others through "
            f"{launch.master_addr}:{launch.master_port} within {timeout:g} s "
            f"({type(err).__name__}: {first}). Check that every machine runs the same "
            f"torchrun command with its own --node-rank, that --master-addr is an address "
            f"of machine 0 that the others can reach, and that --master-port is open in "
            f"its firewall; {TIMEOUT_ENV} sets how long to wait") from err


def _lost_contact(err: BaseException) -> bool:
    """Whether ``err`` is the backend's: a rank died or could not be reached."""
    text = str(err)
    return (isinstance(err, getattr(dist, "DistError", ())) or "gloo" in text.lower()
            or "NCCL" in text)


@contextlib.contextmanager
def process_group(device: str | torch.device | None = None) -> Iterator[Session]:
    """The run's :class:`Session`: under ``torchrun``, joined to the others; else alone.

    Under ``torchrun`` it reads :class:`Launch` from the environment, picks this rank's
    device (``cuda:LOCAL_RANK`` with GPUs, else the CPU), sets the PyTorch threads
    (:func:`threads_per_process`), and joins the process group (``nccl`` on CUDA,
    ``gloo`` on the CPU), waiting at most :func:`timeout_seconds`; it leaves the group
    at the end, also after an error. In a single process it only resolves ``device``.

    Args:
        device: ``"auto"`` or None, ``"cpu"``, ``"cuda"``, ...
            (see :func:`d2l_resnet.devices.get_device`).

    Raises:
        ValueError: If the environment or the device does not fit a distributed run.
        RuntimeError: If this rank cannot reach the others in time, or loses them later.
    """
    if not launched_by_torchrun():
        yield Session(get_device(device))
        return
    launch = Launch.from_env()
    rank_device = _rank_device(device, launch)
    threads = threads_per_process(launch.local_world_size)
    timeout = timeout_seconds()
    backend = "nccl" if rank_device.type == "cuda" else "gloo"
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _join(launch, backend, timeout)
        try:
            yield Session(rank_device, launch, backend, threads)
            # Every rank done with its exchanges before any tears down its connections:
            # a rank that leaves while another still talks to it can abort the other.
            dist.barrier()
        except RuntimeError as err:
            if not _lost_contact(err):
                raise
            raise RuntimeError(
                f"rank {launch.rank} lost contact with the other processes ({err}). With "
                f"torchrun --max-restarts N and --checkpoint PATH, torchrun restarts the "
                f"group and training resumes from the last checkpoint") from err
        finally:
            dist.destroy_process_group()
    finally:
        torch.set_num_threads(threads_before)
