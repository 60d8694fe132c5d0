"""Checkpoints (and other files) written atomically, read with a clear message when
they cannot be used.

A checkpoint of :func:`d2l_resnet.train.train` holds the weights, the optimizer and
schedule, the epoch, the whole recipe (``asdict(recipe)``), the history, the random
states and the loader's position, so that a resumed run ends with the same metrics as
one that was never interrupted.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

__all__ = ["FORMAT", "load_checkpoint", "rng_state", "save_checkpoint", "set_rng_state",
           "write_atomically"]

#: The layout of the checkpoints :func:`d2l_resnet.train.train` writes. Format 1 (before
#: the recipe was one object) stored only some of the recipe's settings.
FORMAT = 2


def write_atomically(path: str | os.PathLike[str], write: Callable[[IO[Any]], object],
                     binary: bool = False) -> Path:
    """Create ``path`` with ``write(file)`` atomically: a temporary file beside it, then a
    rename. A run killed while writing leaves the previous file intact, never half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)   # as open() would create it, not mkstemp's 0o600
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"newline": ""})
                       ) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` with ``torch.save``, atomically (see :func:`write_atomically`)."""
    return write_atomically(path, lambda f: torch.save(state, f), binary=True)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
                    ) -> dict[str, Any]:
    """Read a checkpoint written by :func:`d2l_resnet.train.train` (any format).

    Its ``"model"`` entry loads into ``resnet18()`` whatever the format; resuming needs
    the current :data:`FORMAT` (``train`` says so otherwise).

    Raises:
        FileNotFoundError: If there is no file at ``path``.
        ValueError: If the file is not a readable checkpoint of this package.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train without --resume first, or "
                                f"pass the path of an existing checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises many kinds for a damaged file
        raise ValueError(f"cannot read the checkpoint {path} ({type(err).__name__}: {err}); "
                         f"it is damaged or not a checkpoint: delete it or pass another "
                         f"path") from err
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise ValueError(f"{path} is not a checkpoint written by d2l_resnet.train (expected a "
                         f"dict with 'model' and 'epoch'); delete it or pass another path")
    state.setdefault("format", 1)
    return state


def rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and PyTorch's generators (CUDA's too, if any)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
