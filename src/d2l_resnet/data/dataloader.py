"""The source notebook's data pipeline: torchvision's dataset, ``ToTensor``, a DataLoader.

Kept as the source wrote it (with the verified files of
:func:`~d2l_resnet.data.fashion_mnist.prepare_fashion_mnist` and a sensible number of
worker processes), so that notebook 03 and ``bench`` can compare it with the in-memory
loader.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch.utils import data

from d2l_resnet.checks import check_positive_int
from d2l_resnet.data.fashion_mnist import prepare_fashion_mnist

__all__ = ["get_dataloader_workers", "load_data_fashion_mnist"]


def get_dataloader_workers() -> int:
    """Worker processes for the DataLoader: one core is left for training, at most 4.

    The source notebook always used 4, which on a 2-core machine makes the workers
    compete with the training process for the CPU.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(0, min(4, cores - 1))


def _fashion_mnist_dataset(raw_dir: Path, train: bool, transform: object) -> data.Dataset:
    """torchvision's FashionMNIST dataset reading the verified files in ``raw_dir``."""
    import torchvision  # heavy (seconds): only the source's pipeline needs it

    class _VerifiedFashionMNIST(torchvision.datasets.FashionMNIST):
        @property
        def raw_folder(self) -> str:
            return str(raw_dir)

    return _VerifiedFashionMNIST(root=str(raw_dir), train=train, transform=transform,
                                 download=False)


def load_data_fashion_mnist(batch_size: int, resize: int | None = None,
                            root: str | os.PathLike[str] | None = None, *,
                            num_workers: int | None = None,
                            ) -> tuple[data.DataLoader, data.DataLoader]:
    """The source notebook's pipeline: torchvision's dataset, ``ToTensor``, DataLoader.

    Each image is decoded to PIL, optionally resized, and turned into a float tensor in
    [0, 1] one at a time, in :func:`get_dataloader_workers` worker processes. The text
    labels are :data:`FASHION_MNIST_LABELS`.

    Args:
        batch_size: Examples per batch.
        resize: Side length to resize the 28x28 images to (the book uses 96), or None.
        root: A folder holding the data (see :func:`prepare_fashion_mnist`).
        num_workers: Worker processes (default: :func:`get_dataloader_workers`; the
            source always used 4).

    Returns:
        ``(train_iter, test_iter)``, yielding ``(X, y)`` with X of shape
        (batch_size, 1, S, S), S = resize or 28; the training set is shuffled.
    """
    from torchvision import transforms  # heavy (seconds): only this pipeline needs it

    check_positive_int("batch_size", batch_size)
    check_positive_int("resize", resize, allow_none=True)
    raw_dir = prepare_fashion_mnist(root).raw_dir
    trans = [transforms.ToTensor()]
    if resize:
        trans.insert(0, transforms.Resize(resize))
    transform = transforms.Compose(trans)
    mnist_train = _fashion_mnist_dataset(raw_dir, True, transform)
    mnist_test = _fashion_mnist_dataset(raw_dir, False, transform)
    workers = get_dataloader_workers() if num_workers is None else num_workers
    return (data.DataLoader(mnist_train, batch_size, shuffle=True, num_workers=workers),
            data.DataLoader(mnist_test, batch_size, shuffle=False, num_workers=workers))
