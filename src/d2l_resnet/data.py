"""Fashion-MNIST: found offline or online, verified, and loaded.

Where the data comes from, in this order (the first that holds it wins):

1. ``root``, an explicit folder passed by the caller;
2. the folder named by the environment variable ``D2L_RESNET_DATA``;
3. the project's ``data/`` folder (where this module unpacks what it finds elsewhere);
4. ``/usr/share/datasets/fashion-mnist``, from the Debian/Ubuntu package
   ``dataset-fashion-mnist``;
5. torchvision's download from the data set's mirrors.

A folder may hold the four files directly (gzipped or not) or in torchvision's
``FashionMNIST/raw`` layout. Gzipped files are decompressed into
``data/FashionMNIST/raw`` (torchvision's own downloader rejects the Debian package's gz
files: their checksums differ from the mirror's, though the images inside are the same).
Every decompressed file is checked: its IDX header, its size, and its SHA-256 against
the published data set. A file that fails is named in the error with the remedy, and
nothing derived from it is kept.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils import data

from d2l_resnet.checks import check_positive_int

__all__ = [
    "DATA_ENV",
    "DEBIAN_DIR",
    "FASHION_MNIST",
    "FASHION_MNIST_LABELS",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "DataSource",
    "DatasetSpec",
    "InMemoryLoader",
    "get_dataloader_workers",
    "get_fashion_mnist_labels",
    "load_data_fashion_mnist",
    "load_data_fashion_mnist_fast",
    "load_fashion_mnist_tensors",
    "prepare_fashion_mnist",
    "project_data_dir",
    "read_idx",
    "stratified_subset",
]

DATA_ENV = "D2L_RESNET_DATA"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"

FASHION_MNIST_LABELS: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
# Pixel statistics of the 60,000 training images, scaled to [0, 1].
FASHION_MNIST_MEAN = 0.2860
FASHION_MNIST_STD = 0.3530


@dataclass(frozen=True)
class DatasetSpec:
    """What a verified copy of an IDX data set looks like.

    Attributes:
        files: For each file name (without ``.gz``): the shape it must hold and the
            SHA-256 of its decompressed bytes (None skips the checksum).
        num_classes: Labels must lie in ``range(num_classes)``.
    """

    files: dict[str, tuple[tuple[int, ...], str | None]]
    num_classes: int = 10

    def name(self, train: bool, kind: str) -> str:
        """The file name of the ``images`` or ``labels`` of the train or test split."""
        prefix = "train" if train else "t10k"
        suffix = "images-idx3-ubyte" if kind == "images" else "labels-idx1-ubyte"
        return f"{prefix}-{suffix}"


FASHION_MNIST = DatasetSpec({
    "train-images-idx3-ubyte": (
        (60000, 28, 28), "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train-labels-idx1-ubyte": (
        (60000,), "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "t10k-images-idx3-ubyte": (
        (10000, 28, 28), "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "t10k-labels-idx1-ubyte": (
        (10000,), "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
})

_REMEDY = (
    f"delete it and run `python -m d2l_resnet data` (or `make data`) again, which finds a "
    f"good copy; on Debian/Ubuntu `sudo apt-get install --reinstall {DEBIAN_PACKAGE}` "
    f"restores the package's files"
)


def project_data_dir() -> Path:
    """The project's ``data/`` folder (next to ``pyproject.toml`` in a source checkout).

    For an installed, non-editable package it is ``~/.cache/d2l_resnet`` instead.
    """
    top = Path(__file__).resolve().parents[2]
    if (top / "pyproject.toml").is_file():
        return top / "data"
    return Path.home() / ".cache" / "d2l_resnet"


# ---------------------------------------------------------------------------- reading

_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path: Path, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """Read an uncompressed IDX file (the MNIST format) into a uint8 tensor.

    Args:
        path: The file.
        shape: The shape it must hold, or None to accept any.

    Raises:
        ValueError: The file is not IDX, is truncated or too long, or has another shape;
            the message names the file and the remedy.
    """
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (bad header); {_REMEDY}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated inside its header; {_REMEDY}")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "longer than its header says"
        raise ValueError(
            f"{path} is {problem}: {len(raw):,} bytes where its header {dims} needs "
            f"{expected:,}; {_REMEDY}"
        )
    if shape is not None and dims != tuple(shape):
        raise ValueError(f"{path} holds an array of shape {dims}, expected {tuple(shape)}; "
                         f"{_REMEDY}")
    array = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
    return torch.from_numpy(array.copy())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify_file(path: Path, shape: tuple[int, ...], sha256: str | None,
                 num_classes: int) -> None:
    """Check one decompressed file's structure, content and checksum."""
    array = read_idx(path, shape)
    if array.dim() == 1 and int(array.max()) >= num_classes:
        raise ValueError(f"{path} has label {int(array.max())}, expected labels 0.."
                         f"{num_classes - 1}; {_REMEDY}")
    if sha256 is not None and _sha256(path) != sha256:
        raise ValueError(f"{path} has the right size but the wrong SHA-256: the file is "
                         f"corrupt or is not Fashion-MNIST; {_REMEDY}")


