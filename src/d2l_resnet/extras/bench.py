"""Benchmarks behind ``python -m d2l_resnet bench``: measured, not asserted.

``bench data`` times the source notebook's DataLoader pipeline and the in-memory loader
side by side, in one run on one machine, over the same training set and batch size.

``bench train`` measures, side by side in one process, alternating so that a busy machine
slows both:

(a) the source notebook's training pipeline: its DataLoader (PIL images through
    ``ToTensor``, 4 worker processes), its ResNet-18 in fp32 and its loop (plain SGD,
    ``Accumulator``);
(b) the project's training step: :func:`d2l_resnet.train.train` with the ``course``
    recipe (in-memory loader, channels-last, matrix-product convolutions for the tiny
    maps of b4 and b5, and the precision ``"auto"`` picks: bfloat16 where the CPU
    computes it natively, else fp32), same model, same batch size;
(c) the machine's matrix-multiplication peak in the precision of (b).

Its last line gives the ratio (b) / (a). ``--isa avx2`` runs it again in a process whose
CPU kernels are capped at AVX2, as on most laptops.
"""

from __future__ import annotations

import os
import statistics
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from d2l_resnet.checks import check_int, check_positive_int
from d2l_resnet.data import (
    InMemoryLoader,
    load_data_fashion_mnist,
    load_data_for_profile,
    load_fashion_mnist_tensors,
)
from d2l_resnet.devices import AVX2_CAPS, resolve_precision
from d2l_resnet.model import init_weights, resnet18, summarize
from d2l_resnet.profiles import get_profile
from d2l_resnet.train import accuracy, train

__all__ = [
    "DataBenchRow",
    "TrainBench",
    "bench_data",
    "bench_train",
    "examples_per_second",
    "format_bench_data",
    "matmul_gflops",
    "source_pipeline",
    "train_flops_per_example",
]


def examples_per_second(loader: Iterable, repeats: int = 3, *,
                        min_seconds: float = 0.0) -> list[float]:
    """Examples per second of full passes over ``loader``: ``repeats`` passes, more while
    they have taken less than ``min_seconds`` in all.

    A pass runs from ``iter(loader)`` to its last batch and touches nothing but the
    batch sizes, so it measures what feeding a training loop costs per epoch, worker
    start-up included for a DataLoader. Short passes are repeated more (``min_seconds``)
    so that a median of them is not at the mercy of one busy moment of the machine.

    Raises:
        ValueError: If ``repeats`` is not a positive integer or the loader is empty.
    """
    check_positive_int("repeats", repeats)
    rates: list[float] = []
    begin = time.perf_counter()
    while len(rates) < repeats or time.perf_counter() - begin < min_seconds:
        start, n = time.perf_counter(), 0
        for _, y in loader:
            n += len(y)
        elapsed = time.perf_counter() - start
        if n == 0:
            raise ValueError("the loader yielded no examples, so there is nothing to time")
        rates.append(n / elapsed)
    return rates


def source_pipeline(batch_size: int = 256, resize: int | None = None, *,
                    num_workers: int = 4, root: str | os.PathLike[str] | None = None,
                    ) -> torch.utils.data.DataLoader:
    """The source notebook's training DataLoader exactly: ``Resize``, ``ToTensor``,
    shuffled, ``num_workers`` worker processes (the source always used 4, which
    :func:`d2l_resnet.data.load_data_fashion_mnist` lowers on small machines).
    """
    with warnings.catch_warnings():
        # PyTorch warns when 4 workers exceed the cores; 4 is the source's choice.
        warnings.filterwarnings("ignore", message="This DataLoader will create")
        return load_data_fashion_mnist(batch_size, resize, root, num_workers=num_workers)[0]


@dataclass(frozen=True)
class DataBenchRow:
    """One image size of ``bench data``: examples per second of each pass.

    Attributes:
        size: Side length of the images the loaders yield.
        source: Examples per second of the source pipeline, one per pass.
        fast: Examples per second of the in-memory loader, one per pass.
    """

    size: int
    source: list[float]
    fast: list[float]

    @property
    def ratio(self) -> float:
        """How many times faster the in-memory loader is (ratio of the medians)."""
        return statistics.median(self.fast) / statistics.median(self.source)


