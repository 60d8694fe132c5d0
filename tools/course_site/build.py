"""The course site: the executed notebooks as static HTML pages that work offline.

Two ways to build it (the Makefile's ``html`` and ``site`` targets)::

    python -m tools.course_site                                # from the committed outputs
    python -m tools.course_site --execute --profile quick      # execute into build/ first

Each notebook becomes one page (nbconvert's JupyterLab look, code highlighted, figures
embedded) with previous/next/contents navigation, links to download its ``.ipynb`` and
``.py``, and the profile and versions that produced its outputs (read from the
``run_info()`` line its last cell prints). ``index.html`` lists the notebooks in order.
Nothing is loaded from another host: MathJax is copied into the site from the
``jupyter-server-mathjax`` package, and progress-bar widgets are dropped from the pages.
"""

from __future__ import annotations

import argparse
import html
import os
import posixpath
import re
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = [
    "COURSE_TITLE",
    "NavLink",
    "Page",
    "RunInfo",
    "SiteReport",
    "add_section_links",
    "build_site",
    "clean_notebook",
    "execute_notebooks",
    "find_notebooks",
    "main",
    "navigation",
    "notebook_summary",
    "notebook_title",
    "page_sections",
    "parse_run_info",
    "protect_math",
    "restore_math",
    "rewrite_links",
    "rewrite_url",
]

COURSE_TITLE = "Residual Networks in PyTorch"
SUBTITLE = "d2l-resnet: a course in five notebooks, trained on Fashion-MNIST"
INTRO = (
    "A residual network adds a block's input to its output, <em>y</em> = <em>F</em>(<em>x</em>)"
    " + <em>x</em>, so every block only has to learn a correction to the identity. That small"
    " change is what lets networks of a hundred layers and more train well. These notebooks"
    " build the idea up in PyTorch: the residual block, the ResNet-18 it assembles into,"
    " the Fashion-MNIST data, a training run on a laptop CPU, and why the shortcut keeps"
    " gradients alive at depth.",
    "They grow out of the ResNet section of <em>Dive into Deep Learning</em> (动手学深度学习);"
    " each section keeps the original Chinese title beside the English one. Every page shows"
    " the outputs of a full run and says which profile and package versions produced them.",
)
# One line per notebook for the index, by number; a notebook missing here is summarized
# by the first sentence of its introduction.
SUMMARIES: dict[str, str] = {
    "01": "What a residual block computes, and when its shortcut needs a 1x1 convolution.",
    "02": "ResNet-18 assembled stage by stage: output shapes, parameters and FLOPs per layer.",
    "03": "Where the data comes from (offline too), how it is verified, and a fast loader.",
    "04": "A correct training loop on a CPU: live curves, accuracy, mistakes, checkpoints.",
    "05": "Why the residual sum turns multiplied gradients into added ones, derived and measured.",
}
NOTEBOOK_PATTERN = re.compile(r"^\d\d_[A-Za-z0-9_]+\.ipynb$")
RUN_INFO_PATTERN = re.compile(r"^profile (?P<profile>[\w-]+) \| (?P<rest>d2l_resnet .*)$", re.M)
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
TEMPLATES = Path(__file__).with_name("templates")
SITE_MARKER = ".d2l-resnet-site"
MATHJAX_CONFIG = "config/TeX-AMS-MML_HTMLorMML-full.js"


# ---------------------------------------------------------------------------------------
# Pure parts: titles, summaries, run information, navigation, links


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


@dataclass
class Page:
    """One notebook of the site."""

    stem: str
    title: str
    summary: str
    ipynb: Path
    py: Path | None
    run: RunInfo | None = None

    @property
    def href(self) -> str:
        return f"{self.stem}.html"

    @property
    def number(self) -> str:
        return self.stem.split("_", 1)[0]


def _markdown_cells(nb: Any) -> list[str]:
    return [_source(cell) for cell in nb.get("cells", []) if cell.get("cell_type") == "markdown"]


def _source(cell: Any) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _plain(markdown: str) -> str:
    """Markdown inline text reduced to plain text (links, emphasis and code marks removed)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"(\*\*|__|\*|`)", "", text)
    return " ".join(text.split())


def notebook_title(nb: Any, fallback: str) -> str:
    """The first heading of the notebook's first markdown cell, as plain text."""
    for source in _markdown_cells(nb)[:1]:
        for line in source.splitlines():
            match = re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
            if match:
                return _plain(match.group(1))
    return fallback


