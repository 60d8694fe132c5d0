"""The course site in a real browser (headless Chromium, driven by Playwright).

The site is built with the code ``make html`` runs (``python -m tools.course_site``, from the
committed outputs) into a temporary folder; every page is opened from disk (``file://``)
and from a loopback HTTP server, and must show: no console error, no request to another
host, math typeset by the site's own MathJax, every image decoded (PNG outputs and SVG
diagrams alike), every local link resolving, the navigation in the course's order. A
screenshot of one page is saved under ``test-artifacts/``.

Without Chromium the test is skipped (and says how to install it); under CI (``CI=true``)
it fails instead. Playwright never downloads a browser here: it drives the system's.
"""

from __future__ import annotations

import functools
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
from browser import CHROMIUM_ARGS, INSTALL_HINT
from browser import chromium as _chromium
from browser import unavailable as _unavailable

from tools.course_site.content import parse_glossary

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
GLOSSARY = REPO / "docs" / "glossary.md"
ARTIFACTS = REPO / "test-artifacts"
NOTEBOOK_STEMS = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
PAGES = ["index.html", *(f"{stem}.html" for stem in NOTEBOOK_STEMS)]
# The page saved as a screenshot: the one with the most to look at (math and figures).
SCREENSHOT_PAGE = next((f"{s}.html" for s in NOTEBOOK_STEMS if s.startswith("05_")),
                       PAGES[-1])
# TeX that MathJax should have replaced, in the text a reader sees outside code: a dollar,
# a delimiter like \( or \[, or a command like \frac.
RAW_MATH = re.compile(r"\$|\\[()\[\]]|\\[A-Za-z]+")


def _has_math(stem: str) -> bool:
    """Whether the notebook's markdown holds TeX (read from the notebook, not the page)."""
    nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    text = re.sub(r"```.*?```|`[^`\n]*`", "", text, flags=re.S)  # code is not math
    return bool(re.search(r"\$[^$\s][^$]*\$|\\\(|\\\[", text))


