"""The notebook helpers: progress bars, shown source, run information."""

from __future__ import annotations

import pytest

from d2l_resnet import Residual
from d2l_resnet.notebook import progress_bar, run_info, show_source


@pytest.mark.parametrize(("env", "enabled", "bar"), [("1", None, False), ("", None, True),
                                                     ("true", True, True), ("", False, False)])
def test_progress_bar_follows_argument_then_environment(monkeypatch, env, enabled, bar) -> None:
    import tqdm.auto

    made = []
    monkeypatch.setattr(tqdm.auto, "tqdm", lambda it, **kw: made.append(kw) or it)
    monkeypatch.setenv("TQDM_DISABLE", env)
    assert list(progress_bar(range(3), enabled, desc="d")) == [0, 1, 2]
    assert bool(made) == bar


def test_show_source_is_the_package_code() -> None:
    code = show_source(Residual)
    assert code.data.startswith("class Residual(nn.Module):")
    with pytest.raises(ValueError, match="class or function defined in Python"):
        show_source(len)


def test_run_info_names_profile_and_versions() -> None:
    line = run_info("quick")
    assert line.startswith("profile quick | d2l_resnet ") and "torch " in line
    with pytest.raises(ValueError, match="unknown profile"):
        run_info("fast")