def notebook_summary(nb: Any, number: str = "", limit: int = 160) -> str:
    """One line for the index: ``SUMMARIES[number]``, else the first sentence of the intro."""
    if number in SUMMARIES:
        return SUMMARIES[number]
    for source in _markdown_cells(nb)[:2]:
        for block in re.split(r"\n\s*\n", source):
            block = block.strip()
            if not block or block.startswith(("#", "$$", "|", "```", "<", ">", "-", "*")):
                continue
            text = _plain(block)
            sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
            if len(sentence) > limit:
                sentence = sentence[: limit - 1].rsplit(" ", 1)[0] + "…"
            return sentence
    return ""


def parse_run_info(nb: Any) -> RunInfo | None:
    """The last ``run_info()`` line among the notebook's outputs, or None."""
    found: RunInfo | None = None
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) or []:
            texts = []
            if output.get("output_type") == "stream":
                texts.append(output.get("text", ""))
            texts.append(output.get("data", {}).get("text/plain", ""))
            for text in texts:
                text = "".join(text) if isinstance(text, list) else text
                for match in RUN_INFO_PATTERN.finditer(text.replace("'", "")):
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
    return [
        {"prev": links[i - 1] if i > 0 else None,
         "next": links[i + 1] if i + 1 < len(links) else None}
        for i in range(len(links))
    ]


def rewrite_url(url: str, pages: Mapping[str, str],
                source_dir: str = "notebooks") -> tuple[str, str | None]:
    """Where a link written in a notebook points once the notebook is a page of the site.

    A link to a course notebook (``02_resnet18.ipynb`` or its ``.py``, with or without a
    fragment) becomes a link to its page. A link to another file of the repository
    (``../src/d2l_resnet/model.py``) becomes a link to a copy under ``files/``, and that
    file is named so the builder can publish it. Anything else (other sites, fragments
    on the same page, data URLs, absolute paths) is left as it is.

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
    line starting with ``+`` inside a formula cannot become emphasis or a list. Code spans
    and fenced blocks keep their dollars.

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


_NBVAL_MARKER = re.compile(r"^[ \t]*#[ \t]*NBVAL_[A-Z_]+[ \t]*(?:\n|$)", re.M)


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def clean_notebook(nb: Any) -> int:
    """Make a notebook ready for its page: drop what must not show, tidy what may.

    - Widget outputs (tqdm's progress bars in Jupyter) need a widget manager from a CDN
      and say nothing once the run is over: they are dropped, with the widget state.
    - Consecutive prints to the same stream become one block (a live plot's updates
      between two prints otherwise split them), and text progress bars that redraw with
      carriage returns keep only their final state.
    - The test suite's ``# NBVAL_...`` marker lines are left out of the code shown (the
      downloads keep them).

    Changes ``nb`` in place.

    Returns:
        How many widget outputs were dropped.
    """
    nb.get("metadata", {}).pop("widgets", None)
    dropped = 0
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        cell["source"] = _NBVAL_MARKER.sub("", _text(cell.get("source", "")))
        kept: list[Any] = []
        for output in cell.get("outputs", []) or []:
            if WIDGET_MIME in output.get("data", {}):
                dropped += 1
                continue
            if output.get("output_type") == "stream":
                output["text"] = _text(output.get("text", ""))
                last = kept[-1] if kept else None
                if (last is not None and last.get("output_type") == "stream"
                        and last.get("name") == output.get("name")):
                    last["text"] += output["text"]
                    continue
            kept.append(output)
        for output in kept:
            if output.get("output_type") == "stream" and "\r" in output["text"]:
                output["text"] = _final_state(output["text"])
        cell["outputs"] = kept
    return dropped


def _final_state(text: str) -> str:
    """Text as a terminal shows it: each line keeps what follows its last carriage return."""
    lines = text.replace("\r\n", "\n").split("\n")
    kept = []
    for line in lines:
        drawn = [segment for segment in line.split("\r") if segment]
        kept.append(drawn[-1] if drawn else "")
    return "\n".join(kept)


# ---------------------------------------------------------------------------------------
# Executing the notebooks (make site)


def find_notebooks(folder: Path) -> list[Path]:
    """The course notebooks in ``folder`` (``NN_name.ipynb``), in order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no notebooks folder at {folder}: pass --notebooks DIR")
    found = sorted(p for p in folder.iterdir() if NOTEBOOK_PATTERN.match(p.name))
    if not found:
        raise FileNotFoundError(
            f"no notebooks named NN_name.ipynb in {folder}: create them with "
            "`jupytext --sync notebooks/NN_name.py` or pass --notebooks DIR")
    return found