def bench_data(sizes: Sequence[int] = (28, 96), *, batch_size: int = 256,
               source_repeats: int = 3, fast_repeats: int = 5, num_workers: int = 4,
               device: torch.device | str | None = None,
               root: str | os.PathLike[str] | None = None) -> list[DataBenchRow]:
    """Time the source pipeline and the in-memory loader on the training set.

    For each size, both loaders make full shuffled passes over the 60,000 training
    images with the same batch size: the source pipeline (PIL ``Resize`` when the size
    is not 28, ``ToTensor``, ``num_workers`` processes) and
    :class:`~d2l_resnet.data.InMemoryLoader` (normalized, resized in whole batches).

    Args:
        sizes: Image side lengths; 28 means no resize.
        batch_size: Examples per batch, for both.
        source_repeats: Passes of the source pipeline per size (each takes seconds).
        fast_repeats: Passes of the in-memory loader per size, at least (its short
            passes are repeated for 2 seconds in all, interleaved with the source's).
        num_workers: Worker processes of the source pipeline.
        device: Where the in-memory loader works (default: the CPU).
        root: A folder holding the data (see :func:`d2l_resnet.data.prepare_fashion_mnist`).
    """
    if not sizes:
        raise ValueError("sizes must name at least one image size, e.g. (28, 96)")
    for size in sizes:
        check_positive_int("each of sizes", size)
    images, labels = load_fashion_mnist_tensors(True, root)
    rows = []
    for size in sizes:
        resize = None if size == images.shape[-1] else size
        source = source_pipeline(batch_size, resize, num_workers=num_workers, root=root)
        fast = InMemoryLoader(images, labels, batch_size, shuffle=True, resize=resize,
                              device=device)
        next(iter(fast))   # warm-up: the first call of a kernel pays for its set-up
        # Interleaved, so that both meet the same moments of a shared machine.
        source_rates: list[float] = []
        fast_rates: list[float] = []
        for i in range(source_repeats):
            with warnings.catch_warnings():
                # PyTorch warns when 4 workers exceed the cores; 4 is the source's choice.
                warnings.filterwarnings("ignore", message="This DataLoader will create")
                source_rates += examples_per_second(source, 1)
            share = -(-fast_repeats // source_repeats) if i < fast_repeats else 1
            fast_rates += examples_per_second(fast, share, min_seconds=2.0 / source_repeats)
        rows.append(DataBenchRow(size, source_rates, fast_rates))
    return rows


def format_bench_data(rows: Sequence[DataBenchRow], *, batch_size: int = 256,
                      num_workers: int = 4) -> str:
    """The table ``bench data`` prints; the ratios of the medians on the last line."""
    def fmt(rates: list[float]) -> str:
        return f"{statistics.median(rates):>12,.0f}  ({min(rates):,.0f}-{max(rates):,.0f})"

    lines = [
        f"Fashion-MNIST training set (60,000 images), batch {batch_size}, one pass = one "
        f"shuffled epoch from iter() to the last batch; examples/s, median (range)",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs",
        f"{'size':>7}  {f'source DataLoader ({num_workers} workers)':>34}  "
        f"{'in-memory loader':>34}  {'ratio':>7}",
    ]
    for row in rows:
        lines.append(f"{row.size:>3}x{row.size:<3}  {fmt(row.source):>34}  "
                     f"{fmt(row.fast):>34}  {row.ratio:>6.1f}x")
    lines.append("ratio in-memory / source: " + ", ".join(
        f"{row.ratio:.1f}x at {row.size}x{row.size}" for row in rows))
    return "\n".join(lines)


# -- bench train ------------------------------------------------------------------------------

#: The project's goal on a 2-core CPU: the speed-up of the training step over the source's.
SPEEDUP_GOAL = 2.5


def train_flops_per_example(size: int = 28) -> float:
    """FLOPs of one training example of ResNet-18: 3x the forward pass (forward, and the
    backward's two products per layer), convolutions and the linear layer counted."""
    rows = summarize(resnet18(), (1, 1, size, size))
    return 3.0 * sum(r.flops for r in rows)


def matmul_gflops(dtype: torch.dtype = torch.bfloat16, sizes: tuple[int, ...] = (1024, 2048,
                  4096), seconds: float = 0.5) -> tuple[float, int]:
    """The best GFLOP/s of square matrix products over ``sizes``; returns (GFLOP/s, size)."""
    best, best_n = 0.0, sizes[0]
    for n in sizes:
        a = torch.randn(n, n).to(dtype)
        b = torch.randn(n, n).to(dtype)
        a @ b                                                    # warm up
        reps, t0 = 0, time.perf_counter()
        while True:
            a @ b
            reps += 1
            dt = time.perf_counter() - t0
            if dt >= seconds:
                break
        rate = 2 * n**3 * reps / dt / 1e9
        if rate > best:
            best, best_n = rate, n
    return best, best_n


def source_examples_per_sec(train_iter: Iterable, steps: int, warmup: int) -> float:
    """Examples/s of the source notebook's loop: its DataLoader, fp32, plain SGD, Xavier."""
    net = init_weights(resnet18(), "xavier")
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    loss = nn.CrossEntropyLoss()
    metric = [0.0, 0.0, 0.0]
    net.train()
    n, t0 = 0, 0.0
    for i, (X, y) in enumerate(train_iter):
        if i == warmup:
            n, t0 = 0, time.perf_counter()
        y_hat = net(X)
        optimizer.zero_grad()
        l = loss(y_hat, y)   # noqa: E741 (the book's name)
        l.backward()
        optimizer.step()
        # The source's Accumulator: three float() conversions per step.
        metric = [a + float(b) for a, b in zip(metric, (l.detach() * X.shape[0],
                                                        accuracy(y_hat, y),
                                                        X.shape[0]), strict=True)]
        n += X.shape[0]
        if i + 1 == warmup + steps:
            break
    return n / (time.perf_counter() - t0)


def project_examples_per_sec(batch_size: int, steps: int, seed: int = 0,
                             precision: str = "auto") -> float:
    """Examples/s of :func:`d2l_resnet.train.train` with the course recipe.

    Two epochs over ``steps`` batches of the training set; the first warms up, the second
    is measured (training steps only, as the book's ``examples/sec``).
    """
    profile = get_profile("course").replace(
        batch_size=batch_size, train_subset=steps * batch_size, test_subset=batch_size,
        num_epochs=2, seed=seed, precision=precision)
    data = load_data_for_profile(profile, device="cpu")
    history = train(resnet18(), data.train, None, device="cpu", recipe=profile.recipe,
                    verbose=False, progress=False)
    return history.examples_per_sec[-1]


def instruction_set() -> str:
    """What the CPU kernels may use, in words: ATen's level, and oneDNN's cap if set."""
    capped = all(os.environ.get(k, "").lower() == v.lower() for k, v in AVX2_CAPS.items())
    level = torch.backends.cpu.get_cpu_capability()
    if capped:
        return f"capped to AVX2 ({' '.join(f'{k}={v}' for k, v in AVX2_CAPS.items())})"
    return f"native (ATen {level})"


@dataclass(frozen=True)
class TrainBench:
    """What :func:`bench_train` measured (best of its rounds).

    Attributes:
        batch_size: Examples per step, both sides.
        source: Examples/s of the source pipeline (fp32).
        project: Examples/s of the project's step.
        precision: The project's precision and why (``"precision bf16 (CPU has AMX)"``).
        peak_gflops: The matrix-product peak in the project's precision.
        flops_per_example: Nominal FLOPs of one training example.
        isa: What the CPU kernels may use (:func:`instruction_set`).
    """

    batch_size: int
    source: float
    project: float
    precision: str
    peak_gflops: float
    flops_per_example: float
    isa: str

    @property
    def speedup(self) -> float:
        """Project over source examples/s."""
        return self.project / self.source

    @property
    def project_gflops(self) -> float:
        """The project's training rate in GFLOP/s (nominal FLOPs of ResNet-18)."""
        return self.project * self.flops_per_example / 1e9

    def report(self) -> str:
        """The table of results; the last line holds the ratio."""
        gflop = self.flops_per_example / 1e9
        dtype = self.precision.split()[1]
        return "\n".join([
            f"CPU instruction set: {self.isa}; {torch.get_num_threads()} threads",
            f"batch size {self.batch_size}, 28x28, ResNet-18: {gflop:.3f} GFLOP per training "
            f"example",
            f"(a) source pipeline (DataLoader, plain SGD), precision fp32 (the source's): "
            f"{self.source:8,.0f} examples/s",
            f"(b) project step (in-memory, channels_last, matrix-product convs, course "
            f"recipe), {self.precision}: {self.project:8,.0f} examples/s = "
            f"{self.project_gflops:,.0f} GFLOP/s",
            f"(c) {dtype} matmul peak: {self.peak_gflops:,.0f} GFLOP/s; the step reaches "
            f"{100 * self.project_gflops / self.peak_gflops:.0f}% of it",
            f"speedup {self.speedup:.2f}x over the source pipeline (goal {SPEEDUP_GOAL}x)",
        ])


def bench_train(batch_size: int = 256, steps: int = 20, warmup: int = 3, rounds: int = 3,
                root: str | os.PathLike[str] | None = None, precision: str = "auto",
                log: Callable[[str], None] | None = None) -> TrainBench:
    """Measure the source pipeline, the project's step and the matmul peak, side by side.

    The two pipelines alternate for ``rounds`` rounds, so that a busy machine slows both;
    the best round of each is kept.

    Args:
        batch_size: Examples per step, the same for both pipelines.
        steps: Measured steps per round.
        warmup: Steps before measuring (the source's workers start, caches fill).
        rounds: Alternating rounds of (a) and (b).
        root: Where Fashion-MNIST is (see :func:`d2l_resnet.data.prepare_fashion_mnist`).
        precision: The project step's precision: ``"auto"`` (as the course profile),
            ``"fp32"`` or ``"bf16"``.
        log: Called with a line after each measurement (e.g. ``print``), or None.

    Raises:
        ValueError: If a count is not a positive integer.
    """
    for name, value in (("batch_size", batch_size), ("steps", steps), ("rounds", rounds)):
        check_positive_int(name, value)
    check_int("warmup", warmup)
    if (warmup + steps) * batch_size > 60_000:
        raise ValueError(f"(warmup + steps) * batch_size must be at most 60,000 (one epoch), "
                         f"got {(warmup + steps) * batch_size:,}; use fewer steps")
    chosen = resolve_precision(precision, "cpu")
    say = log or (lambda _line: None)
    torch.manual_seed(0)
    source_iter = source_pipeline(batch_size, num_workers=4, root=root)
    sources, projects = [], []
    for r in range(rounds):
        sources.append(source_examples_per_sec(source_iter, steps, warmup))
        say(f"round {r + 1}: source {sources[-1]:,.0f} examples/s")
        projects.append(project_examples_per_sec(batch_size, steps, seed=r,
                                                 precision=precision))
        say(f"round {r + 1}: project {projects[-1]:,.0f} examples/s ({chosen})")
    dtype = torch.bfloat16 if chosen.name == "bf16" else torch.float32
    peak = matmul_gflops(dtype)[0]
    say(f"{dtype} matmul: {peak:,.0f} GFLOP/s")
    return TrainBench(batch_size=batch_size, source=max(sources), project=max(projects),
                      precision=str(chosen), peak_gflops=peak,
                      flops_per_example=train_flops_per_example(), isa=instruction_set())