# ------------------------------------------------------------------------ resolution

@dataclass(frozen=True)
class DataSource:
    """Where the data was found and where the verified, decompressed files are.

    Attributes:
        raw_dir: The folder holding the four verified, decompressed files.
        origin: How it was found (``root argument``, ``$D2L_RESNET_DATA``, ...).
        found_at: The folder the original files came from.
        unpacked: True if gzipped files were decompressed into ``raw_dir``.
    """

    raw_dir: Path
    origin: str
    found_at: Path
    unpacked: bool

    def report(self) -> str:
        """A few lines for people: where the data came from and how it was checked."""
        lines = [f"Fashion-MNIST found via {self.origin}: {self.found_at}"]
        if self.unpacked:
            lines.append(f"decompressed into {self.raw_dir}")
        lines.append("verified: 60,000 training and 10,000 test images of 28x28, "
                     "labels 0-9, SHA-256 of all four files")
        return "\n".join(lines)


def _locate(folder: Path, spec: DatasetSpec) -> dict[str, Path] | None:
    """The four files in ``folder`` or ``folder/FashionMNIST/raw``, gzipped or not."""
    for candidate in (folder, folder / "FashionMNIST" / "raw"):
        found = {}
        for name in spec.files:
            plain, gz = candidate / name, candidate / f"{name}.gz"
            if plain.is_file():
                found[name] = plain
            elif gz.is_file():
                found[name] = gz
        if len(found) == len(spec.files):
            return found
    return None


