"""Executing the notebooks, rendering them with nbconvert, writing the site; the CLI.

nbconvert renders each page (its lab template inside the course's, without prompts)
and runs its ``CoalesceStreamsPreprocessor`` first: consecutive prints to one stream
become one block, and text progress bars redrawn with carriage returns keep their final
state. nbclient executes the notebooks for ``--execute``. Left to this module: widget
outputs dropped, the site's Markdown filter (math protected, links rewritten), the
repository files the notebooks link to published, the index, and a local MathJax.
"""

from __future__ import annotations

import argparse
import functools
import os
import posixpath
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
import nbformat
from nbconvert import HTMLExporter
from nbconvert.filters import strip_files_prefix
from nbconvert.preprocessors import CoalesceStreamsPreprocessor, Preprocessor

from tools.course_site.content import (
    COURSE_TITLE,
    Glossary,
    RunInfo,
    add_section_links,
    navigation,
    notebook_summary,
    notebook_title,
    parse_glossary,
    parse_run_info,
    protect_math,
    restore_math,
    rewrite_links,
    rewrite_url,
)

GLOSSARY = Path("docs") / "glossary.md"   # relative to the repository root
NOTEBOOK_PATTERN = re.compile(r"^\d\d_[A-Za-z0-9_]+\.ipynb$")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
TEMPLATES = Path(__file__).with_name("templates")
SITE_MARKER = ".d2l-resnet-site"
MATHJAX_CONFIG = "config/TeX-AMS-MML_HTMLorMML-full.js"
# Parts of the MathJax copy that the pages never load: the SVG output's fonts (the package
# ships no SVG output to use them) and the accessibility explorer (reached from MathJax's
# menu, which the pages switch off). Leaving them out halves the site's size.
MATHJAX_UNUSED = ("jax/output/SVG", "extensions/a11y")


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

    @property
    def short_title(self) -> str:
        """The title without its number (the index shows the number already)."""
        return re.sub(r"^\d+\.\s+", "", self.title)

    @property
    def ipynb_href(self) -> str:
        return f"downloads/{self.ipynb.name}"

    @property
    def py_name(self) -> str:
        """The second download: the ``.py`` when there is one, else the ``.ipynb`` again."""
        return self.py.name if self.py else self.ipynb.name

    @property
    def py_href(self) -> str:
        return f"downloads/{self.py_name}"


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


# ---------------------------------------------------------------------------------------
# Finding and executing the notebooks


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
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    from d2l_resnet.profiles import PROFILE_ENV, get_profile

    profile = get_profile(profile).name
    os.environ[PROFILE_ENV] = profile
    os.environ["TQDM_DISABLE"] = "1"
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    executed = []
    for i, source in enumerate(notebooks, 1):
        step = f"[{i}/{len(notebooks)}] {source.stem}"
        nb = nbformat.read(source, as_version=4)
        target = build_dir / source.name
        log(f"{step}: executing (profile {profile}) ...")
        client = NotebookClient(
            nb, timeout=timeout, kernel_name="python3",
            resources={"metadata": {"path": str(source.parent.resolve())}},
            # ipykernel warns on every start that its local TCP channels are unencrypted.
            extra_arguments=["--IPKernelApp.log_level=ERROR"])
        start = time.perf_counter()
        try:
            client.execute()
        except CellExecutionError as err:
            raise RuntimeError(f"{source.name} failed; the partly executed notebook is "
                               f"{target}\n{err}") from err
        finally:
            nbformat.write(nb, target)
        log(f"{step}: done in {time.perf_counter() - start:.1f} s -> {target}")
        executed.append(target)
    return executed


# ---------------------------------------------------------------------------------------
# Rendering with nbconvert


class DropWidgetOutputs(Preprocessor):
    """Drop widget outputs and the notebook's widget state.

    tqdm's progress bars in Jupyter are widgets: showing one takes a widget manager from a
    CDN, and once the run is over it says nothing. nbconvert would show a widget without
    its state as its text fallback, the bar as it was first drawn. The number dropped is
    left in ``resources["widgets_dropped"]``.
    """

    def preprocess(self, nb: Any, resources: Any) -> tuple[Any, Any]:
        nb.metadata.pop("widgets", None)
        resources["widgets_dropped"] = 0
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell: Any, resources: Any, index: int) -> tuple[Any, Any]:
        if "outputs" in cell:
            kept = [o for o in cell.outputs if WIDGET_MIME not in o.get("data", {})]
            resources["widgets_dropped"] += len(cell.outputs) - len(kept)
            cell.outputs = kept
        return cell, resources


