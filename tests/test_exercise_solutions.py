"""The exercise solutions hidden in the notebooks' markdown run and pass their own checks.

Solutions sit in collapsible ``<details>`` blocks of markdown cells, so nbval never runs
them. This test extracts each ```` ```python ```` block inside a ``<details>`` block and
executes it in a fresh namespace; the solutions end in ``assert`` statements, so a
solution that no longer matches the package (or is simply wrong) fails here.
"""

from __future__ import annotations

import json
import linecache
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
DETAILS = re.compile(r"<details>(.*?)</details>", re.DOTALL)
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)

# Notebook -> how many solutions with code it must hold (guards against a silent zero).
EXPECTED = {"02_resnet18.ipynb": 5, "05_why_resnets_train_deep.ipynb": 4}


def _solutions(notebook: str) -> list[str]:
    cells = json.loads((NOTEBOOKS / notebook).read_text(encoding="utf-8"))["cells"]
    blocks = []
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        source = "".join(cell["source"])
        for details in DETAILS.findall(source):
            blocks.extend(PYTHON_BLOCK.findall(details))
    return blocks


CASES = [(nb, i, code) for nb in EXPECTED for i, code in enumerate(_solutions(nb))]


@pytest.mark.parametrize("notebook", list(EXPECTED))
def test_notebook_has_its_solutions(notebook: str) -> None:
    assert len(_solutions(notebook)) == EXPECTED[notebook]


@pytest.mark.parametrize(("notebook", "index", "code"), CASES,
                         ids=[f"{nb}-solution{i + 1}" for nb, i, _ in CASES])
def test_solution_runs_and_passes_its_checks(notebook: str, index: int, code: str) -> None:
    filename = f"{notebook}:solution{index + 1}"
    # Register the source so that a failing assert shows its line in the traceback.
    linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
    namespace: dict[str, object] = {"__name__": f"solution_{index + 1}"}
    exec(compile(code, filename, "exec"), namespace)
