"""The notebooks' diagrams, drawn by code as SVG text.

Each function returns one self-contained SVG document (a string): boxes, arrows and labels
in a fixed palette, about 680 pixels wide, with no random ids, dates or external fonts,
so the same call always gives the same bytes. A notebook shows one with
``IPython.display.SVG(residual_block_svg())``; :func:`write_figures` (or
``python -m d2l_resnet.extras.diagrams notebooks/figures``) writes them all as files.

- :func:`residual_block_svg`: the residual block, with the identity or the 1x1 shortcut.
- :func:`function_classes_svg`: non-nested and nested function classes.
- :func:`resnet18_stages_svg`: ResNet-18 module by module, with the output shapes that
  :func:`d2l_resnet.model.summarize` computes for a given input size.
- :func:`preactivation_svg`: the original block against the pre-activation block.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from torch import nn

from d2l_resnet.checks import check_choice
from d2l_resnet.model import Residual, resnet18, summarize

__all__ = [
    "FIGURES",
    "function_classes_svg",
    "preactivation_svg",
    "residual_block_svg",
    "resnet18_stages_svg",
    "write_figures",
]

WIDTH = 680
MARGIN = 16
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"
INK = "#1f2937"        # text and arrows
MUTED = "#4b5563"      # notes
SHORTCUT = "#0f766e"   # the shortcut path
# Node kind -> (fill, stroke).
PALETTE = {
    "conv": ("#dbeafe", "#1d4ed8"),
    "bn": ("#dcfce7", "#15803d"),
    "relu": ("#fef3c7", "#b45309"),
    "proj": ("#ede9fe", "#6d28d9"),
    "stage": ("#dbeafe", "#1d4ed8"),
    "stem": ("#e0e7ff", "#4338ca"),
    "head": ("#f3f4f6", "#4b5563"),
    "io": ("#ffffff", "#9ca3af"),
}
SUB = re.compile(r"_(\{[^}]*\}|\w)")


def _num(v: float) -> str:
    """A coordinate with at most one decimal, written the same way every time."""
    text = f"{v:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _text(x: float, y: float, s: str, size: int = 13, anchor: str = "middle",
          weight: str = "normal", fill: str = INK, family: str = FONT,
          italic: bool = False, subscripts: bool = False) -> str:
    """One line of text; with ``subscripts``, ``x_l`` and ``x_{l+1}`` get subscripts."""
    parts, pos, lowered = [], 0, False
    sub_size = max(11, size - 3)
    for m in SUB.finditer(s) if subscripts else ():
        before = escape(s[pos:m.start()])
        if lowered:      # back to the baseline for the text between two subscripts
            parts.append(f'<tspan dy="-4" font-size="{size}">{before}</tspan>')
        else:
            parts.append(before)
        parts.append(f'<tspan dy="4" font-size="{sub_size}">'
                     f'{escape(m.group(1).strip("{}"))}</tspan>')
        pos, lowered = m.end(), True
    rest = escape(s[pos:])
    if lowered and rest:
        parts.append(f'<tspan dy="-4" font-size="{size}">{rest}</tspan>')
    else:
        parts.append(rest)
    style = ' font-style="italic"' if italic else ""
    bold = f' font-weight="{weight}"' if weight != "normal" else ""
    return (f'<text x="{_num(x)}" y="{_num(y)}" font-family="{family}" font-size="{size}"'
            f' text-anchor="{anchor}" fill="{fill}"{bold}{style}>{"".join(parts)}</text>')


def _label_width(label: str, size: int = 13) -> float:
    """A generous estimate of a label's width in pixels (sans-serif)."""
    return max(len(line) for line in label.split("\n")) * size * 0.62


def _box(x: float, y: float, w: float, h: float, label: str, kind: str,
         size: int = 13, stroke_width: float = 1.5, stroke: str | None = None) -> str:
    fill, edge = PALETTE[kind]
    lines = label.split("\n")
    first = y + h / 2 - (len(lines) - 1) * size * 0.6 + size * 0.35
    texts = "".join(_text(x + w / 2, first + i * size * 1.2, line, size)
                    for i, line in enumerate(lines))
    return (f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" height="{_num(h)}" rx="6"'
            f' fill="{fill}" stroke="{stroke or edge}" stroke-width="{stroke_width}"/>'
            + texts)


