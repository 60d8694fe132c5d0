"""What the site reads from a notebook and does to its HTML, as pure functions.

Titles, index summaries and the ``run_info()`` line come from the notebook; links are
rewritten for the site; TeX is kept away from the Markdown parser; a page gets a list of
its sections. Nothing here reads or writes files.
"""

from __future__ import annotations

import html
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

COURSE_TITLE = "Residual Networks in PyTorch"
# One line per notebook for the index, by number; a notebook missing here is summarized
# by the first sentence of its introduction.
SUMMARIES: dict[str, str] = {
    "01": "What a residual block computes, and when its shortcut needs a 1x1 convolution.",
    "02": "ResNet-18 assembled stage by stage: output shapes, parameters and FLOPs per layer.",
    "03": "Where the data comes from (offline too), how it is verified, and a fast loader.",
    "04": "A correct training loop on a CPU: live curves, accuracy, mistakes, checkpoints.",
    "05": "Why the residual sum turns multiplied gradients into added ones, derived and measured.",
    "06": "Data-parallel training across processes and machines with torch.distributed and "
          "torchrun.",
}
RUN_INFO_PATTERN = re.compile(r"^profile (?P<profile>[\w-]+) \| (?P<rest>d2l_resnet .*)$", re.M)


@dataclass(frozen=True)
class NavLink:
    """A link to another page of the site."""

    href: str
    title: str


@dataclass(frozen=True)
class RunInfo:
    """What produced a notebook's outputs, from the line ``run_info()`` prints.

    Attributes:
        profile: ``quick``, ``course`` or ``d2l``.
        parts: The rest of the line, one item per ``|``-separated field.
    """

    profile: str
    parts: tuple[str, ...]

    @property
    def preview(self) -> bool:
        """True when the outputs come from the ``quick`` profile (a small part of the data)."""
        return self.profile == "quick"

    @property
    def line(self) -> str:
        """The line as ``run_info()`` printed it."""
        return " | ".join((f"profile {self.profile}", *self.parts))


@dataclass(frozen=True)
class Glossary:
    """The table of ``docs/glossary.md``: a header row and the rows of terms, as plain text."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def _table_cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def parse_glossary(markdown: str) -> Glossary | None:
    """The first Markdown table of ``markdown``, or None when there is none.

    A table is a header line, a separator line of dashes (``|---|---|``) and the rows that
    follow, every line starting with ``|``. Cells are kept as plain text; a short row is
    padded with empty cells, a long one cut to the header's width.
    """
    lines = markdown.splitlines()
    for i in range(len(lines) - 1):
        header, separator = lines[i].strip(), lines[i + 1].strip()
        if not (header.startswith("|") and re.fullmatch(r"\|?(\s*:?-+:?\s*\|)+\s*:?-*:?\s*",
                                                         separator)):
            continue
        names = tuple(_table_cells(header))
        rows = []
        for line in lines[i + 2:]:
            if not line.strip().startswith("|"):
                break
            cells = _table_cells(line)[:len(names)]
            rows.append(tuple(cells + [""] * (len(names) - len(cells))))
        return Glossary(names, tuple(rows))
    return None


def _text(value: Any) -> str:
    """A notebook field that may be stored as a list of lines, as one string."""
    return "".join(value) if isinstance(value, list) else str(value)


def _markdown_cells(nb: Any) -> list[str]:
    return [_text(c.get("source", "")) for c in nb.get("cells", [])
            if c.get("cell_type") == "markdown"]


def _plain(markdown: str) -> str:
    """Markdown inline text reduced to plain text (links, emphasis and code marks removed)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"(\*\*|__|\*|`)", "", text)
    return " ".join(text.split())


def notebook_title(nb: Any, fallback: str) -> str:
    """The first heading of the notebook's first markdown cell, as plain text.

    Args:
        nb: The notebook.
        fallback: The title when the first markdown cell has no heading.
    """
    for source in _markdown_cells(nb)[:1]:
        for line in source.splitlines():
            match = re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
            if match:
                return _plain(match.group(1))
    return fallback


