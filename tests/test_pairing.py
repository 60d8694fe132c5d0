"""Every notebook is a .py (jupytext percent) paired with an .ipynb carrying a full run.

The check regenerates each side from the other and compares them; file times are never
consulted.
"""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PY_FILES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
IPYNB_FILES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
_HEADER = re.compile(r"\A# ---\n(?:#.*\n)*?# ---\n\n?")


def _cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def _body(py_text: str) -> str:
    """The percent-format text without its YAML header (which names jupytext's version)."""
    return _HEADER.sub("", py_text, count=1)


def test_there_are_notebooks() -> None:
    assert PY_FILES, f"no notebooks found in {NOTEBOOKS}"


@pytest.mark.parametrize("py", PY_FILES, ids=lambda p: p.name)
def test_py_has_ipynb_in_sync(py: Path) -> None:
    ipynb = py.with_suffix(".ipynb")
    assert ipynb.exists(), f"{py.name} has no paired {ipynb.name}: run jupytext --sync {py}"
    from_py = jupytext.read(py)
    from_ipynb = jupytext.read(ipynb)
    assert _cells(from_ipynb) == _cells(from_py), (
        f"{py.name} and {ipynb.name} differ: edit the .py, then run jupytext --sync {py} "
        f"and re-execute the notebook")
    regenerated = jupytext.writes(from_ipynb, fmt="py:percent")
    assert _body(regenerated) == _body(py.read_text()), (
        f"{ipynb.name} regenerated as a .py differs from {py.name}: run jupytext --sync")
    formats = from_ipynb.metadata.get("jupytext", {}).get("formats", "")
    assert "py:percent" in formats and "ipynb" in formats, (
        f"{ipynb.name} is not paired (metadata jupytext.formats = {formats!r}): run "
        f"jupytext --set-formats ipynb,py:percent {ipynb}")


@pytest.mark.parametrize("ipynb", IPYNB_FILES, ids=lambda p: p.name)
def test_ipynb_has_py(ipynb: Path) -> None:
    assert ipynb.with_suffix(".py").exists(), f"{ipynb.name} has no paired .py"


@pytest.mark.parametrize("ipynb", IPYNB_FILES, ids=lambda p: p.name)
def test_ipynb_carries_a_full_top_to_bottom_run(ipynb: Path) -> None:
    nb = jupytext.read(ipynb)
    counts = [c.get("execution_count") for c in nb.cells
              if c.cell_type == "code" and c.source.strip()]
    assert counts and None not in counts, f"{ipynb.name} has code cells never executed"
    assert counts == list(range(1, len(counts) + 1)), (
        f"{ipynb.name} was not executed top to bottom in one run (execution counts "
        f"{counts}): re-execute it with jupyter nbconvert --execute --inplace")