def _decompress(src: Path, dest: Path, shape: tuple[int, ...], sha256: str | None,
                num_classes: int) -> None:
    """Decompress ``src`` to ``dest`` atomically, keeping it only if it verifies."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, gzip.open(src, "rb") as f:
            shutil.copyfileobj(f, out)
        _verify_file(tmp, shape, sha256, num_classes)
        tmp.chmod(0o644)
        os.replace(tmp, dest)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"{src} could not be decompressed ({err}); {_REMEDY}") from err
    except ValueError as err:
        tmp.unlink(missing_ok=True)
        raise ValueError(str(err).replace(str(tmp), f"{src} (decompressed)")) from err


def _use_folder(folder: Path, origin: str, spec: DatasetSpec, unpack_to: Path
                ) -> DataSource | None:
    """Verify the data set in ``folder`` (decompressing gz files); None if absent."""
    files = _locate(folder, spec)
    if files is None:
        return None
    if all(p.suffix != ".gz" for p in files.values()):
        raw_dirs = {p.parent for p in files.values()}
        if len(raw_dirs) == 1:
            for name, path in files.items():
                shape, sha256 = spec.files[name]
                _verify_file(path, shape, sha256, spec.num_classes)
            return DataSource(raw_dirs.pop(), origin, folder, unpacked=False)
    for name, path in files.items():
        shape, sha256 = spec.files[name]
        dest = unpack_to / name
        if path.suffix == ".gz":
            _decompress(path, dest, shape, sha256, spec.num_classes)
        else:
            _verify_file(path, shape, sha256, spec.num_classes)
            if path != dest:
                unpack_to.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest)
    return DataSource(unpack_to, origin, folder, unpacked=True)


def _how_to_get_it(tried: Iterable[str]) -> str:
    return (
        "Fashion-MNIST was not found. Looked in:\n"
        + "".join(f"  - {t}\n" for t in tried)
        + "Get it one of these ways:\n"
        f"  - on Debian/Ubuntu: sudo apt-get install {DEBIAN_PACKAGE}  (works offline from "
        f"a local mirror; puts the files in {DEBIAN_DIR})\n"
        "  - with internet access: python -m d2l_resnet data  (torchvision downloads it)\n"
        "  - copy the four files train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz),\n"
        "    t10k-images-idx3-ubyte(.gz), t10k-labels-idx1-ubyte(.gz) into a folder and pass\n"
        f"    it as root=... or set the environment variable {DATA_ENV} to it"
    )


def prepare_fashion_mnist(root: str | os.PathLike[str] | None = None, *, download: bool = True,
                          spec: DatasetSpec = FASHION_MNIST,
                          data_dir: Path | None = None,
                          system_dir: Path = DEBIAN_DIR) -> DataSource:
    """Find Fashion-MNIST, verify it and decompress it where needed.

    Args:
        root: A folder that must hold the data (the four files, or ``FashionMNIST/raw``).
        download: Try torchvision's download when no local copy is found.
        spec: What the files must hold (tests pass a tiny synthetic data set).
        data_dir: The project's data folder (default: :func:`project_data_dir`).
        system_dir: The Debian package's folder.

    Raises:
        FileNotFoundError: No source holds the data; the message lists each way to get it.
        ValueError: A file is truncated or corrupt; the message names it and the remedy.
    """
    data_dir = project_data_dir() if data_dir is None else Path(data_dir)
    unpack_to = data_dir / "FashionMNIST" / "raw"
    explicit = [(Path(root).expanduser(), "the root argument")] if root is not None else []
    if not explicit and os.environ.get(DATA_ENV):
        explicit = [(Path(os.environ[DATA_ENV]).expanduser(), f"${DATA_ENV}")]
    for folder, origin in explicit:
        # A folder the user named must hold the data: falling back silently would hide
        # a typo.
        source = _use_folder(folder, origin, spec, unpack_to)
        if source is None:
            raise FileNotFoundError(
                f"{origin} names {folder}, which does not hold Fashion-MNIST (expected the "
                f"four files {', '.join(spec.files)}, each optionally .gz, directly in it "
                f"or in FashionMNIST/raw)\n" + _how_to_get_it([f"{folder} ({origin})"]))
        return source

    tried = []
    for folder, origin in ((data_dir, "the project's data folder"),
                           (system_dir, f"the Debian package {DEBIAN_PACKAGE}")):
        source = _use_folder(folder, origin, spec, unpack_to)
        if source is not None:
            return source
        tried.append(f"{folder} ({origin})")

    if download:
        try:
            import torchvision

            for train in (True, False):
                torchvision.datasets.FashionMNIST(root=str(data_dir), train=train,
                                                  download=True)
        except Exception as err:  # any failure (offline, a mirror down) means "not here"
            tried.append(f"torchvision's download into {data_dir} (failed: {err})")
        else:
            source = _use_folder(unpack_to, "torchvision's download", spec, unpack_to)
            if source is not None:
                return source
            tried.append(f"torchvision's download into {data_dir} (no files)")
    else:
        tried.append("torchvision's download (not tried: download=False)")
    raise FileNotFoundError(_how_to_get_it(tried))


# --------------------------------------------------------------------------- loading

def load_fashion_mnist_tensors(train: bool = True,
                               root: str | os.PathLike[str] | None = None,
                               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The verified training or test split as whole tensors.

    Returns:
        ``(images, labels)``: uint8 images of shape (N, 28, 28) and int64 labels (N,),
        N = 60,000 for ``train=True`` and 10,000 otherwise.
    """
    raw_dir = prepare_fashion_mnist(root).raw_dir
    images = read_idx(raw_dir / FASHION_MNIST.name(train, "images"))   # (N, 28, 28)
    labels = read_idx(raw_dir / FASHION_MNIST.name(train, "labels"))   # (N,)
    return images, labels.long()