# What runs on each notebook before it is rendered, in this order: widgets out first, so
# the prints on either side of one are merged.
PREPROCESSORS = (DropWidgetOutputs, CoalesceStreamsPreprocessor)


def _exporter() -> HTMLExporter:
    """nbconvert's HTML exporter with the course template and the site's Markdown filter.

    The template's ``site_markdown`` filter is nbconvert's own, with the math protected and
    the links rewritten by the page's ``resources["rewrite"]``.
    """
    exporter = HTMLExporter(
        template_name="course",
        extra_template_basedirs=[str(TEMPLATES)],
        preprocessors=list(PREPROCESSORS),
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=False,  # True would pass HTML blocks through bs4, closing <details> early
        sanitize_html=False,
    )

    @jinja2.pass_context
    def site_markdown(context: Any, source: str) -> str:
        text, spans = protect_math(source)
        rendered = strip_files_prefix(exporter.markdown2html(context, text))
        return rewrite_links(restore_math(rendered, spans), context["resources"]["rewrite"])

    exporter.register_filter("site_markdown", site_markdown)
    return exporter


@dataclass
class _Links:
    """Rewrites the links of the pages and copies the repository files they name."""

    pages: Mapping[str, str]
    source_dir: str
    repo_root: Path
    out_dir: Path
    warnings: list[str]

    def for_page(self, stem: str) -> Callable[[str], str]:
        """The rewrite (see ``rewrite_url``) of one page's links."""

        def rewrite(url: str) -> str:
            new, file = rewrite_url(url, self.pages, self.source_dir)
            if file is None:
                return new
            source, copy = self.repo_root / file, self.out_dir / "files" / file
            if not source.is_file():
                self.warnings.append(f"{stem}: link to {url} points to no file; left as it is")
                return url
            if not copy.exists():
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, copy)
            return new

        return rewrite


# ---------------------------------------------------------------------------------------
# Writing the site


def _prepare(out_dir: Path) -> None:
    """Make ``out_dir`` ready: new or emptied of what an earlier build wrote."""
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / SITE_MARKER).is_file():
        raise FileExistsError(
            f"{out_dir} holds files that are not a course site built here; choose an empty or "
            "new folder with --out (the builder replaces the pages of a folder it wrote)")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SITE_MARKER).write_text("written by python -m tools.course_site\n")
    for sub in ("downloads", "files", "static", "mathjax"):
        shutil.rmtree(out_dir / sub, ignore_errors=True)
    for old in out_dir.glob("*.html"):
        old.unlink()
    (out_dir / "downloads").mkdir()


def _read_pages(sources: Sequence[Path], notebooks_dir: Path,
                warnings: list[str]) -> list[tuple[Page, Any]]:
    """Each notebook with its page; what is missing goes to ``warnings``."""
    read = []
    for path in map(Path, sources):
        nb = nbformat.read(path, as_version=4)
        py = notebooks_dir / f"{path.stem}.py"
        page = Page(stem=path.stem, title=notebook_title(nb, path.stem),
                    summary=notebook_summary(nb, path.stem.split("_", 1)[0]),
                    ipynb=path, py=py if py.is_file() else None, run=parse_run_info(nb))
        if page.py is None:
            warnings.append(f"{page.stem}: no {py.name} beside it; the page offers only "
                            "the .ipynb")
        if page.run is None:
            warnings.append(f"{page.stem}: no run_info() line in its outputs")
        read.append((page, nb))
    stems = {page.stem for page, _ in read}
    for py in sorted(notebooks_dir.glob("[0-9][0-9]_*.py")):
        if py.stem not in stems:
            warnings.append(f"{py.name} has no executed .ipynb beside it, so it has no page "
                            f"(pair it: jupytext --sync {py})")
    return read


def _copy_tree(source: Path, target: Path, leave_out: Sequence[str] = ()) -> None:
    skip = {source / part for part in leave_out}
    shutil.copytree(source, target, ignore=lambda folder, names: [
        n for n in names if Path(folder, n) in skip])


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


def _write_index(out_dir: Path, pages: Sequence[Page], base: Mapping[str, Any]) -> None:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES / "course")),
                             autoescape=False, keep_trailing_newline=True)
    runs = Counter(page.run for page in pages if page.run is not None)
    site = dict(base, pages=pages, runs=list(runs.items()))
    text = env.get_template("home.html.j2").render(site=site)
    (out_dir / "index.html").write_text(text, encoding="utf-8")