def _arrow(points: Sequence[tuple[float, float]], color: str = INK, width: float = 1.6,
           head: float = 7.0) -> str:
    """A polyline through ``points`` with an arrowhead at the last one (no marker ids)."""
    (x1, y1), (x2, y2) = points[-2], points[-1]
    length = ((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5
    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    bx, by = x2 - ux * head, y2 - uy * head          # base of the head
    px, py = -uy * head * 0.5, ux * head * 0.5        # half its width, across the line
    line = [*points[:-1], (bx, by)]
    path = " ".join(f"{_num(x)},{_num(y)}" for x, y in line)
    tip = (f"{_num(x2)},{_num(y2)} {_num(bx + px)},{_num(by + py)} "
           f"{_num(bx - px)},{_num(by - py)}")
    return (f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="{width}"'
            f' stroke-linejoin="round"/><polygon points="{tip}" fill="{color}"/>')


def _document(height: float, title: str, body: Sequence[str]) -> str:
    """The SVG document: a white background (readable in dark themes too) and the body."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{_num(height)}"'
            f' viewBox="0 0 {WIDTH} {_num(height)}" role="img" aria-label="{escape(title)}">'
            f"<title>{escape(title)}</title>"
            f'<rect width="{WIDTH}" height="{_num(height)}" fill="#ffffff"/>'
            + "".join(body) + "</svg>")


# -- a residual block as a row: input, branch, sum, what follows, output ------------------


@dataclass(frozen=True)
class _Node:
    label: str
    kind: str          # a PALETTE key, "sum" or "io"

    @property
    def width(self) -> float:
        if self.kind == "sum":
            return 26.0
        if self.kind == "io":
            return _label_width(self.label.replace("_", "").replace("{", "").replace("}", ""),
                                15) + 8
        return _label_width(self.label) + 18


def _block_row(top: float, title: str, branch: Sequence[_Node], after: Sequence[_Node],
               x_in: str, y_out: str, shortcut_note: str, projection: str | None = None,
               branch_note: str = "residual branch", mark_after: str | None = None,
               sum_note: str | None = None) -> list[str]:
    """One block drawn left to right, its shortcut below; 186 pixels tall from ``top``.

    ``sum_note`` labels the sum (e.g. ``"F(X) + X"``) above its circle.
    """
    nodes = [_Node(x_in, "io"), *branch, _Node("+", "sum"), *after, _Node(y_out, "io")]
    widths = [n.width for n in nodes]
    gap = (WIDTH - 2 * MARGIN - sum(widths)) / (len(nodes) - 1)
    if gap < 14:
        raise ValueError(f"the row {title!r} does not fit in {WIDTH} pixels")
    cy, h, sy = top + 85, 36.0, top + 145
    lefts, x = [], float(MARGIN)
    for w in widths:
        lefts.append(x)
        x += w + gap
    body = [_text(MARGIN, top + 20, title, 14, anchor="start", weight="bold")]
    i_sum = len(branch) + 1
    # the dashed frame around the residual branch
    bx0, bx1 = lefts[1] - 7, lefts[i_sum - 1] + widths[i_sum - 1] + 7
    body.append(f'<rect x="{_num(bx0)}" y="{_num(cy - h / 2 - 9)}" width="{_num(bx1 - bx0)}"'
                f' height="{_num(h + 18)}" rx="8" fill="none" stroke="{MUTED}"'
                f' stroke-width="1" stroke-dasharray="5 4"/>')
    body.append(_text((bx0 + bx1) / 2, cy - h / 2 - 16, branch_note, 12, fill=MUTED,
                      subscripts=True))
    for k, (node, left, w) in enumerate(zip(nodes, lefts, widths, strict=True)):
        if node.kind == "io":
            body.append(_text(left + w / 2, cy + 5, node.label, 15, weight="bold",
                               subscripts=True))
        elif node.kind == "sum":
            cx = left + w / 2
            if sum_note is not None:
                body.append(_text(cx, cy - h / 2 - 16, sum_note, 12, subscripts=True))
            body.append(f'<circle cx="{_num(cx)}" cy="{_num(cy)}" r="13" fill="#ffffff"'
                        f' stroke="{INK}" stroke-width="1.6"/>'
                        f'<path d="M{_num(cx - 6)},{_num(cy)} H{_num(cx + 6)}'
                        f' M{_num(cx)},{_num(cy - 6)} V{_num(cy + 6)}" stroke="{INK}"'
                        f' stroke-width="1.8"/>')
        else:
            marked = k > i_sum and mark_after is not None
            body.append(_box(left, cy - h / 2, w, h, node.label, node.kind,
                             stroke_width=3 if marked else 1.5,
                             stroke=SHORTCUT if marked else None))
        if k + 1 < len(nodes):
            body.append(_arrow([(left + w + 2, cy), (lefts[k + 1] - 2, cy)]))
    split = lefts[0] + widths[0] + gap / 2
    sum_x = lefts[i_sum] + widths[i_sum] / 2
    body.append(f'<circle cx="{_num(split)}" cy="{_num(cy)}" r="3.5" fill="{SHORTCUT}"/>')
    if projection is None:
        body.append(_arrow([(split, cy), (split, sy), (sum_x, sy), (sum_x, cy + 15)],
                           color=SHORTCUT, width=2.2))
    else:
        pw = _label_width(projection) + 18
        px = (split + sum_x) / 2 - pw / 2
        body.append(_arrow([(split, cy), (split, sy), (px - 2, sy)], color=SHORTCUT,
                           width=2.2))
        body.append(_box(px, sy - 15, pw, 30, projection, "proj"))
        body.append(_arrow([(px + pw + 2, sy), (sum_x, sy), (sum_x, cy + 15)],
                           color=SHORTCUT, width=2.2))
    body.append(_text((split + sum_x) / 2, sy + (34 if projection else 22), shortcut_note,
                      12, fill=SHORTCUT, subscripts=True))
    if mark_after is not None:
        k = i_sum + 1
        body.append(_text(lefts[k] + widths[k] / 2, cy + h / 2 + 22, mark_after, 12,
                          fill=SHORTCUT))
    return body


def residual_block_svg(shortcut: str = "identity") -> str:
    """The residual block of notebook 1 (``Residual``), left to right, in He et al.'s
    notation: the branch ``F(X)`` learns the residual ``H(X) - X`` of the mapping ``H``
    the block should compute, and the shortcut adds ``X`` back.

    Args:
        shortcut: ``"identity"`` (``use_1x1conv=False``: the input is added as it is) or
            ``"1x1"`` (``use_1x1conv=True, strides=2``: a 1x1 convolution with the same
            stride as the first 3x3 convolution projects the input to the output's shape).

    Returns:
        An SVG document.
    """
    check_choice("shortcut", shortcut, ("identity", "1x1"))
    projection = shortcut == "1x1"
    first = "3x3 conv\nstride 2" if projection else "3x3 conv"
    branch = [_Node(first, "conv"), _Node("BN", "bn"), _Node("ReLU", "relu"),
              _Node("3x3 conv", "conv"), _Node("BN", "bn")]
    if projection:
        title = "Residual block, 1x1 convolution on the shortcut (use_1x1conv=True)"
        note = "conv3 changes the channels and halves height and width, as the branch does"
        body = _block_row(0, title, branch, [_Node("ReLU", "relu")], "X", "Y", note,
                          projection="1x1 conv, stride 2",
                          branch_note="residual branch F(X)", sum_note="F(X) + conv3(X)")
        height = 200
    else:
        title = "Residual block, identity shortcut (use_1x1conv=False)"
        note = "identity shortcut: X is added unchanged"
        body = _block_row(0, title, branch, [_Node("ReLU", "relu")], "X", "Y", note,
                          branch_note="residual branch F(X) = H(X) - X",
                          sum_note="F(X) + X")
        height = 186
    return _document(height, title, body)


def preactivation_svg() -> str:
    """The original residual block (He et al. 2015) above the pre-activation block (2016).

    In the original block a ReLU follows the addition, so the shortcut passes through it;
    in the pre-activation block BatchNorm and ReLU move into the branch, before each
    convolution, and nothing follows the addition: ``x_{l+1} = x_l + F(x_l)``.
    """
    original = [_Node("3x3 conv", "conv"), _Node("BN", "bn"), _Node("ReLU", "relu"),
                _Node("3x3 conv", "conv"), _Node("BN", "bn")]
    preact = [_Node("BN", "bn"), _Node("ReLU", "relu"), _Node("3x3 conv", "conv"),
              _Node("BN", "bn"), _Node("ReLU", "relu"), _Node("3x3 conv", "conv")]
    body = _block_row(0, "(a) Original block (He et al. 2015): ReLU after the addition",
                      original, [_Node("ReLU", "relu")], "x_l", "x_{l+1}",
                      "the shortcut passes through the ReLU after the sum",
                      branch_note="branch F(x_l)", mark_after="on the shortcut path")
    body += _block_row(200, "(b) Pre-activation block (He et al. 2016): nothing after it",
                       preact, [], "x_l", "x_{l+1}",
                       "the shortcut is an exact identity: x_{l+1} = x_l + F(x_l)",
                       branch_note="branch F(x_l): BN and ReLU before each conv")
    return _document(386, "Original and pre-activation residual blocks", body)


# -- nested and non-nested function classes -------------------------------------------------

# Each class an ellipse (cx, cy, rx, ry) inside a 340 x 270 panel; f* a point.
NON_NESTED = ((92, 170, 46, 32), (165, 128, 62, 42), (122, 182, 104, 54))
NESTED = ((84, 166, 38, 28), (114, 156, 76, 54), (148, 144, 126, 86))
F_STAR = (282, 84)
_CLASS_COLORS = ("#1d4ed8", "#15803d", "#b45309")


def _panel(dx: float, title: str, ellipses: Sequence[tuple[float, float, float, float]],
           label_at: Sequence[tuple[float, float]], caption: Sequence[str]) -> list[str]:
    body = [_text(dx + 170, 24, title, 14, weight="bold")]
    for i, ((cx, cy, rx, ry), (lx, ly), color) in enumerate(
            zip(ellipses, label_at, _CLASS_COLORS, strict=True)):
        body.append(f'<ellipse cx="{_num(dx + cx)}" cy="{_num(cy)}" rx="{rx}" ry="{ry}"'
                    f' fill="{color}" fill-opacity="0.07" stroke="{color}"'
                    f' stroke-width="2"/>')
        body.append(_text(dx + lx, ly, f"C_{i + 1}", 15, fill=color, italic=True,
                          weight="bold", subscripts=True))
    sx, sy = F_STAR
    star = []
    for k in range(10):   # a five-pointed star, radius 9 and 4
        r = 9 if k % 2 == 0 else 4
        a = math.pi / 2 + k * math.pi / 5
        star.append(f"{_num(dx + sx + r * math.cos(a))},{_num(sy - r * math.sin(a))}")
    body.append(f'<polygon points="{" ".join(star)}" fill="#dc2626"/>')
    body.append(_text(dx + sx, sy - 16, "f*", 15, italic=True, weight="bold",
                      fill="#dc2626"))
    for i, line in enumerate(caption):
        body.append(_text(dx + 170, 254 + i * 17, line, 12, fill=MUTED))
    return body


def function_classes_svg() -> str:
    """Why a bigger model class need not be better, unless it contains the smaller one.

    Left, non-nested classes: C3 is the largest but lies further from the truth f* than
    C2. Right, nested classes (C1 inside C2 inside C3): each larger class keeps every
    function of the smaller ones, so its best member is never further from f*. (The book
    names the classes F; here F is the residual branch, He et al.'s symbol.)
    """
    left = _panel(0, "Non-nested function classes", NON_NESTED,
                  ((78, 176), (196, 122), (88, 220)),
                  ("A larger class is not always", "closer to the truth f*."))
    right = _panel(340, "Nested function classes", NESTED,
                   ((84, 171), (152, 180), (222, 160)),
                   ("Each class contains the smaller ones:", "growing never moves away from f*."))
    divider = '<line x1="340" y1="40" x2="340" y2="280" stroke="#e5e7eb" stroke-width="1"/>'
    return _document(296, "Non-nested and nested function classes", [*left, divider, *right])


# -- ResNet-18 module by module ---------------------------------------------------------------


def _describe(module: nn.Module) -> str:
    """A short description of one top-level module of ResNet-18, read from the module."""
    if isinstance(module, nn.Sequential) and all(isinstance(m, Residual) for m in module):
        blocks = list(module)
        first = blocks[0]
        how = (f"first with stride {first.strides} and a 1x1 shortcut"
               if first.conv3 is not None else "identity shortcuts")
        return f"{len(blocks)} residual blocks, {first.num_channels} channels · {how}"
    if isinstance(module, nn.Sequential):
        return " · ".join(_describe(m) for m in module)
    if isinstance(module, nn.Conv2d):
        k, s = module.kernel_size[0], module.stride[0]
        return f"{k}x{k} conv, {module.out_channels} channels, stride {s}"
    if isinstance(module, nn.MaxPool2d):
        return f"{module.kernel_size}x{module.kernel_size} max-pool, stride {module.stride}"
    if isinstance(module, nn.BatchNorm2d):
        return "BN"
    if isinstance(module, nn.ReLU):
        return "ReLU"
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return "global average pool: one number per channel"
    if isinstance(module, nn.Flatten):
        return "flatten"
    if isinstance(module, nn.Linear):
        return f"linear layer, {module.in_features} → {module.out_features}"
    return type(module).__name__


def _wrap(text: str, limit: int = 46) -> list[str]:
    """Split a description at its `` · `` separators into lines of at most ``limit``."""
    lines: list[str] = []
    for part in text.split(" · "):
        if lines and len(lines[-1]) + 3 + len(part) <= limit:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return lines


def resnet18_stages_svg(size: int = 28) -> str:
    """ResNet-18 module by module, each with the shape of its output for one image.

    The shapes are computed, not typed in: :func:`d2l_resnet.model.summarize` runs an
    input of ``size x size`` through :func:`d2l_resnet.model.resnet18`. Beside each
    module, a square whose side is proportional to the height of its feature maps.

    Args:
        size: Height and width of the input image (at least 17, see ``MIN_SIZE``).
    """
    net = resnet18()
    rows = summarize(net, (1, 1, size, size))
    names = ["b1", "b2", "b3", "b4", "b5", "avgpool", "flatten", "linear"]
    kinds = ["stem", "stage", "stage", "stage", "stage", "head", "head", "head"]
    entries = [("input", "io", f"one grayscale image, {size}x{size} pixels", (1, size, size))]
    entries += [(name, kind, _describe(module), row.output_shape[1:])
                for name, kind, module, row in zip(names, kinds, net, rows, strict=True)]
    row_h, top = 46.0, 44.0
    title = f"ResNet-18 on {size}x{size} inputs: the output shape (C, H, W) of each module"
    body = [_text(MARGIN, 24, title, 14, anchor="start", weight="bold")]
    box_x, box_w, box_h = 24.0, 96.0, 30.0
    for i, (name, kind, text, shape) in enumerate(entries):
        cy = top + i * row_h + row_h / 2
        body.append(_box(box_x, cy - box_h / 2, box_w, box_h, name, kind))
        lines = _wrap(text)
        y0 = cy + 4.5 - (len(lines) - 1) * 7.5
        for j, line in enumerate(lines):
            body.append(_text(136, y0 + j * 15, line, 12, anchor="start", fill=MUTED))
        if len(shape) == 3:     # the feature maps, drawn to scale
            side = max(3.0, 34 * shape[1] / size)
            body.append(f'<rect x="{_num(540 - side / 2)}" y="{_num(cy - side / 2)}"'
                        f' width="{_num(side)}" height="{_num(side)}" fill="#93c5fd"'
                        f' stroke="#1d4ed8" stroke-width="1"/>')
        body.append(_text(WIDTH - MARGIN, cy + 4.5, str(tuple(shape)), 13, anchor="end",
                          family=MONO, weight="bold"))
        if i + 1 < len(entries):
            x = box_x + box_w / 2
            body.append(_arrow([(x, cy + box_h / 2 + 1), (x, cy + row_h - box_h / 2 - 1)],
                               head=6))
    height = top + len(entries) * row_h + 8
    return _document(height, title, body)


# -- all figures, as files ------------------------------------------------------------------

FIGURES: dict[str, Callable[[], str]] = {
    "residual_block_identity.svg": lambda: residual_block_svg("identity"),
    "residual_block_1x1.svg": lambda: residual_block_svg("1x1"),
    "function_classes.svg": function_classes_svg,
    "resnet18_stages_28.svg": lambda: resnet18_stages_svg(28),
    "preactivation.svg": preactivation_svg,
}


def write_figures(folder: str | Path) -> list[Path]:
    """Write every diagram of :data:`FIGURES` into ``folder`` (created if missing).

    Returns:
        The files written, in the order of :data:`FIGURES`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in FIGURES.items():
        path = folder / name
        path.write_text(draw() + "\n", encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m d2l_resnet.extras.diagrams FOLDER``: write the diagrams as SVG files."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m d2l_resnet.extras.diagrams FOLDER   (e.g. notebooks/figures)",
              file=sys.stderr)
        return 2
    for path in write_figures(args[0]):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