def get_fashion_mnist_labels(labels: Iterable[int] | torch.Tensor) -> list[str]:
    """The text labels of numeric labels 0..9, e.g. ``[0, 9] -> ['T-shirt/top', 'Ankle boot']``."""
    values = labels.tolist() if isinstance(labels, torch.Tensor) else list(labels)
    out = []
    for i in values:
        if not isinstance(i, int) or not 0 <= i < len(FASHION_MNIST_LABELS):
            raise ValueError(f"labels must be integers 0..9, got {i!r}")
        out.append(FASHION_MNIST_LABELS[i])
    return out


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
    import torchvision

    class _VerifiedFashionMNIST(torchvision.datasets.FashionMNIST):
        @property
        def raw_folder(self) -> str:
            return str(raw_dir)

    return _VerifiedFashionMNIST(root=str(raw_dir), train=train, transform=transform,
                                 download=False)


def load_data_fashion_mnist(batch_size: int, resize: int | None = None,
                            root: str | os.PathLike[str] | None = None,
                            ) -> tuple[data.DataLoader, data.DataLoader]:
    """The source notebook's pipeline: torchvision's dataset, ``ToTensor``, DataLoader.

    Each image is decoded to PIL, optionally resized, and turned into a float tensor in
    [0, 1] one at a time, in :func:`get_dataloader_workers` worker processes. The text
    labels are :data:`FASHION_MNIST_LABELS`.

    Args:
        batch_size: Examples per batch.
        resize: Side length to resize the 28x28 images to (the book uses 96), or None.
        root: A folder holding the data (see :func:`prepare_fashion_mnist`).

    Returns:
        ``(train_iter, test_iter)``, yielding ``(X, y)`` with X of shape
        (batch_size, 1, S, S), S = resize or 28; the training set is shuffled.
    """
    from torchvision import transforms

    check_positive_int("batch_size", batch_size)
    check_positive_int("resize", resize, allow_none=True)
    raw_dir = prepare_fashion_mnist(root).raw_dir
    trans = [transforms.ToTensor()]
    if resize:
        trans.insert(0, transforms.Resize(resize))
    transform = transforms.Compose(trans)
    mnist_train = _fashion_mnist_dataset(raw_dir, True, transform)
    mnist_test = _fashion_mnist_dataset(raw_dir, False, transform)
    workers = get_dataloader_workers()
    return (data.DataLoader(mnist_train, batch_size, shuffle=True, num_workers=workers),
            data.DataLoader(mnist_test, batch_size, shuffle=False, num_workers=workers))


# ------------------------------------------------------------------ in-memory loader

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


