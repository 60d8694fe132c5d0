"""Fashion-MNIST: found offline or online, verified, and read into tensors.

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

import gzip
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "DATA_ENV",
    "DEBIAN_DIR",
    "FASHION_MNIST",
    "FASHION_MNIST_LABELS",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "DataSource",
    "DatasetSpec",
    "get_fashion_mnist_labels",
    "load_fashion_mnist_tensors",
    "prepare_fashion_mnist",
    "project_data_dir",
    "read_idx",
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
    top = Path(__file__).resolve().parents[3]
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
            import torchvision  # heavy (seconds): only a download needs it

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