def execute_notebooks(notebooks: Sequence[Path], build_dir: Path, profile: str,
                      timeout: int = 3600, log: Callable[[str], None] = print) -> list[Path]:
    """Execute each notebook top to bottom into ``build_dir``, leaving the originals alone.

    The kernels run in the notebooks' own folder with ``D2L_RESNET_PROFILE=profile`` and
    ``TQDM_DISABLE=1``, as a run by hand would (see CONTRIBUTING.md).

    Returns:
        The executed notebooks, in order.

    Raises:
        RuntimeError: a cell failed; the partly executed notebook is kept in ``build_dir``.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    from d2l_resnet.profiles import PROFILE_ENV, get_profile

    profile = get_profile(profile).name
    os.environ[PROFILE_ENV] = profile
    os.environ["TQDM_DISABLE"] = "1"
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    executed = []
    total = len(notebooks)
    tty = sys.stdout.isatty()
    for i, source in enumerate(notebooks, 1):
        nb = nbformat.read(source, as_version=4)
        target = build_dir / source.name
        code_cells = sum(cell.cell_type == "code" for cell in nb.cells)
        log(f"[{i}/{total}] {source.stem}: executing {code_cells} code cells "
            f"(profile {profile}) ...")
        state = {"done": 0, "cell": 0}

        def on_cell_execute(cell: Any, cell_index: int, _state: dict[str, int] = state) -> None:
            _state["cell"] = cell_index + 1

        def on_cell_executed(cell: Any, cell_index: int, execute_reply: Any,
                             _state: dict[str, int] = state, _n: int = code_cells) -> None:
            _state["done"] += 1
            if tty:
                print(f"\r      code cell {_state['done']}/{_n}", end="", flush=True)

        client = NotebookClient(
            nb, timeout=timeout, kernel_name="python3",
            resources={"metadata": {"path": str(source.parent.resolve())}},
            on_cell_execute=on_cell_execute, on_cell_executed=on_cell_executed,
            # ipykernel warns on every start that its local TCP channels are unencrypted.
            extra_arguments=["--IPKernelApp.log_level=ERROR"])
        start = time.perf_counter()
        try:
            client.execute()
        except CellExecutionError as err:
            nbformat.write(nb, target)
            if tty:
                print()
            raise RuntimeError(
                f"{source.name} failed in cell {state['cell']} of {len(nb.cells)}; the partly "
                f"executed notebook is {target}\n{err}") from err
        nbformat.write(nb, target)
        if tty:
            print("\r", end="")
        log(f"[{i}/{total}] {source.stem}: done in {time.perf_counter() - start:.1f} s "
            f"-> {target}")
        executed.append(target)
    return executed


# ---------------------------------------------------------------------------------------
# Writing the site


@dataclass
class SiteReport:
    """What ``build_site`` wrote."""

    out_dir: Path
    pages: list[Page]
    seconds: float
    warnings: list[str] = field(default_factory=list)

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.out_dir.rglob("*") if p.is_file())


def _mathjax_dir() -> Path:
    try:
        import jupyter_server_mathjax
    except ImportError as err:
        raise RuntimeError(
            "the site needs a local copy of MathJax from the package jupyter-server-mathjax: "
            "install it with `pip install -e '.[dev]'` (or `pip install jupyter-server-mathjax`)"
        ) from err
    static = Path(jupyter_server_mathjax.__file__).with_name("static")
    if not (static / "MathJax.js").is_file() or not (static / MATHJAX_CONFIG).is_file():
        raise RuntimeError(f"jupyter-server-mathjax has no MathJax 2 in {static}: reinstall it")
    return static


# Parts of the MathJax copy that the pages never load: the SVG output's fonts (the package
# ships no SVG output to use them) and the accessibility explorer (reached from MathJax's
# menu, which the pages switch off). Leaving them out halves the site's size.
MATHJAX_UNUSED = ("jax/output/SVG", "extensions/a11y")


def _copy_tree(source: Path, target: Path, leave_out: Sequence[str] = ()) -> None:
    if target.exists():
        shutil.rmtree(target)
    skip = {(source / part).resolve() for part in leave_out}

    def ignore(folder: str, names: list[str]) -> list[str]:
        here = Path(folder).resolve()
        return [n for n in names if n == "__pycache__" or here / n in skip]

    shutil.copytree(source, target, ignore=ignore)


def _markdown_filter(exporter: Any, rewrite: Callable[[str], str]) -> Callable[..., str]:
    """The page's Markdown filter: nbconvert's, with math protected and links rewritten."""
    import jinja2
    from nbconvert.filters import strip_files_prefix

    @jinja2.pass_context
    def site_markdown(context: Any, source: str) -> str:
        text, spans = protect_math(source)
        rendered = strip_files_prefix(exporter.markdown2html(context, text))
        return rewrite_links(restore_math(rendered, spans), rewrite)

    return site_markdown


def _exporter() -> Any:
    from nbconvert import HTMLExporter

    return HTMLExporter(
        template_name="course",
        extra_template_basedirs=[str(TEMPLATES)],
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=False,  # True would pass HTML blocks through bs4, closing <details> early
        sanitize_html=False,
    )


def build_site(notebooks_dir: Path, out_dir: Path, *, executed: Sequence[Path] | None = None,
               repo_root: Path | None = None, source_label: str | None = None,
               log: Callable[[str], None] = print) -> SiteReport:
    """Write the course site from executed notebooks.

    Args:
        notebooks_dir: The notebooks' folder (``.ipynb`` and ``.py`` pairs).
        out_dir: The site's folder: new, empty, or one this function wrote before (its
            pages, ``downloads/``, ``files/``, ``static/`` and ``mathjax/`` are replaced).
        executed: Executed copies to take the outputs from (``make site``); by default the
            committed notebooks in ``notebooks_dir`` (``make html``).
        repo_root: What links like ``../src/...`` are resolved against (default: the
            parent of ``notebooks_dir``).
        source_label: How the footer names where the outputs come from.
        log: Where progress lines go.

    Raises:
        FileExistsError: ``out_dir`` holds other files (a safeguard for a mistyped --out).
        FileNotFoundError: no notebooks.
    """
    import nbformat

    start = time.perf_counter()
    notebooks_dir = Path(notebooks_dir)
    repo_root = Path(repo_root) if repo_root else notebooks_dir.resolve().parent
    sources = list(executed) if executed else find_notebooks(notebooks_dir)
    out_dir = Path(out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / SITE_MARKER).is_file():
        raise FileExistsError(
            f"{out_dir} holds files that are not a course site built here; choose an empty or "
            "new folder with --out (the builder replaces the pages of a folder it wrote)")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SITE_MARKER).write_text("written by python -m tools.course_site\n")
    for sub in ("downloads", "files", "static"):
        if (out_dir / sub).exists():
            shutil.rmtree(out_dir / sub)
    for old in out_dir.glob("*.html"):
        old.unlink()
    warnings: list[str] = []

    notebooks = []
    pages = []
    for path in sources:
        nb = nbformat.read(path, as_version=4)
        stem = Path(path).stem
        py = notebooks_dir / f"{stem}.py"
        page = Page(stem=stem, title=notebook_title(nb, stem),
                    summary=notebook_summary(nb, stem.split("_", 1)[0]),
                    ipynb=Path(path), py=py if py.is_file() else None, run=parse_run_info(nb))
        if page.py is None:
            warnings.append(f"{stem}: no {py.name} beside it; the page offers only the .ipynb")
        if page.run is None:
            warnings.append(f"{stem}: no run_info() line in its outputs")
        notebooks.append(nb)
        pages.append(page)

    for py in sorted(notebooks_dir.glob("[0-9][0-9]_*.py")):
        if py.stem not in {p.stem for p in pages}:
            warnings.append(f"{py.name} has no executed .ipynb beside it, so it has no page "
                            f"(pair it: jupytext --sync {py})")
    page_of = {p.stem: p.href for p in pages}
    nav = navigation([(p.href, p.title) for p in pages])
    built = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    label = source_label or "the committed notebooks"
    base = {"course_title": COURSE_TITLE, "subtitle": SUBTITLE, "built": built,
            "source": label, "count": len(pages)}
    source_dir = posixpath.normpath(
        os.path.relpath(notebooks_dir.resolve(), repo_root.resolve()).replace(os.sep, "/"))
    exporter = _exporter()
    downloads = out_dir / "downloads"
    downloads.mkdir()
    published: set[str] = set()

    for index, (page, nb) in enumerate(zip(pages, notebooks, strict=True)):
        dropped = clean_notebook(nb)
        if dropped:
            warnings.append(f"{page.stem}: dropped {dropped} widget output(s) (progress bars); "
                            "execute with TQDM_DISABLE=1 to keep them out of the notebook")

        def rewrite(url: str, _stem: str = page.stem) -> str:
            new, file = rewrite_url(url, page_of, source_dir)
            if file is None:
                return new
            path = repo_root / file
            if not path.is_file():
                warnings.append(f"{_stem}: link to {url} points to no file; left as it is")
                return url
            if file not in published:
                (out_dir / "files" / file).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, out_dir / "files" / file)
                published.add(file)
            return new

        exporter.register_filter("site_markdown", _markdown_filter(exporter, rewrite))
        shutil.copy2(page.ipynb, downloads / page.ipynb.name)
        if page.py is not None:
            shutil.copy2(page.py, downloads / page.py.name)
        site = dict(base, nav=nav[index], number=page.number, ipynb_name=page.ipynb.name,
                    ipynb_href=f"downloads/{page.ipynb.name}",
                    py_name=page.py.name if page.py else page.ipynb.name,
                    py_href=f"downloads/{page.py.name if page.py else page.ipynb.name}",
                    run=_run_context(page.run))
        resources = {"metadata": {"name": f"{page.title} · {COURSE_TITLE}",
                                  "path": str(page.ipynb.parent.resolve())},
                     "site": site}
        body, _ = exporter.from_notebook_node(nb, resources=resources)
        (out_dir / page.href).write_text(add_section_links(body), encoding="utf-8")
        log(f"  {page.href:<34} {page.title}"
            + (f"  [profile {page.run.profile}]" if page.run else "  [no run_info]"))

    _write_index(out_dir, pages, base)
    _copy_tree(TEMPLATES / "static", out_dir / "static")
    _copy_tree(_mathjax_dir(), out_dir / "mathjax", leave_out=MATHJAX_UNUSED)
    for warning in warnings:
        log(f"  warning: {warning}")
    return SiteReport(out_dir, pages, time.perf_counter() - start, warnings)


def _run_context(run: RunInfo | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {"profile": run.profile, "parts": list(run.parts), "preview": run.preview}


def _write_index(out_dir: Path, pages: Sequence[Page], base: Mapping[str, Any]) -> None:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES / "course")),
                             autoescape=False, keep_trailing_newline=True)
    runs: dict[str, dict[str, Any]] = {}
    for page in pages:
        if page.run is not None:
            entry = runs.setdefault(page.run.line, dict(_run_context(page.run) or {}, count=0))
            entry["count"] += 1
    site = dict(base, intro=INTRO, runs=list(runs.values()), pages=[
        {"href": p.href, "number": p.number, "summary": p.summary,
         "title": re.sub(r"^\d+\.\s+", "", p.title),  # the entry shows its number already
         "ipynb_href": f"downloads/{p.ipynb.name}",
         "py_href": f"downloads/{p.py.name if p.py else p.ipynb.name}"} for p in pages])
    text = env.get_template("home.html.j2").render(site=site)
    (out_dir / "index.html").write_text(text, encoding="utf-8")


def _format_size(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tools.course_site``: build the course site; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.course_site",
        description="Write the course site (HTML, works offline) from the notebooks. By "
                    "default from their committed outputs; with --execute, run them first "
                    "into the build folder, leaving the committed notebooks untouched.")
    parser.add_argument("--notebooks", type=Path, default=Path("notebooks"),
                        help="folder of NN_name.ipynb/.py pairs (default: notebooks)")
    parser.add_argument("--out", type=Path, default=Path("site"),
                        help="folder to write the site to (default: site)")
    parser.add_argument("--execute", action="store_true",
                        help="execute every notebook into --build first")
    parser.add_argument("--profile", default=None,
                        help="profile for --execute: quick, course or d2l "
                             "(default: $D2L_RESNET_PROFILE or course)")
    parser.add_argument("--build", type=Path, default=Path("build/notebooks"),
                        help="folder for the executed notebooks (default: build/notebooks)")
    parser.add_argument("--timeout", type=int, default=3600,
                        help="seconds one cell may run before the build fails (default: 3600)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        notebooks = find_notebooks(args.notebooks)
        executed = None
        label = None
        if args.execute:
            from d2l_resnet.profiles import get_profile

            profile = get_profile(args.profile).name
            print(f"==> executing {len(notebooks)} notebooks in profile {profile} into "
                  f"{args.build}/ (the committed notebooks are not changed)", flush=True)
            executed = execute_notebooks(notebooks, args.build, profile, timeout=args.timeout,
                                         log=lambda s: print(s, flush=True))
            label = f"a fresh run in profile {profile}"
        print(f"==> writing the site to {args.out}/ from "
              f"{args.build if executed else args.notebooks}/", flush=True)
        report = build_site(args.notebooks, args.out, executed=executed, source_label=label)
    except (ValueError, OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    index = (args.out / "index.html").resolve()
    print(f"==> {len(report.pages)} pages, {_format_size(report.size_bytes)} in {args.out}/, "
          f"{time.perf_counter() - start:.1f} s; open {index.as_uri()}")
    return 0