def _figures(stem: str) -> int:
    """The images the page must show: PNG and SVG outputs (nbconvert shows both as ``<img>``)
    and images in the markdown."""
    nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    outputs = sum(bool({"image/png", "image/svg+xml"} & set(o.get("data", {})))
                  for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    markdown = re.sub(r"```.*?```|`[^`\n]*`", "", markdown, flags=re.S)  # code shows no image
    return outputs + len(re.findall(r"!\[[^\]]*\]\(|<img\b", markdown))


def _images(page: Any) -> list[dict[str, Any]]:
    """Every ``<img>`` of the page (PNG, SVG, any type), decoded or not, and its size."""
    return page.evaluate("""Promise.all([...document.images].map(i => i.decode().then(
        () => true, () => false).then(decoded => ({
            src: i.src.slice(-80), decoded: decoded, w: i.naturalWidth, h: i.naturalHeight}))))""")


def _undecoded(images: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in images if not (i["decoded"] and i["w"] > 0 and i["h"] > 0)]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as ``make html`` writes it, in a temporary folder."""
    from tools.course_site.build import main

    if not NOTEBOOK_STEMS:
        pytest.fail(f"no notebooks NN_name.ipynb in {NOTEBOOKS} to build the site from")
    out = tmp_path_factory.mktemp("site") / "site"
    assert main(["--notebooks", str(NOTEBOOKS), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[str]:
    """The site over HTTP on the loopback interface; yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    if executable is None:
        _unavailable(INSTALL_HINT)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright (Python) is missing: install the dev extras with "
                     "`pip install -e '.[dev]'` (no browser download is needed)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class PageVisit:
    """One page opened in a fresh browser context, with what it logged and requested."""

    def __init__(self, browser: Any, url: str, allowed: tuple[str, ...]) -> None:
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.failed: list[str] = []
        self.context = browser.new_context(viewport={"width": 1200, "height": 900},
                                           service_workers="block")

        def route(route: Any) -> None:
            if route.request.url.startswith(allowed):
                route.continue_()
            else:
                self.foreign.append(route.request.url)
                route.abort()

        self.context.route("**/*", route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.page.on("requestfailed", lambda r: self.failed.append(
            f"{r.url[:120]} ({r.failure})"))
        self.page.on("request", lambda r: None if r.url.startswith(allowed)
                     else self.foreign.append(r.url))
        self.page.goto(url, wait_until="load")
        if self.page.evaluate("typeof window.MathJax !== 'undefined'"):
            self.page.wait_for_function(
                "document.documentElement.getAttribute('data-mathjax') === 'done'",
                timeout=60_000)
        # What the typeset math asks for (fonts above all) loads after MathJax is done.
        self.page.evaluate("document.fonts.ready.then(() => true)")
        self.page.wait_for_load_state("networkidle")

    def close(self) -> None:
        self.context.close()


def _local_target(href: str, base: str, site: Path) -> tuple[Path, str] | None:
    """The site file and fragment a link points to, or None for another host."""
    if not href.startswith(base):
        return None
    parts = urlsplit(href)
    rel = unquote(parts.path)[len(unquote(urlsplit(base).path)):]
    return site / (rel or "index.html"), unquote(parts.fragment)


def _ids(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return {unquote(m) for m in re.findall(r'\bid="([^"]+)"', text)}


@pytest.mark.parametrize("mode", ["file", "http"])
@pytest.mark.parametrize("name", PAGES)
def test_page_in_browser(browser: Any, site: Path, server: str, name: str, mode: str) -> None:
    base = site.as_uri() + "/" if mode == "file" else server
    allowed = (base, "data:") if mode == "http" else ("file://", "data:")
    visit = PageVisit(browser, base + name, allowed)
    page = visit.page
    try:
        assert visit.errors == [], (
            f"console errors on {name}: {visit.errors}; failed requests: {visit.failed}")
        assert visit.foreign == [], f"{name} requested other hosts: {visit.foreign}"
        assert visit.failed == [], f"{name}: requests failed: {visit.failed}"

        # Math: typeset by MathJax, no TeX left in the text a reader sees.
        stem = name.removesuffix(".html")
        typeset = page.evaluate(
            "document.querySelectorAll('.MathJax, .MathJax_Display, .MathJax_SVG').length")
        math_errors = page.evaluate(
            "document.querySelectorAll('.MathJax_Error, .noError, merror').length")
        assert math_errors == 0, f"{name}: {math_errors} formulas failed to typeset"
        visible = page.evaluate("""() => {
            const body = document.body.cloneNode(true);
            body.querySelectorAll('pre, code, kbd, script, style, .MathJax_Preview')
                .forEach(e => e.remove());
            return body.innerText;
        }""")
        raw = sorted(set(RAW_MATH.findall(visible)))
        assert raw == [], f"{name}: raw TeX left in the visible text: {raw}"
        if stem in NOTEBOOK_STEMS and _has_math(stem):
            assert typeset > 0, f"{name} has math in its notebook but MathJax typeset none"

        # Images: every one decoded with a size; every figure of the notebook is there.
        images = _images(page)
        assert _undecoded(images) == [], f"{name}: images not decoded: {_undecoded(images)}"
        if stem in NOTEBOOK_STEMS:
            assert len(images) >= _figures(stem), f"{name}: figures missing"
            assert page.locator(".jupyter-widgets").count() == 0, f"{name}: a widget leaked"
            assert page.locator(".run-info .profile").count() == 1, f"{name}: no run info"

        # Links: every link into the site resolves, fragments included.
        hrefs = page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)")
        broken = []
        for href in hrefs:
            target = _local_target(href, base, site)
            if target is None:
                assert not href.startswith(("file:", "http://127.0.0.1")), href
                continue
            path, fragment = target
            resolves = path.is_file() and not (
                fragment and path.suffix == ".html" and fragment not in _ids(path))
            if not resolves:
                broken.append(href)
        assert broken == [], f"{name}: links that do not resolve: {broken}"

        # Navigation: previous / contents / next in the course's order.
        if stem in NOTEBOOK_STEMS:
            i = NOTEBOOK_STEMS.index(stem)
            expected_prev = f"{NOTEBOOK_STEMS[i - 1]}.html" if i > 0 else None
            expected_next = (f"{NOTEBOOK_STEMS[i + 1]}.html"
                             if i + 1 < len(NOTEBOOK_STEMS) else None)
            header = page.locator(".site-nav")
            assert header.locator("a.nav-index").get_attribute("href") == "index.html"
            for rel, expected in (("prev", expected_prev), ("next", expected_next)):
                links = header.locator(f"a[rel={rel}]")
                if expected is None:
                    assert links.count() == 0, f"{name}: unexpected {rel} link"
                else:
                    assert links.get_attribute("href") == expected, f"{name}: {rel} link"
            downloads = page.locator(".downloads a").evaluate_all("as => as.map(a => a.href)")
            assert [Path(unquote(urlsplit(d).path)).name for d in downloads] == [
                f"{stem}.ipynb", f"{stem}.py"]
        else:
            toc = page.locator(".toc-link").evaluate_all(
                "as => as.map(a => a.getAttribute('href'))")
            assert toc == [f"{s}.html" for s in NOTEBOOK_STEMS], "index: notebooks out of order"
            assert page.locator("h1").inner_text().strip(), "index: no course title"
            summaries = page.locator(".toc-summary").all_inner_texts()
            assert all(s.strip() for s in summaries), "index: a notebook without a summary"
            if GLOSSARY.is_file():
                expected = parse_glossary(GLOSSARY.read_text(encoding="utf-8"))
                rows = page.locator("table.glossary tbody tr")
                assert expected is not None and rows.count() == len(expected.rows), (
                    "index: the glossary table does not show every term of docs/glossary.md")
                assert rows.first.locator("td").first.inner_text().strip()

        if mode == "file" and name in (SCREENSHOT_PAGE, "index.html"):
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"site-{stem}.png"), full_page=True)
    finally:
        visit.close()