def notebook_summary(nb: Any, number: str = "", limit: int = 160) -> str:
    """One line for the index: ``SUMMARIES[number]``, else the first sentence of the intro.

    Args:
        nb: The notebook.
        number: Its two-digit number (``"04"``).
        limit: The most characters a sentence taken from the notebook may keep.
    """
    if number in SUMMARIES:
        return SUMMARIES[number]
    for source in _markdown_cells(nb)[:2]:
        for block in re.split(r"\n\s*\n", source):
            block = block.strip()
            if not block or block.startswith(("#", "$$", "|", "```", "<", ">", "-", "*")):
                continue
            sentence = re.split(r"(?<=[.!?])\s", _plain(block), maxsplit=1)[0]
            if len(sentence) > limit:
                sentence = sentence[: limit - 1].rsplit(" ", 1)[0] + "…"
            return sentence
    return ""


def parse_run_info(nb: Any) -> RunInfo | None:
    """The last ``run_info()`` line among the notebook's outputs (printed or shown), or None."""
    found: RunInfo | None = None
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) or []:
            for text in (output.get("text", ""), output.get("data", {}).get("text/plain", "")):
                for match in RUN_INFO_PATTERN.finditer(_text(text).replace("'", "")):
                    parts = tuple(p.strip() for p in match.group("rest").split("|"))
                    found = RunInfo(match.group("profile"), parts)
    return found


def navigation(pages: Sequence[tuple[str, str]]) -> list[dict[str, NavLink | None]]:
    """Previous and next links for each page, in order.

    Args:
        pages: ``(href, title)`` of each page, in the course's order.

    Returns:
        For each page, ``{"prev": NavLink | None, "next": NavLink | None}``.
    """
    links = [NavLink(href, title) for href, title in pages]
    return [{"prev": links[i - 1] if i > 0 else None,
             "next": links[i + 1] if i + 1 < len(links) else None}
            for i in range(len(links))]


def rewrite_url(url: str, pages: Mapping[str, str],
                source_dir: str = "notebooks") -> tuple[str, str | None]:
    """Where a link written in a notebook points once the notebook is a page of the site.

    A link to a course notebook (``02_resnet18.ipynb`` or its ``.py``, with or without a
    fragment) becomes a link to its page. A link to another file of the repository
    (``../src/d2l_resnet/model.py``, ``figures/residual_block.svg``) becomes a link to a
    copy under ``files/``, and that file is named so the builder can publish it. Anything
    else (other sites, fragments on the same page, data URLs, absolute paths, paths out
    of the repository) is left as it is.

    Args:
        url: The link as written (``href`` or ``src``).
        pages: Notebook stem (``"02_resnet18"``) to page (``"02_resnet18.html"``).
        source_dir: The notebooks' folder, relative to the repository root.

    Returns:
        The new link, and the repository-relative path of a file to publish (or None).
    """
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not parts.path or url.startswith("/"):
        return url, None
    fragment = f"#{parts.fragment}" if parts.fragment else ""
    target = posixpath.normpath(posixpath.join(source_dir, unquote(parts.path)))
    if target == ".." or target.startswith("../"):
        return url, None
    folder, name = posixpath.split(target)
    stem, ext = posixpath.splitext(name)
    if folder == posixpath.normpath(source_dir) and ext in (".ipynb", ".py") and stem in pages:
        return pages[stem] + fragment, None
    query = f"?{parts.query}" if parts.query else ""
    return f"files/{target}{query}{fragment}", target


_URL_ATTRIBUTE = re.compile(r"""(\s(?:href|src)\s*=\s*)(["'])(.*?)\2""", re.I | re.S)


