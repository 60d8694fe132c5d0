"""environment.yml (conda) and pyproject.toml (pip) name the same runtime packages, and
the same course-site builder."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

TOP = Path(__file__).resolve().parents[1]
# conda-forge names that differ from PyPI's.
CONDA_TO_PIP = {"pytorch": "torch"}
# The dev extra's packages that build the course site, which conda users get too.
SITE = ("sphinx", "myst-nb", "sphinx-book-theme", "jupyter-server-mathjax")


def _split(requirement: str) -> tuple[str, str]:
    match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*(.*?)\s*", requirement)
    assert match, f"cannot parse requirement {requirement!r}"
    return match.group(1).lower(), match.group(2).replace(" ", "")


def _conda() -> dict[str, str]:
    env = yaml.safe_load((TOP / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    out = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            assert dep == {"pip": ["-e ."]}, f"unexpected pip section {dep!r}"
            continue
        name, spec = _split(dep)
        if name not in {"python", "pip"}:
            out[CONDA_TO_PIP.get(name, name)] = spec
    return out


def _pyproject() -> tuple[dict[str, str], str]:
    project = tomllib.loads((TOP / "pyproject.toml").read_text())["project"]
    return dict(_split(r) for r in project["dependencies"]), project["requires-python"]


def _site_builder() -> dict[str, str]:
    """The dev extra's course-site packages, their bounds without the markers."""
    dev = tomllib.loads((TOP / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["dev"]
    found = dict(_split(r.split(";")[0]) for r in dev)
    return {name: found[name] for name in SITE}


def test_same_runtime_packages_and_bounds() -> None:
    pip_deps, _ = _pyproject()
    assert _conda() == {**pip_deps, **_site_builder()}


def test_same_python_bound() -> None:
    env = yaml.safe_load((TOP / "environment.yml").read_text())
    python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert python == [f"python{_pyproject()[1]}"]


def test_the_user_named_packages_are_there() -> None:
    pip_deps, _ = _pyproject()
    for name in ("torch", "torchvision", "jupyterlab", "matplotlib", "nbval", "jupytext"):
        assert name in pip_deps