def test_next_links_walk_the_course_in_order(browser: Any, site: Path) -> None:
    """From the index, the first notebook, then "Next" until the last one."""
    visit = PageVisit(browser, (site / "index.html").as_uri(), ("file://", "data:"))
    page = visit.page
    try:
        page.locator(".toc-link").first.click()
        page.wait_for_load_state("load")
        seen = [Path(urlsplit(page.url).path).name]
        while page.locator(".site-nav a[rel=next]").count():
            page.locator(".site-nav a[rel=next]").click()
            page.wait_for_load_state("load")
            seen.append(Path(urlsplit(page.url).path).name)
        assert seen == PAGES[1:]
        page.locator(".site-nav a.nav-index").click()
        assert Path(urlsplit(page.url).path).name == "index.html"
        assert visit.errors == []
    finally:
        visit.close()


def test_svg_figures_are_checked_like_any_image(browser: Any, tmp_path: Path) -> None:
    """An SVG file a notebook's markdown links to is published and decoded; a broken one is caught.

    The course's diagrams are SVG cell outputs (``test_page_in_browser`` checks them as
    ``<img>``); a tiny course shows that the same check covers SVG files named in the
    markdown: ``broken.svg`` (no SVG namespace) loads but cannot be decoded.
    """
    from tools.course_site.build import build_site

    figures = tmp_path / "notebooks" / "figures"
    figures.mkdir(parents=True)
    shape = '<rect width="120" height="40" fill="#4a7"/></svg>\n'
    (figures / "residual_block.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 120 40">' + shape)
    (figures / "broken.svg").write_text('<svg viewBox="0 0 120 40">' + shape)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "# 1. Figures\n\n![The residual block](figures/residual_block.svg)\n\n"
        "![Broken](figures/broken.svg)")])
    nbformat.write(nb, tmp_path / "notebooks" / "01_figures.ipynb")
    site = tmp_path / "site"
    build_site(tmp_path / "notebooks", site, log=lambda line: None)
    visit = PageVisit(browser, (site / "01_figures.html").as_uri(), ("file://", "data:"))
    try:
        assert visit.foreign == [] and visit.failed == []
        images = _images(visit.page)
        assert [i["src"].rsplit("/", 1)[-1] for i in images] == ["residual_block.svg",
                                                                "broken.svg"]
        assert [i["src"].rsplit("/", 1)[-1] for i in _undecoded(images)] == ["broken.svg"]
    finally:
        visit.close()