# Keys for _mixed_seed, so that shuffling and subsets draw from unrelated streams.
_SHUFFLE_KEY, _SUBSET_KEY = 1, 2


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

    Args:
        images: uint8 images of shape (N, H, W).
        labels: int64 labels of shape (N,).
        batch_size: Examples per batch.
        shuffle: Draw a new permutation of the examples each epoch.
        resize: Side length to resize the images to (the book uses 96), or None.
        normalize: Subtract the mean and divide by the standard deviation after scaling
            to [0, 1]; if False, X holds the pixels scaled to [0, 1].
        augment: Random horizontal flips and shifts of up to ``max_shift`` pixels (the
            freed border is background, 0), drawn per example; labels are unchanged.
        drop_last: Drop the last batch if it is smaller than ``batch_size``.
        device: Where the data lives and the batches are made (default: the images'
            device).
        seed: Seeds shuffling and augmentation.
        max_shift: Largest shift of ``augment``, in pixels of the original images.
        mean: Mean subtracted by ``normalize`` (on the [0, 1] scale).
        std: Standard deviation divided by ``normalize``.
        num_threads: PyTorch threads while a batch is made on the CPU (the setting is
            restored before the batch is yielded), or None to keep PyTorch's setting. One
            thread is the robust choice: a batch is little work, and when other processes
            share the cores, two threads of one small operation often wait for each
            other (measured on 2 cores: 2 threads were ~5x slower in the median pass).

    Raises:
        ValueError: If an argument has the wrong type, shape or range; the message says
            what was expected.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, *,
                 shuffle: bool = False, resize: int | None = None, normalize: bool = True,
                 augment: bool = False, drop_last: bool = False,
                 device: torch.device | str | None = None, seed: int = 0,
                 max_shift: int = 2, mean: float = FASHION_MNIST_MEAN,
                 std: float = FASHION_MNIST_STD, num_threads: int | None = 1) -> None:
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 \
                or images.dim() != 3:
            got = (f"a {images.dtype} tensor of shape {tuple(images.shape)}"
                   if isinstance(images, torch.Tensor) else type(images).__name__)
            raise ValueError(f"images must be a uint8 tensor of shape (N, H, W), got {got}")
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 \
                or labels.dim() != 1:
            got = (f"a {labels.dtype} tensor of shape {tuple(labels.shape)}"
                   if isinstance(labels, torch.Tensor) else type(labels).__name__)
            raise ValueError(f"labels must be an int64 tensor of shape (N,), got {got} "
                             f"(convert with labels.long())")
        if len(labels) != len(images):
            raise ValueError(f"images and labels must hold the same number of examples, "
                             f"got {len(images)} images and {len(labels)} labels")
        if len(images) == 0:
            raise ValueError("images must hold at least one example, got none")
        check_positive_int("batch_size", batch_size)
        check_positive_int("resize", resize, allow_none=True)
        if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
            raise ValueError(f"max_shift must be a non-negative integer, got {max_shift!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        check_positive_int("num_threads", num_threads, allow_none=True)
        if not std > 0:
            raise ValueError(f"std must be positive, got {std!r}")
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
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.resize = resize
        self.normalize = bool(normalize)
        self.augment = bool(augment)
        self.drop_last = bool(drop_last)
        self.seed = seed
        self.max_shift = max_shift
        self.num_threads = num_threads
        self._scale, self._shift = 1.0 / (255.0 * std), mean / std
        self._next_epoch = 0      # the epoch the next iter() runs
        self._next_batch = 0      # the batch it starts from (nonzero after a mid-epoch resume)
        self._position: tuple[int, int] | None = None   # (epoch, batches yielded) while iterating

    # -- sizes

    @property
    def num_examples(self) -> int:
        """The number of examples in the data set (N)."""
        return len(self.images)

    def __len__(self) -> int:
        """The number of batches per epoch."""
        n, b = self.num_examples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __repr__(self) -> str:
        size = self.resize or f"{self.images.shape[1]}x{self.images.shape[2]}"
        return (f"InMemoryLoader({self.num_examples} examples, batch_size={self.batch_size}, "
                f"{len(self)} batches, size={size}, shuffle={self.shuffle}, "
                f"augment={self.augment}, device={self.device})")

    # -- the order of an epoch

    def _epoch_generator(self, epoch: int) -> torch.Generator:
        return torch.Generator().manual_seed(_mixed_seed(self.seed, _SHUFFLE_KEY, epoch))

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The order (on the CPU, int64 (N,)) in which epoch ``epoch`` visits the examples."""
        if not self.shuffle:
            return torch.arange(self.num_examples)
        return torch.randperm(self.num_examples, generator=self._epoch_generator(epoch))

    def _epoch_plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None,
                                               torch.Tensor | None]:
        """The order and, with ``augment``, each position's flip (N,) and shift (N, 2)."""
        n = self.num_examples
        gen = self._epoch_generator(epoch)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        if not self.augment:
            return order.to(self.device), None, None
        flip = torch.rand(n, generator=gen) < 0.5                               # (N,)
        shift = torch.randint(0, 2 * self.max_shift + 1, (n, 2), generator=gen)  # (N, 2)
        return order.to(self.device), flip.to(self.device), shift.to(self.device)

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

    def _make_batch(self, idx: torch.Tensor, flip: torch.Tensor | None,
                    shift: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images.index_select(0, idx)                                 # (B, H, W) uint8
        if flip is not None and shift is not None:
            x = self._augment(x, flip, shift)
        x = x.unsqueeze(1)                                                   # (B, 1, H, W)
        if self.resize is not None and x.shape[-2:] != (self.resize, self.resize):
            x = self._resize(x)                                              # (B, 1, S, S)
        if not self.normalize:    # x / 255, bit for bit what ToTensor computes
            return x.float().div_(255), self.labels.index_select(0, idx)
        # (x / 255 - mean) / std as x * scale - shift: one multiply and one subtract.
        return x.float().mul_(self._scale).sub_(self._shift), self.labels.index_select(0, idx)

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

    def __iter__(self):
        epoch, start = self._next_epoch, self._next_batch
        self._next_epoch, self._next_batch = epoch + 1, 0
        return self._iterate(epoch, start)

    def _iterate(self, epoch: int, start: int):
        order, flip, shift = self._epoch_plan(epoch)
        b = self.batch_size
        self._position = (epoch, start)
        threads = self.num_threads if self.device.type == "cpu" else None
        for k in range(start, len(self)):
            sl = slice(k * b, (k + 1) * b)
            with _torch_threads(threads):
                batch = self._make_batch(order[sl],
                                         None if flip is None else flip[sl],
                                         None if shift is None else shift[sl])
            self._position = (epoch, k + 1)
            yield batch
        self._position = None

    def state_dict(self) -> dict:
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

    def load_state_dict(self, state: dict) -> None:
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


def stratified_subset(labels: torch.Tensor, size: int, seed: int = 0) -> torch.Tensor:
    """Indices (int64, ascending) of a seeded subset holding each class in proportion.

    Within each class the examples are taken in a random order drawn from ``seed``; the
    classes are interleaved so that every prefix is stratified (for Fashion-MNIST's equal
    classes, the class counts of the subset differ by at most one).

    Raises:
        ValueError: If ``size`` is not an integer in 1..len(labels).
    """
    n = len(labels)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= n:
        raise ValueError(f"the subset size must be an integer from 1 to {n}, got {size!r}")
    labels = labels.cpu().long()
    gen = torch.Generator().manual_seed(_mixed_seed(seed, _SUBSET_KEY, n))
    perm = torch.randperm(n, generator=gen)
    by_class = perm[torch.argsort(labels[perm], stable=True)]    # random order within class
    cls = labels[by_class]
    counts = torch.bincount(cls)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n) - starts[cls]                         # rank within the class
    key = (rank.double() + 0.5) / counts[cls].double()           # how far into its class
    chosen = by_class[torch.argsort(key, stable=True)[:size]]
    return torch.sort(chosen).values


def load_data_fashion_mnist_fast(batch_size: int, resize: int | None = None,
                                 root: str | os.PathLike[str] | None = None, *,
                                 device: torch.device | str | None = None,
                                 augment: bool = False, normalize: bool = True,
                                 seed: int = 0, train_subset: int | None = None,
                                 test_subset: int | None = None, max_shift: int = 2,
                                 ) -> tuple[InMemoryLoader, InMemoryLoader]:
    """Fashion-MNIST as two :class:`InMemoryLoader` (the fast path; same data, same shapes).

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
            drawn from ``seed``), or None for all 60,000.
        test_subset: The same for the 10,000 test examples.
        max_shift: Largest shift of ``augment``, in pixels (0: flips only).

    Returns:
        ``(train_iter, test_iter)``: the training set shuffled (and augmented if asked),
        the test set in order; neither drops examples.
    """
    check_positive_int("batch_size", batch_size)
    check_positive_int("resize", resize, allow_none=True)
    check_positive_int("train_subset", train_subset, allow_none=True)
    check_positive_int("test_subset", test_subset, allow_none=True)
    loaders = []
    for train, subset in ((True, train_subset), (False, test_subset)):
        images, labels = load_fashion_mnist_tensors(train, root)
        if subset is not None and subset < len(labels):
            idx = stratified_subset(labels, subset, seed)
            images, labels = images[idx], labels[idx]
        elif subset is not None and subset > len(labels):
            split = "train" if train else "test"
            raise ValueError(f"{split}_subset must be at most {len(labels)}, got {subset}")
        loaders.append(InMemoryLoader(images, labels, batch_size, shuffle=train,
                                      resize=resize, normalize=normalize,
                                      augment=augment and train, device=device, seed=seed,
                                      max_shift=max_shift))
    return loaders[0], loaders[1]
