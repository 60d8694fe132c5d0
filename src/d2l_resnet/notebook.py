"""Small helpers for the notebooks: show the package's code, say what produced a run."""

from __future__ import annotations

import importlib.metadata
import inspect
import os
import platform
from collections.abc import Iterable
from typing import Any

import torch

from d2l_resnet.devices import get_device, resolve_precision
from d2l_resnet.profiles import get_profile

__all__ = ["progress_bar", "run_info", "show_source"]


def progress_bar(iterable: Iterable, enabled: bool | None = None, *,
                 total: int | None = None, desc: str | None = None,
                 unit: str = "it") -> Iterable:
    """``iterable`` wrapped in a ``tqdm.auto`` progress bar, for people running by hand.

    Args:
        iterable: What to iterate over.
        enabled: Show the bar. None: show it unless the environment sets
            ``TQDM_DISABLE=1``, as test and export runs do (tqdm's notebook bar ignores
            that variable, so it is read here).
        total: Length of ``iterable``, if it has none.
        desc: Text before the bar.
        unit: What one step is called.
    """
    if enabled is None:
        enabled = os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("1", "true",
                                                                              "yes")
    if not enabled:
        return iterable
    from tqdm.auto import tqdm  # heavy: it imports ipywidgets; only when a bar is shown

    return tqdm(iterable, total=total, desc=desc, leave=False, unit=unit)


def show_source(obj: Any) -> Any:
    """The source code of a class or function of the package, highlighted for Jupyter.

    The notebooks show the code they teach from the package itself, so there is one copy
    and it cannot drift from what runs.
    """
    from IPython.display import Code  # only in a notebook's kernel

    try:
        source = inspect.getsource(obj)
    except (TypeError, OSError) as err:
        raise ValueError(
            f"cannot show the source of {obj!r}: pass a class or function defined in Python"
        ) from err
    return Code(source, language="python")


def run_info(profile: str | None = None) -> str:
    """One line naming the profile, the versions, the device and the precision that
    produced a notebook's outputs."""
    chosen = get_profile(profile)
    device = get_device("auto")
    precision = resolve_precision(chosen.recipe.precision, device)
    return (
        f"profile {chosen.name} | d2l_resnet {importlib.metadata.version('d2l-resnet')} | "
        f"Python {platform.python_version()} | torch {torch.__version__} | "
        f"torchvision {importlib.metadata.version('torchvision')} | "
        f"device {device.type} | {precision}"
    )
