"""Finding, verifying and loading Fashion-MNIST, on a tiny synthetic IDX data set."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import pytest
import torch

from d2l_resnet import data
from d2l_resnet.data import DatasetSpec, prepare_fashion_mnist, read_idx
from d2l_resnet.profiles import get_profile

SIZES = {"train": 6, "t10k": 4}


def _idx_bytes(array: torch.Tensor) -> bytes:
    header = bytes([0, 0, 0x08, array.dim()])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.numpy().tobytes()


def _tiny_arrays() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    arrays = {}
    for prefix, n in SIZES.items():
        arrays[f"{prefix}-images-idx3-ubyte"] = torch.randint(0, 256, (n, 28, 28), generator=g,
                                                              dtype=torch.uint8)
        arrays[f"{prefix}-labels-idx1-ubyte"] = torch.arange(n, dtype=torch.uint8) % 10
    return arrays


@pytest.fixture
def tiny() -> tuple[DatasetSpec, dict[str, bytes]]:
    """A synthetic data set in the IDX format, and a spec with its own checksums."""
    blobs = {name: _idx_bytes(a) for name, a in _tiny_arrays().items()}
    spec = DatasetSpec({name: (tuple(_tiny_arrays()[name].shape),
                               hashlib.sha256(blob).hexdigest())
                        for name, blob in blobs.items()})
    return spec, blobs


def _write(folder: Path, blobs: dict[str, bytes], gz: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in blobs.items():
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
        else:
            (folder / name).write_bytes(blob)
    return folder


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    return {"project": tmp_path / "project-data", "system": tmp_path / "system",
            "user": tmp_path / "user"}


def _prepare(spec: DatasetSpec, dirs: dict[str, Path], root: Path | None = None,
             ) -> data.DataSource:
    return prepare_fashion_mnist(root, download=False, spec=spec, data_dir=dirs["project"],
                                 system_dir=dirs["system"])


def test_read_idx_round_trip(tmp_path: Path) -> None:
    array = _tiny_arrays()["train-images-idx3-ubyte"]
    path = tmp_path / "x"
    path.write_bytes(_idx_bytes(array))
    assert torch.equal(read_idx(path), array)
    with pytest.raises(ValueError, match=r"shape \(6, 28, 28\), expected \(5, 28, 28\)"):
        read_idx(path, (5, 28, 28))


@pytest.mark.parametrize("gz", [False, True])
def test_system_folder_is_used_and_gz_unpacked(tiny, dirs, gz: bool) -> None:
    spec, blobs = tiny
    _write(dirs["system"], blobs, gz)
    source = _prepare(spec, dirs)
    assert source.origin.startswith("the Debian package")
    assert source.unpacked is gz
    expected_dir = dirs["project"] / "FashionMNIST" / "raw" if gz else dirs["system"]
    assert source.raw_dir == expected_dir
    for name, blob in blobs.items():
        assert (source.raw_dir / name).read_bytes() == blob


def test_project_folder_comes_before_system(tiny, dirs) -> None:
    spec, blobs = tiny
    _write(dirs["system"], blobs, gz=True)
    _write(dirs["project"] / "FashionMNIST" / "raw", blobs, gz=False)
    assert _prepare(spec, dirs).origin == "the project's data folder"


def test_env_variable_comes_before_project(tiny, dirs, monkeypatch) -> None:
    spec, blobs = tiny
    _write(dirs["project"] / "FashionMNIST" / "raw", blobs, gz=False)
    _write(dirs["user"] / "FashionMNIST" / "raw", blobs, gz=False)
    monkeypatch.setenv(data.DATA_ENV, str(dirs["user"]))
    source = _prepare(spec, dirs)
    assert source.origin == f"${data.DATA_ENV}"
    assert source.raw_dir == dirs["user"] / "FashionMNIST" / "raw"


def test_root_comes_before_env_variable(tiny, dirs, monkeypatch, tmp_path) -> None:
    spec, blobs = tiny
    _write(dirs["user"], blobs, gz=True)
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path / "elsewhere"))
    source = _prepare(spec, dirs, root=dirs["user"])
    assert source.origin == "the root argument"
    assert source.found_at == dirs["user"]


def test_named_folder_without_data_is_an_error(tiny, dirs, monkeypatch) -> None:
    spec, blobs = tiny
    _write(dirs["system"], blobs, gz=True)  # would be found, but the user named a folder
    monkeypatch.setenv(data.DATA_ENV, str(dirs["user"]))
    with pytest.raises(FileNotFoundError, match=r"\$D2L_RESNET_DATA names .*user"):
        _prepare(spec, dirs)


def test_nothing_found_lists_every_way(tiny, dirs) -> None:
    spec, _ = tiny
    with pytest.raises(FileNotFoundError) as info:
        _prepare(spec, dirs)
    message = str(info.value)
    for needle in ("apt-get install dataset-fashion-mnist", "D2L_RESNET_DATA", "root=",
                   str(dirs["project"]), str(dirs["system"]), "download"):
        assert needle in message


def test_truncated_gz_member_names_the_file_and_keeps_nothing(tiny, dirs) -> None:
    spec, blobs = tiny
    name = "train-images-idx3-ubyte"
    blobs = dict(blobs, **{name: blobs[name][:-100]})  # truncated before compression
    _write(dirs["system"], blobs, gz=True)
    with pytest.raises(ValueError, match=rf"{name}.gz \(decompressed\) is truncated.*delete it"):
        _prepare(spec, dirs)
    raw = dirs["project"] / "FashionMNIST" / "raw"
    assert not (raw / name).exists()
    assert not [p for p in raw.iterdir() if p.name.startswith(f".{name}")]


def test_broken_gzip_stream_is_reported(tiny, dirs) -> None:
    spec, blobs = tiny
    _write(dirs["system"], blobs, gz=True)
    path = dirs["system"] / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte.gz could not be decompressed"):
        _prepare(spec, dirs)


def test_corrupt_file_fails_the_checksum(tiny, dirs) -> None:
    spec, blobs = tiny
    name = "t10k-images-idx3-ubyte"
    corrupt = bytearray(blobs[name])
    corrupt[-1] ^= 0xFF  # same size, one pixel changed
    _write(dirs["user"], dict(blobs, **{name: bytes(corrupt)}), gz=False)
    with pytest.raises(ValueError, match=rf"{name} has the right size but the wrong SHA-256"):
        _prepare(spec, dirs, root=dirs["user"])


def test_bad_labels_and_bad_header(tiny, dirs) -> None:
    spec, blobs = tiny
    labels = torch.tensor([0, 1, 2, 3], dtype=torch.uint8)
    labels[2] = 12
    _write(dirs["user"], dict(blobs, **{"t10k-labels-idx1-ubyte": _idx_bytes(labels)}), gz=False)
    with pytest.raises(ValueError, match=r"label 12, expected labels 0\.\.9"):
        _prepare(DatasetSpec({k: (v[0], None) for k, v in spec.files.items()}), dirs,
                 root=dirs["user"])
    (dirs["user"] / "t10k-labels-idx1-ubyte").write_bytes(b"PK\x03\x04junk")
    with pytest.raises(ValueError, match="not an IDX file"):
        _prepare(spec, dirs, root=dirs["user"])


def test_labels_text() -> None:
    assert data.get_fashion_mnist_labels(torch.tensor([0, 9])) == ["T-shirt/top", "Ankle boot"]
    assert len(data.FASHION_MNIST_LABELS) == 10
    with pytest.raises(ValueError, match=r"0\.\.9"):
        data.get_fashion_mnist_labels([10])


def test_workers_leave_a_core_for_training(monkeypatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    assert data.get_dataloader_workers() == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(32)), raising=False)
    assert data.get_dataloader_workers() == 4


def test_bad_loader_arguments() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        data.load_data_fashion_mnist(0)
    with pytest.raises(ValueError, match="resize"):
        data.load_data_fashion_mnist(8, resize=-3)


def test_data_command_reports_a_missing_folder(tmp_path, capsys) -> None:
    from d2l_resnet.extras.cli import main

    assert main(["data", "--root", str(tmp_path), "--no-download"]) == 2
    err = capsys.readouterr().err
    assert "does not hold Fashion-MNIST" in err and "apt-get install" in err


# The real data set, as `make test` prepares it (scripts/get-data.sh).
def test_real_fashion_mnist() -> None:
    try:
        source = prepare_fashion_mnist(download=False)
    except FileNotFoundError as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Fashion-MNIST not prepared here (run `make data`): {err}")
    images, labels = data.load_fashion_mnist_tensors(train=False)
    assert images.shape == (10000, 28, 28) and images.dtype == torch.uint8
    assert torch.bincount(labels).tolist() == [1000] * 10
    train_iter, test_iter = data.load_data_fashion_mnist(256, root=source.raw_dir)
    X, y = next(iter(test_iter))
    assert X.shape == (256, 1, 28, 28) and X.dtype == torch.float32
    assert float(X.min()) >= 0.0 and float(X.max()) <= 1.0
    assert torch.equal(y, labels[:256])
    assert len(train_iter) == 235 and len(test_iter) == 40


def test_the_fast_loader_names_its_splits_and_holds_the_validation_split_out() -> None:
    try:
        prepare_fashion_mnist(download=False)
    except FileNotFoundError as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Fashion-MNIST not prepared here (run `make data`): {err}")
    splits = data.load_data_fashion_mnist_fast(256, validation=5000, train_subset=1000,
                                               test_subset=500)
    assert (splits.train.num_examples, splits.val.num_examples,
            splits.test.num_examples) == (1000, 5000, 500)
    assert torch.bincount(splits.val.labels).tolist() == [500] * 10      # stratified
    assert (splits.train.split, splits.val.split, splits.test.split) == ("train", "val",
                                                                          "test")
    whole = data.load_data_fashion_mnist_fast(256)
    assert whole.val is None and whole.train.num_examples == 60_000
    # The validation images are held out: the training split has 55,000 without a subset.
    assert data.load_data_fashion_mnist_fast(256, validation=5000).train.num_examples == \
        55_000
    # A profile's random erasing reaches the training loader, and only it.
    erasing = get_profile("quick").replace(erase=0.5, validation=500)
    splits = data.load_data_for_profile(erasing)
    assert (splits.train.erase, splits.val.erase, splits.test.erase) == (0.5, 0.0, 0.0)