def _read_glossary(repo_root: Path, warnings: list[str]) -> Glossary | None:
    """The glossary table for the index, from ``docs/glossary.md`` if the repository has one."""
    path = repo_root / GLOSSARY
    if not path.is_file():
        return None
    glossary = parse_glossary(path.read_text(encoding="utf-8"))
    if glossary is None or not glossary.rows:
        warnings.append(f"{GLOSSARY} holds no Markdown table of terms; the index shows none")
        return None
    return glossary


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
        repo_root: What links like ``../src/...`` are resolved against, and where
            ``docs/glossary.md`` (the index's glossary, if present) is read (default: the
            parent of ``notebooks_dir``).
        source_label: How the footer names where the outputs come from.
        log: Where progress lines go.

    Raises:
        FileExistsError: ``out_dir`` holds other files (a safeguard for a mistyped --out).
        FileNotFoundError: no notebooks.
    """
    start = time.perf_counter()
    notebooks_dir, out_dir = Path(notebooks_dir), Path(out_dir)
    repo_root = Path(repo_root) if repo_root else notebooks_dir.resolve().parent
    sources = list(executed) if executed else find_notebooks(notebooks_dir)
    _prepare(out_dir)
    warnings: list[str] = []
    read = _read_pages(sources, notebooks_dir, warnings)
    pages = [page for page, _ in read]
    base = {"course_title": COURSE_TITLE, "count": len(pages),
            "built": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "source": source_label or "the committed notebooks",
            "glossary": _read_glossary(repo_root, warnings)}
    source_dir = posixpath.normpath(
        os.path.relpath(notebooks_dir.resolve(), repo_root.resolve()).replace(os.sep, "/"))
    links = _Links({p.stem: p.href for p in pages}, source_dir, repo_root, out_dir, warnings)
    exporter = _exporter()
    nav = navigation([(p.href, p.title) for p in pages])
    for (page, nb), page_nav in zip(read, nav, strict=True):
        for download in (page.ipynb, page.py):
            if download is not None:
                shutil.copy2(download, out_dir / "downloads" / download.name)
        resources = {"metadata": {"name": f"{page.title} · {COURSE_TITLE}",
                                  "path": str(page.ipynb.parent.resolve())},
                     "site": dict(base, nav=page_nav, page=page),
                     "rewrite": links.for_page(page.stem)}
        body, resources = exporter.from_notebook_node(nb, resources=resources)
        (out_dir / page.href).write_text(add_section_links(body), encoding="utf-8")
        if resources["widgets_dropped"]:
            warnings.append(f"{page.stem}: dropped {resources['widgets_dropped']} widget "
                            "output(s) (progress bars); execute with TQDM_DISABLE=1 to keep "
                            "them out of the notebook")
        log(f"  {page.href:<34} {page.title}"
            + (f"  [profile {page.run.profile}]" if page.run else "  [no run_info]"))
    _write_index(out_dir, pages, base)
    _copy_tree(TEMPLATES / "static", out_dir / "static")
    _copy_tree(_mathjax_dir(), out_dir / "mathjax", leave_out=MATHJAX_UNUSED)
    for warning in warnings:
        log(f"  warning: {warning}")
    return SiteReport(out_dir, pages, time.perf_counter() - start, warnings)


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
    say = functools.partial(print, flush=True)
    try:
        notebooks, executed, label = find_notebooks(args.notebooks), None, None
        if args.execute:
            from d2l_resnet.profiles import get_profile

            profile = get_profile(args.profile).name
            say(f"==> executing {len(notebooks)} notebooks in profile {profile} into "
                f"{args.build}/ (the committed notebooks are not changed)")
            executed = execute_notebooks(notebooks, args.build, profile,
                                         timeout=args.timeout, log=say)
            label = f"a fresh run in profile {profile}"
        say(f"==> writing the site to {args.out}/ from "
            f"{args.build if executed else args.notebooks}/")
        report = build_site(args.notebooks, args.out, executed=executed, source_label=label)
    except (ValueError, OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    index = (args.out / "index.html").resolve()
    print(f"==> {len(report.pages)} pages, {report.size_bytes / 1e6:.1f} MB in {args.out}/, "
          f"{time.perf_counter() - start:.1f} s; open {index.as_uri()}")
    return 0
