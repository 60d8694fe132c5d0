"""The order in which the test files and notebooks run, and where their processes keep
temporary files.

``make test`` runs two pytest workers, each taking one whole file (or notebook) at a
time, in the order collected (``--dist loadscope --no-loadscope-reorder``). The longest
go first, so that the two workers finish together instead of one waiting for the other
at the end. Seconds on 2 cores under ``make test`` (its 100 slowest items, summed per
file; the whole run took 12.7 minutes on a 2-core AMD EPYC):
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

LONGEST_FIRST = [
    "tests/test_distributed.py",                           # 324 s: torchrun runs
    "tests/test_lab.py",                                   # 293 s: JupyterLab, Chromium
    "notebooks/06_training_on_several_devices.ipynb",      # 243 s
    "tests/test_site.py",                                  # 187 s: Chromium
    "notebooks/04_training.ipynb",                         # 104 s
    "notebooks/05_why_resnets_train_deep.ipynb",           # 97 s
    "notebooks/03_fashion_mnist.ipynb",                    # 62 s
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the longest files first, each file's tests (each notebook's cells) in order."""
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)
    items.sort(key=rank)    # stable: the order within a file stays as collected


def pytest_configure(config: pytest.Config) -> None:
    """Give the processes the tests start (notebook kernels, torchrun, JupyterLab) a
    temporary folder of this run's own, removed at its end: nbval stops each kernel by
    force, so a notebook's ``TemporaryDirectory`` (notebook 04 keeps a 90 MB checkpoint
    there) is never cleaned up by the kernel itself."""
    folder = tempfile.mkdtemp(prefix="d2l-resnet-tests-")
    config.stash[_TMPDIR] = (folder, os.environ.get("TMPDIR"))
    os.environ["TMPDIR"] = folder


def pytest_unconfigure(config: pytest.Config) -> None:
    folder, before = config.stash.get(_TMPDIR, (None, None))
    if folder is None:
        return
    if before is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = before
    shutil.rmtree(folder, ignore_errors=True)


_TMPDIR = pytest.StashKey[tuple[str, "str | None"]]()