def rewrite_links(fragment: str, rewrite: Callable[[str], str]) -> str:
    """Apply ``rewrite`` to every ``href`` and ``src`` in a piece of HTML."""

    def replace(match: re.Match[str]) -> str:
        old = html.unescape(match.group(3))
        new = rewrite(old)
        if new == old:
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}{html.escape(new)}{match.group(2)}"

    return _URL_ATTRIBUTE.sub(replace, fragment)


# Markdown cells: code (left alone) or math (kept away from the Markdown parser).
_CODE_OR_MATH = re.compile(r"""
    (?P<fence>^[ \t]{0,3}(?P<fchar>`{3,}|~{3,})[^\n]*\n.*?(?:^[ \t]{0,3}(?P=fchar)[ \t]*$|\Z))
  | (?P<code>(?P<ticks>`+)(?!`).+?(?<!`)(?P=ticks)(?!`))
  | (?P<math>
        \\\$                                          # an escaped dollar
      | \\begin\{(?P<env>[A-Za-z]+\*?)\}.+?\\end\{(?P=env)\}
      | \$\$(?:[^$\\]|\\.)+?\$\$
      | \\{1,2}\[(?:(?!\n[ \t]*\n).)+?\\{1,2}\]
      | \\{1,2}\((?:(?!\n[ \t]*\n).)+?\\{1,2}\)
      | \$(?:[^$\\\n]|\\.|\n(?![ \t]*\n))+?\$
    )
""", re.S | re.M | re.X)
_MATH_TOKEN = re.compile(r"D2LMATH(\d+)X")


def protect_math(markdown: str) -> tuple[str, list[str]]:
    """Replace the TeX in a Markdown cell by tokens the Markdown parser leaves alone.

    As in JupyterLab, math is taken out before Markdown is parsed, so ``*``, ``_`` or a
    line starting with ``+`` inside a formula cannot become emphasis or a list (nbconvert's
    own Markdown filter protects math only after the block structure is parsed). Code
    spans and fenced blocks keep their dollars.

    Returns:
        The Markdown with tokens, and the math each token stands for.
    """
    spans: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match.group("math") is None:
            return match.group(0)
        spans.append(match.group("math"))
        return f"D2LMATH{len(spans) - 1}X"

    return _CODE_OR_MATH.sub(replace, markdown), spans


def restore_math(rendered: str, spans: Sequence[str]) -> str:
    """Put the math back into the HTML, escaped, with MathJax's delimiters."""

    def replace(match: re.Match[str]) -> str:
        math = spans[int(match.group(1))]
        math = re.sub(r"^\\\\([(\[])", r"\\\1", math)  # Jupyter's \\( and \\[
        math = re.sub(r"\\\\([)\]])$", r"\\\1", math)
        return html.escape(math, quote=False)

    return _MATH_TOKEN.sub(replace, rendered)


_H2 = re.compile(r'<h2 id="([^"]+)"[^>]*>(.*?)</h2>', re.S)


def page_sections(page_html: str) -> list[tuple[str, str]]:
    """The ``(id, text)`` of each second-level heading of a page, in order."""
    sections = []
    for anchor, inner in _H2.findall(page_html):
        inner = re.sub(r'<a class="anchor-link".*?</a>', "", inner, flags=re.S)
        text = " ".join(html.unescape(re.sub(r"<[^>]+>", "", inner)).split())
        if text:
            sections.append((anchor, text))
    return sections


def add_section_links(page_html: str, marker: str = '<main class="notebook">') -> str:
    """Put a list of the page's sections (its ``h2`` headings) just before ``marker``."""
    sections = page_sections(page_html)
    if not sections or marker not in page_html:
        return page_html
    items = "".join(f'<li><a href="#{anchor}">{html.escape(text)}</a></li>'
                    for anchor, text in sections)
    nav = (f'<nav class="page-sections" aria-label="Sections of this notebook">'
           f'<span class="page-sections-label">On this page</span><ol>{items}</ol></nav>\n')
    return page_html.replace(marker, nav + marker, 1)
