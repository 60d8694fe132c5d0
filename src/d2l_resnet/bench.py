"""Benchmarks behind ``python -m d2l_resnet bench``: measured, not asserted.

``bench data`` times the source notebook's DataLoader pipeline and the in-memory loader
side by side, in one run on one machine, over the same training set and batch size.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "DataBenchRow",
    "bench_data",
    "examples_per_second",
    "format_bench_data",
    "source_pipeline",
]


def examples_per_second(loader: Iterable, repeats: int = 3) -> list[float]:
    """Examples per second of ``repeats`` full passes over ``loader``.

    A pass runs from ``iter(loader)`` to its last batch and touches nothing but the
    batch sizes, so it measures what feeding a training loop costs per epoch, worker
    start-up included for a DataLoader.

    Raises:
        ValueError: If ``repeats`` is not a positive integer or the loader is empty.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    rates = []
    for _ in range(repeats):
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
    shuffled, ``num_workers`` worker processes (the source always used 4).

    :func:`d2l_resnet.data.load_data_fashion_mnist` builds the same pipeline but picks the
    number of workers from the CPU count; the benchmark compares against the source as
    it was written.
    """
    from torchvision import transforms

    from d2l_resnet.data import _fashion_mnist_dataset, prepare_fashion_mnist

    trans = [transforms.ToTensor()]
    if resize:
        trans.insert(0, transforms.Resize(resize))
    dataset = _fashion_mnist_dataset(prepare_fashion_mnist(root).raw_dir, True,
                                     transforms.Compose(trans))
    return torch.utils.data.DataLoader(dataset, batch_size, shuffle=True,
                                       num_workers=num_workers)


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
        fast_repeats: Passes of the in-memory loader per size.
        num_workers: Worker processes of the source pipeline.
        device: Where the in-memory loader works (default: the CPU).
        root: A folder holding the data (see :func:`d2l_resnet.data.prepare_fashion_mnist`).
    """
    from d2l_resnet.data import InMemoryLoader, load_fashion_mnist_tensors

    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s < 1
                        for s in sizes):
        raise ValueError(f"sizes must be positive integers, got {sizes!r}")
    images, labels = load_fashion_mnist_tensors(True, root)
    rows = []
    for size in sizes:
        resize = None if size == images.shape[-1] else size
        source = source_pipeline(batch_size, resize, num_workers=num_workers, root=root)
        fast = InMemoryLoader(images, labels, batch_size, shuffle=True, resize=resize,
                              device=device)
        next(iter(fast))   # warm-up: the first call of a kernel pays for its set-up
        rows.append(DataBenchRow(size, examples_per_second(source, source_repeats),
                                 examples_per_second(fast, fast_repeats)))
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
