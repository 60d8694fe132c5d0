"""The package reads like a course: the teaching core apart from the machinery, short
functions, imports at the top, a residual block that is the block and nothing else."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import d2l_resnet
from d2l_resnet.model import Residual

SRC = Path(d2l_resnet.__file__).parent
MODULES = sorted(SRC.rglob("*.py"))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _body_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function's body, its docstring left out."""
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    return (body[-1].end_lineno or 0) - body[0].lineno + 1 if body else 0


def test_no_function_body_is_longer_than_60_lines() -> None:
    long = {f"{path.relative_to(SRC)}:{fn.name}": _body_lines(fn)
            for path in MODULES for fn in ast.walk(_tree(path))
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
            and _body_lines(fn) > 60}
    assert long == {}


def test_the_residual_blocks_forward_is_the_block() -> None:
    source = inspect.getsource(Residual.forward).strip().splitlines()
    assert len(source) <= 10, "\n".join(source)
    assert "raise" not in "\n".join(source)


def test_the_core_never_imports_the_machinery_and_imports_sit_at_the_top() -> None:
    local_imports, core_to_extras = [], []
    for path in MODULES:
        in_extras = "extras" in path.relative_to(SRC).parts or path.name == "__main__.py"
        for node in ast.walk(_tree(path)):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names])
            ours = [n for n in names if n.startswith("d2l_resnet")]
            if ours and node.col_offset > 0:
                local_imports.append(f"{path.relative_to(SRC)}:{node.lineno}")
            if not in_extras and any(n.startswith("d2l_resnet.extras") for n in ours):
                core_to_extras.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert core_to_extras == []
    assert len(local_imports) <= 5, local_imports


def test_training_in_one_process_imports_nothing_distributed() -> None:
    source = (SRC / "train.py").read_text()
    assert "distributed" not in "\n".join(
        line for line in source.splitlines() if line.startswith(("import", "from")))
    assert "torch.distributed" not in source and "dist." not in source
