"""The fast path: Fashion-MNIST held in memory, batches made whole, splits and shards.

- :class:`InMemoryLoader` iterates like a DataLoader over one uint8 tensor of images,
  making each batch in one go (gather, flip, shift, resize, normalize, erase), reproducibly
  from a seed, resumable mid-epoch, and split across the ranks of a distributed run.
- :func:`stratified_subset` draws a seeded subset with the classes in proportion: the
  ``quick`` profile's subsets and the validation split.
- :func:`load_data_fashion_mnist_fast` gives the training, validation (with
  ``validation=5000``) and test loaders by name (:class:`DataSplits`);
  :func:`load_data_for_profile` does it for a profile.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from d2l_resnet.checks import check_int, check_positive_int, check_range
from d2l_resnet.data.fashion_mnist import (
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    load_fashion_mnist_tensors,
)

__all__ = [
    "DataSplits",
    "InMemoryLoader",
    "load_data_fashion_mnist_fast",
    "load_data_for_profile",
    "stratified_subset",
]


def _mixed_seed(*keys: int) -> int:
    """A well-mixed 63-bit seed from integer keys (seed, epoch, purpose...)."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


@contextlib.contextmanager
def _torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run the body with ``num_threads`` PyTorch threads (None: as it is), then restore."""
    before = torch.get_num_threads()
    if num_threads is None or num_threads == before:
        yield
        return
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# Keys for _mixed_seed, so that shuffling, subsets and the validation split draw from
# unrelated streams.
_SHUFFLE_KEY, _SUBSET_KEY, _VALIDATION_KEY = 1, 2, 3


class InMemoryLoader:
    """Batches of a whole image data set held as one uint8 tensor, made a batch at a time.

    The source notebook's DataLoader decodes every image through PIL, resizes it and
    converts it with ``ToTensor`` one example at a time, in worker processes. This loader
    keeps the data set as a single uint8 tensor of shape (N, H, W) on ``device`` (the GPU
    when training there) and turns a whole batch at once into what the network reads:
    one gather, then (optionally) random flips and shifts, a batched antialiased
    ``F.interpolate`` to ``resize``, and the conversion to float, scaled to [0, 1] and
    normalized with :data:`FASHION_MNIST_MEAN` and :data:`FASHION_MNIST_STD`.

    It iterates like a DataLoader, yielding ``(X, y)`` with X float32 of shape
    (B, 1, S, S), S = ``resize`` or the images' own size, and y int64 of shape (B,).
    Every example appears exactly once per epoch (the last batch may be smaller unless
    ``drop_last``). With ``shuffle``, each epoch has its own permutation, drawn from a
    generator seeded with ``(seed, epoch)``: the same seed gives the same epochs, in any
    process, on any device. ``state_dict`` / ``load_state_dict`` carry that position, so a
    resumed training run sees the same batches it would have seen without the break.

    In a distributed run of ``world_size`` processes, each process (``rank``) takes its
    share of every batch: rows ``[r*B//W, (r+1)*B//W)`` of the batch of ``B`` examples
    that a single process would take. Every process makes the same permutation, so the
    shares of one step are disjoint and together are exactly the single-process batch.

    Args:
        images: uint8 images of shape (N, H, W).
        labels: int64 labels of shape (N,).
        batch_size: Examples per batch (all processes together in a distributed run).
        shuffle: Draw a new permutation of the examples each epoch.
        resize: Side length to resize the images to (the book uses 96), or None.
        normalize: Subtract the mean and divide by the standard deviation after scaling
            to [0, 1]; if False, X holds the pixels scaled to [0, 1].
        augment: Random horizontal flips and shifts of up to ``max_shift`` pixels (the
            freed border is background, 0), drawn per example; labels are unchanged.
        erase: Random erasing (Zhong et al., 2017): the probability that an image has a
            random rectangle set to 0 (the mean, when normalized), as torchvision's
            ``RandomErasing()`` draws it (2-33% of the area, aspect ratio 0.3-3.3); a
            rectangle too large for the image is cut to fit. 0: none.
        drop_last: Drop the last batch if it is smaller than ``batch_size``.
        device: Where the data lives and the batches are made (default: the images'
            device).
        seed: Seeds shuffling and augmentation.
        max_shift: Largest shift of ``augment``, in pixels of the original images.
        split: What the examples are, shown by ``repr``: ``"train"``, ``"val"`` or
            ``"test"`` (None: unnamed).
        rank: This process's rank in a distributed run (0 otherwise).
        world_size: The number of processes sharing each batch (1 otherwise).
        num_threads: PyTorch threads while a batch is made on the CPU (the setting is
            restored before the batch is yielded), or None to keep PyTorch's setting. One
            thread is the robust choice: a batch is little work, and when other processes
            share the cores, two threads of one small operation often wait for each
            other.

    Raises:
        ValueError: If an argument has the wrong type, shape or range; the message says
            what was expected.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, *,
                 shuffle: bool = False, resize: int | None = None, normalize: bool = True,
                 augment: bool = False, drop_last: bool = False,
                 device: torch.device | str | None = None, seed: int = 0,
                 max_shift: int = 2, erase: float = 0.0, split: str | None = None,
                 rank: int = 0, world_size: int = 1, num_threads: int | None = 1) -> None:
        _check_images_and_labels(images, labels)
        check_positive_int("batch_size", batch_size)
        check_positive_int("resize", resize, allow_none=True)
        check_int("max_shift", max_shift)
        check_range("erase", erase, 0, 1, high_open=False)
        check_int("seed", seed)
        check_positive_int("world_size", world_size)
        check_int("rank", rank)
        if rank >= world_size:
            raise ValueError(f"rank must be below world_size ({world_size}), got {rank}")
        check_positive_int("num_threads", num_threads, allow_none=True)
        if drop_last and batch_size > len(images):
            raise ValueError(f"drop_last=True with batch_size {batch_size} > {len(images)} "
                             f"examples would yield no batch; use a smaller batch_size")
        try:
            self.device = images.device if device is None else torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"device must be a torch.device or a name like 'cpu' or "
                             f"'cuda', got {device!r}") from err
        self.images = images.to(self.device).contiguous()   # (N, H, W) uint8
        self.labels = labels.to(self.device)                 # (N,) int64
        self.batch_size, self.resize, self.seed = batch_size, resize, seed
        self.shuffle, self.normalize = bool(shuffle), bool(normalize)
        self.augment, self.drop_last = bool(augment), bool(drop_last)
        self.max_shift, self.split, self.num_threads = max_shift, split, num_threads
        self.erase = float(erase)
        self.rank, self.world_size = rank, world_size
        self._check_shares()
        self._scale = 1.0 / (255.0 * FASHION_MNIST_STD)
        self._shift = FASHION_MNIST_MEAN / FASHION_MNIST_STD
        self._next_epoch = 0      # the epoch the next iter() runs
        self._next_batch = 0      # the batch it starts from (nonzero after a mid-epoch resume)
        self._position: tuple[int, int] | None = None   # (epoch, batches yielded) while iterating

    # -- sizes

    @property
    def num_examples(self) -> int:
        """The number of examples in the data set (N), over all processes."""
        return len(self.images)

    def __len__(self) -> int:
        """The number of batches per epoch."""
        n, b = self.num_examples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def _batch_sizes(self) -> set[int]:
        n, b = self.num_examples, self.batch_size
        return {b} if self.drop_last or n % b == 0 else {b, n % b} if n > b else {n}

    def _check_shares(self) -> None:
        """Every process must get at least 2 examples of every batch: BatchNorm in train
        mode needs two values per channel, and b5's maps are 1x1 at 28x28."""
        if self.world_size == 1:
            return
        smallest = min(self._batch_sizes())
        if smallest // self.world_size < 2:
            raise ValueError(
                f"{self.world_size} processes cannot share a batch of {smallest} examples "
                f"(each needs at least 2 for BatchNorm); use at most {smallest // 2} "
                f"processes, a larger batch_size, or drop_last=True")

    def __repr__(self) -> str:
        size = self.resize or f"{self.images.shape[1]}x{self.images.shape[2]}"
        shard = f", rank {self.rank} of {self.world_size}" if self.world_size > 1 else ""
        split = f"{self.split}: " if self.split else ""
        return (f"InMemoryLoader({split}{self.num_examples} examples, batch_size="
                f"{self.batch_size}, {len(self)} batches, size={size}, shuffle={self.shuffle}, "
                f"augment={self.augment}, device={self.device}{shard})")

    # -- the order of an epoch

    def _epoch_plan(self, epoch: int) -> tuple[torch.Tensor | None, ...]:
        """The order and, with ``augment``, each position's flip (N,) and shift (N, 2);
        with ``erase``, its erasing draws (N, 5). What is not drawn is None."""
        n = self.num_examples
        gen = torch.Generator().manual_seed(_mixed_seed(self.seed, _SHUFFLE_KEY, epoch))
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        flip = shift = erase = None
        if self.augment:
            flip = torch.rand(n, generator=gen) < 0.5                               # (N,)
            shift = torch.randint(0, 2 * self.max_shift + 1, (n, 2), generator=gen)  # (N, 2)
        if self.erase:   # drawn last, so that the draws above are the same without it
            erase = torch.rand(n, 5, generator=gen)                                  # (N, 5)
        return tuple(None if t is None else t.to(self.device)
                     for t in (order, flip, shift, erase))

    def _share(self, k: int) -> slice:
        """The positions of the epoch's order that batch ``k`` gives to this process."""
        start = k * self.batch_size
        size = min(self.batch_size, self.num_examples - start)
        w, r = self.world_size, self.rank
        return slice(start + r * size // w, start + (r + 1) * size // w)

    # -- making a batch

    def _augment(self, x: torch.Tensor, flip: torch.Tensor, shift: torch.Tensor
                 ) -> torch.Tensor:
        """Flip and shift each uint8 image of x (B, H, W) by its own amount, in one gather."""
        p = self.max_shift
        b, h, w = x.shape
        padded = torch.nn.functional.pad(x, (p, p, p, p))                    # (B, H+2p, W+2p)
        rows = shift[:, :1] + torch.arange(h, device=x.device)               # (B, H)
        cols = torch.arange(w, device=x.device).expand(b, w)                 # (B, W)
        cols = torch.where(flip[:, None], (w - 1) - cols, cols) + shift[:, 1:]
        batch = torch.arange(b, device=x.device)[:, None, None]
        return padded[batch, rows[:, :, None], cols[:, None, :]]              # (B, H, W)

    def _erase_mask(self, draws: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Where random erasing blanks each image, (B, 1, H, W), from its draws (B, 5):
        whether to erase, the area's share, the aspect ratio, the top and left corner."""
        erase, area, ratio, top, left = draws.unbind(1)
        area = h * w * (0.02 + (0.33 - 0.02) * area)            # torchvision's (0.02, 0.33)
        ratio = torch.exp(math.log(0.3) + (math.log(3.3) - math.log(0.3)) * ratio)
        eh = torch.sqrt(area * ratio).round().clamp(1, h)       # height
        ew = torch.sqrt(area / ratio).round().clamp(1, w)       # width
        top = (top * (h - eh + 1)).floor()
        left = (left * (w - ew + 1)).floor()
        rows = torch.arange(h, device=draws.device)
        cols = torch.arange(w, device=draws.device)
        in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])            # (B, H)
        in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])          # (B, W)
        mask = in_rows[:, :, None] & in_cols[:, None, :] & (erase < self.erase)[:, None, None]
        return mask.unsqueeze(1)

    def _make_batch(self, idx: torch.Tensor, flip: torch.Tensor | None,
                    shift: torch.Tensor | None, erase: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images.index_select(0, idx)                                 # (B, H, W) uint8
        if flip is not None and shift is not None:
            x = self._augment(x, flip, shift)
        x = x.unsqueeze(1)                                                   # (B, 1, H, W)
        if self.resize is not None and x.shape[-2:] != (self.resize, self.resize):
            x = self._resize(x)                                              # (B, 1, S, S)
        if not self.normalize:    # x / 255, bit for bit what ToTensor computes
            x = x.float().div_(255)
        else:   # (x / 255 - mean) / std as x * scale - shift: a multiply and a subtract
            x = x.float().mul_(self._scale).sub_(self._shift)
        if erase is not None:
            x.masked_fill_(self._erase_mask(erase, *x.shape[-2:]), 0.0)
        return x, self.labels.index_select(0, idx)

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        """Bilinear, antialiased resize of a uint8 batch (B, 1, H, W) to (B, 1, S, S).

        On the CPU PyTorch resizes uint8 images directly (a vectorized kernel, several
        times faster than on float, and rounding to uint8 like PIL in the source
        pipeline); elsewhere the batch is resized as float, values in [0, 255].
        """
        size = (self.resize, self.resize)
        if x.device.type == "cpu":
            return torch.nn.functional.interpolate(x, size=size, mode="bilinear",
                                                   align_corners=False, antialias=True)
        return torch.nn.functional.interpolate(x.float(), size=size, mode="bilinear",
                                               align_corners=False, antialias=True)

    # -- iteration and resumption

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # A generator: the epoch is taken when the first batch is asked for, not when
        # iter() is called, so an iterator made and dropped (as tqdm's asyncio
        # progress bar makes one) skips no epoch.
        epoch, start = self._next_epoch, self._next_batch
        self._next_epoch, self._next_batch = epoch + 1, 0
        order, flip, shift, erase = self._epoch_plan(epoch)
        self._position = (epoch, start)
        threads = self.num_threads if self.device.type == "cpu" else None
        for k in range(start, len(self)):
            sl = self._share(k)
            with _torch_threads(threads):
                batch = self._make_batch(order[sl], *(None if t is None else t[sl]
                                                      for t in (flip, shift, erase)))
            self._position = (epoch, k + 1)
            yield batch
        self._position = None

    def state_dict(self) -> dict[str, int]:
        """Where the loader stands: the seed, the epoch and the batches of it already seen.

        Taken between epochs, it names the next epoch; taken during one (after some of its
        batches), it names that epoch and how many batches were yielded, so that after
        :meth:`load_state_dict` the next ``iter()`` yields the rest of that epoch.
        """
        if self._position is not None and self._position[1] < len(self):
            epoch, batch = self._position
        else:
            epoch, batch = self._next_epoch, 0
        return {"seed": self.seed, "epoch": epoch, "batch": batch,
                "num_examples": self.num_examples, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`: the next ``iter()`` picks up where it stood.

        Raises:
            ValueError: If the state is malformed or was taken from a loader over another
                number of examples or batch size (its batches would differ).
        """
        try:
            seed, epoch, batch = int(state["seed"]), int(state["epoch"]), int(state["batch"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"state must be a dict from InMemoryLoader.state_dict() with "
                             f"integer 'seed', 'epoch' and 'batch', got {state!r}") from err
        for key, mine in (("num_examples", self.num_examples),
                          ("batch_size", self.batch_size)):
            if key in state and int(state[key]) != mine:
                raise ValueError(f"state was taken from a loader with {key}={state[key]}, "
                                 f"but this one has {key}={mine}; its batches would differ")
        if seed < 0 or epoch < 0 or not 0 <= batch <= len(self):
            raise ValueError(f"state holds seed {seed}, epoch {epoch}, batch {batch}; expected "
                             f"non-negative values and batch <= {len(self)}")
        self.seed = seed
        self._next_epoch, self._next_batch = epoch, batch
        self._position = None


def _check_images_and_labels(images: object, labels: object) -> None:
    """Raise ``ValueError`` unless images are uint8 (N, H, W) and labels int64 (N,), N >= 1."""
    def described(x: object) -> str:
        return (f"a {x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor)
                else type(x).__name__)

    if not (isinstance(images, torch.Tensor) and images.dtype == torch.uint8
            and images.dim() == 3):
        raise ValueError(f"images must be a uint8 tensor of shape (N, H, W), got "
                         f"{described(images)}")
    if not (isinstance(labels, torch.Tensor) and labels.dtype == torch.int64
            and labels.dim() == 1):
        raise ValueError(f"labels must be an int64 tensor of shape (N,), got "
                         f"{described(labels)} (convert with labels.long())")
    if len(labels) != len(images):
        raise ValueError(f"images and labels must hold the same number of examples, "
                         f"got {len(images)} images and {len(labels)} labels")
    if len(images) == 0:
        raise ValueError("images must hold at least one example, got none")


def stratified_subset(labels: torch.Tensor, size: int, seed: int = 0, *,
                      key: int = _SUBSET_KEY) -> torch.Tensor:
    """Indices (int64, ascending) of a seeded subset holding each class in proportion.

    Within each class the examples are taken in a random order drawn from ``seed``; the
    classes are interleaved so that every prefix is stratified (for Fashion-MNIST's equal
    classes, the class counts of the subset differ by at most one).

    Args:
        labels: Class labels (N,).
        size: How many indices to draw.
        seed: Seeds the draw.
        key: Which stream of ``seed`` to draw from (the validation split uses its own, so
            that it is the same whatever subsets are drawn).

    Raises:
        ValueError: If ``size`` is not an integer in 1..len(labels).
    """
    n = len(labels)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= n:
        raise ValueError(f"the subset size must be an integer from 1 to {n}, got {size!r}")
    labels = labels.cpu().long()
    gen = torch.Generator().manual_seed(_mixed_seed(seed, key, n))
    perm = torch.randperm(n, generator=gen)
    by_class = perm[torch.argsort(labels[perm], stable=True)]    # random order within class
    cls = labels[by_class]
    counts = torch.bincount(cls)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n) - starts[cls]                         # rank within the class
    key_ = (rank.double() + 0.5) / counts[cls].double()          # how far into its class
    chosen = by_class[torch.argsort(key_, stable=True)[:size]]
    return torch.sort(chosen).values


def _validation_split(labels: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train_idx, val_idx)``: a stratified validation split of ``size`` examples and the
    rest. Drawn from a fixed seed of its own, so it is the same in every run and profile."""
    if not 0 < size < len(labels):
        raise ValueError(f"validation must be from 1 to {len(labels) - 1} examples (the rest "
                         f"trains), got {size}")
    val = stratified_subset(labels, size, seed=0, key=_VALIDATION_KEY)
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[val] = False
    return keep.nonzero().flatten(), val


@dataclass(frozen=True)
class DataSplits:
    """The loaders of :func:`load_data_fashion_mnist_fast`, by name.

    Attributes:
        train: The training set (shuffled, and augmented if asked).
        val: The validation split held out of the training set, or None without one.
        test: The test set.
    """

    train: InMemoryLoader
    val: InMemoryLoader | None
    test: InMemoryLoader


def load_data_fashion_mnist_fast(
    batch_size: int, resize: int | None = None, root: str | os.PathLike[str] | None = None,
    *, device: torch.device | str | None = None, augment: bool = False,
    normalize: bool = True, seed: int = 0, train_subset: int | None = None,
    test_subset: int | None = None, validation: int = 0, max_shift: int = 2,
    erase: float = 0.0, rank: int = 0, world_size: int = 1,
) -> DataSplits:
    """Fashion-MNIST as :class:`InMemoryLoader` (the fast path; same data, same shapes).

    Args:
        batch_size: Examples per batch.
        resize: Side length to resize the 28x28 images to (the book uses 96), or None.
        root: A folder holding the data (see :func:`prepare_fashion_mnist`).
        device: Where the data lives and batches are made (default: the CPU).
        augment: Random flips and small shifts of the training images.
        normalize: Normalize with :data:`FASHION_MNIST_MEAN` / :data:`FASHION_MNIST_STD`
            (False: pixels in [0, 1], as the source pipeline's ``ToTensor``).
        seed: Seeds the shuffling, the augmentation and the subsets.
        train_subset: Use only this many training examples (a fixed stratified subset
            drawn from ``seed``, after the validation split), or None for all.
        test_subset: The same for the 10,000 test examples.
        validation: Hold out this many training examples (a stratified split, the same in
            every run) as a validation set, scored like the test set; 0 for none.
        max_shift: Largest shift of ``augment``, in pixels (0: flips only).
        erase: Random erasing of the training images: the probability per image (see
            :class:`InMemoryLoader`; 0: none).
        rank: This process's rank in a distributed run (each takes its share of every
            batch; see :class:`InMemoryLoader`).
        world_size: The number of processes of a distributed run.

    Returns:
        The loaders, by name: ``.train`` (shuffled, and augmented if asked), ``.val``
        (None unless ``validation`` > 0) and ``.test``, the last two in order; none drops
        examples.
    """
    check_positive_int("batch_size", batch_size)
    check_positive_int("train_subset", train_subset, allow_none=True)
    check_positive_int("test_subset", test_subset, allow_none=True)
    check_int("validation", validation)
    images, labels = load_fashion_mnist_tensors(True, root)
    test_images, test_labels = load_fashion_mnist_tensors(False, root)
    parts = {"train": (images, labels)}
    if validation:
        train_idx, val_idx = _validation_split(labels, validation)
        parts = {"train": (images[train_idx], labels[train_idx]),
                 "val": (images[val_idx], labels[val_idx])}
    parts["test"] = (test_images, test_labels)
    loaders = {}
    for split, (x, y) in parts.items():
        subset = {"train": train_subset, "test": test_subset}.get(split)
        if subset is not None and subset > len(y):
            raise ValueError(f"{split}_subset must be at most {len(y)}, got {subset}")
        if subset is not None and subset < len(y):
            idx = stratified_subset(y, subset, seed)
            x, y = x[idx], y[idx]
        train = split == "train"
        loaders[split] = InMemoryLoader(x, y, batch_size, shuffle=train, resize=resize,
                                        normalize=normalize, augment=augment and train,
                                        device=device, seed=seed, max_shift=max_shift,
                                        erase=erase if train else 0.0, split=split,
                                        rank=rank, world_size=world_size)
    return DataSplits(loaders["train"], loaders.get("val"), loaders["test"])


def load_data_for_profile(profile: Any, root: str | os.PathLike[str] | None = None,
                          device: torch.device | str | None = None, *, rank: int = 0,
                          world_size: int = 1) -> DataSplits:
    """The loaders of :func:`load_data_fashion_mnist_fast` as a
    :class:`~d2l_resnet.profiles.Profile` asks: its :class:`~d2l_resnet.profiles.DataSpec`,
    seeded by its recipe's seed (0 if it has none)."""
    return load_data_fashion_mnist_fast(
        root=root, device=device, seed=profile.recipe.seed or 0, rank=rank,
        world_size=world_size, **dataclasses.asdict(profile.data))
