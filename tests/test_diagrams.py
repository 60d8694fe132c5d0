"""The diagrams of d2l_resnet.extras.diagrams: well-formed, legible, computed, and committed
as drawn."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from itertools import pairwise
from pathlib import Path

import pytest

from d2l_resnet import resnet18, summarize
from d2l_resnet.extras.diagrams import (
    FIGURES,
    NESTED,
    NON_NESTED,
    main,
    residual_block_svg,
    resnet18_stages_svg,
    write_figures,
)

COMMITTED = Path(__file__).resolve().parents[1] / "notebooks" / "figures"
SVG_NS = "{http://www.w3.org/2000/svg}"


def _texts(svg: str) -> list[str]:
    """The text of every ``<text>`` element, subscripts joined in."""
    root = ET.fromstring(svg)
    return ["".join(t.itertext()) for t in root.iter(f"{SVG_NS}text")]


@pytest.mark.parametrize("name", list(FIGURES))
def test_committed_figure_is_what_the_code_draws(name: str) -> None:
    path = COMMITTED / name
    assert path.is_file(), (f"{path} is missing: run python -m d2l_resnet.extras.diagrams "
                            "notebooks/figures")
    assert path.read_text(encoding="utf-8") == FIGURES[name]() + "\n", (
        f"{name} differs from what d2l_resnet.extras.diagrams draws now: run "
        "python -m d2l_resnet.extras.diagrams notebooks/figures and commit the result")


def test_no_stray_figures_are_committed() -> None:
    assert sorted(p.name for p in COMMITTED.glob("*.svg")) == sorted(FIGURES)


@pytest.mark.parametrize("name", list(FIGURES))
def test_figure_is_well_formed_and_legible(name: str) -> None:
    svg = FIGURES[name]()
    assert svg == FIGURES[name](), "the same call must give the same bytes"
    root = ET.fromstring(svg)              # raises on malformed XML
    assert root.tag == f"{SVG_NS}svg"
    x0, y0, width, height = (float(v) for v in root.attrib["viewBox"].split())
    assert (x0, y0) == (0, 0) and 600 <= width <= 700 and 100 <= height <= 600
    assert float(root.attrib["width"]) == width and float(root.attrib["height"]) == height
    assert root.find(f"{SVG_NS}title").text
    sizes = [float(el.attrib["font-size"]) for el in root.iter()
             if el.tag in (f"{SVG_NS}text", f"{SVG_NS}tspan")]
    assert sizes and min(sizes) >= 11, f"{name}: a label smaller than 11 px"
    texts = _texts(svg)
    assert texts and all(t.strip() for t in texts)
    assert not re.search(r'\bid="', svg), "ids would clash when several SVGs share a page"
    assert "href" not in svg and "<script" not in svg


def test_residual_block_variants() -> None:
    identity, projection = _texts(residual_block_svg("identity")), _texts(
        residual_block_svg("1x1"))
    assert "1x1 conv, stride 2" in projection and "1x1 conv, stride 2" not in identity
    for texts in (identity, projection):
        assert texts.count("BN") == 2 and texts.count("ReLU") == 2
    with pytest.raises(ValueError, match="shortcut"):
        residual_block_svg("projection")


@pytest.mark.parametrize("size", [28, 96, 224])
def test_stage_shapes_come_from_the_network(size: int) -> None:
    shapes = [t for t in _texts(resnet18_stages_svg(size)) if t.startswith("(")]
    expected = [str(row.output_shape[1:]) for row in summarize(resnet18(), (1, 1, size, size))]
    assert shapes == [str((1, size, size)), *expected]
    assert f"{size}x{size}" in _texts(resnet18_stages_svg(size))[0]


def test_stage_figure_rejects_a_size_resnet18_cannot_take() -> None:
    with pytest.raises(ValueError, match="too small"):
        resnet18_stages_svg(16)


def _inside(point: tuple[float, float], ellipse: tuple[float, float, float, float]) -> bool:
    cx, cy, rx, ry = ellipse
    return ((point[0] - cx) / rx) ** 2 + ((point[1] - cy) / ry) ** 2 < 1


def _boundary(ellipse: tuple[float, float, float, float], n: int = 72):
    cx, cy, rx, ry = ellipse
    return [(cx + rx * math.cos(2 * math.pi * k / n), cy + ry * math.sin(2 * math.pi * k / n))
            for k in range(n)]


def test_nested_classes_are_drawn_nested_and_the_others_not() -> None:
    for small, large in pairwise(NESTED):
        assert all(_inside(p, large) for p in _boundary(small))
    for small, large in pairwise(NON_NESTED):
        assert not all(_inside(p, large) for p in _boundary(small))


def test_write_figures_and_the_command(tmp_path: Path, capsys) -> None:
    written = write_figures(tmp_path / "a")
    assert [p.name for p in written] == list(FIGURES)
    assert main([str(tmp_path / "b")]) == 0
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(FIGURES)
    assert main([]) == 2 and "usage" in capsys.readouterr().err


def test_labels_use_he_et_al_notation() -> None:
    """F is the residual branch, H the mapping a block should compute (H(X) = F(X) + X);
    no other letter names them, and F names nothing else (the function classes are C)."""
    identity, projection = (_texts(residual_block_svg(s)) for s in ("identity", "1x1"))
    assert "residual branch F(X) = H(X) - X" in identity and "F(X) + X" in identity
    assert "residual branch F(X)" in projection and "F(X) + conv3(X)" in projection
    everything = " ".join(" ".join(_texts(draw())) for draw in FIGURES.values())
    assert not re.search(r"\bg\(", everything), "the branch is F, not g"
    classes = [t for t in _texts(FIGURES["function_classes.svg"]()) if len(t) == 2]
    assert sorted(set(classes)) == ["C1", "C2", "C3", "f*"]
