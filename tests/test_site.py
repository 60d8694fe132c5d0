"""The course site in a real browser (headless Chromium, driven by Playwright).

The site is built once, with the code ``make html`` runs (``tools.course_site.build``,
from the committed outputs), into a temporary folder. Every page is opened from disk
(``file://``) and from a loopback HTTP server, and must show: no console error, no request
to another host or that failed (a page's requests cut off by leaving it do not count),
math typeset by the site's own MathJax, every image decoded (PNG outputs and SVG diagrams
alike), every local link resolving, a sidebar with every page, previous and next links
in the sidebar's order; a notebook's page, its run information and its downloads, and
its exercise solutions collapsed. Search finds an English and a Chinese term from both
places, and the pages fit a phone's screen. What is expected is read from the notebooks
and ``docs/``, never written here. Screenshots go to ``test-artifacts/``.

Without Chromium the tests are skipped (and say how to install it); under CI (``CI=true``)
they fail instead. Playwright never downloads a browser here: it drives the system's.
"""

from __future__ import annotations

import functools
import http.server
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import nbformat
import pytest
from browser import launch_chromium

from tools.course_site.build import build

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.version_info < (3, 11), reason="the course site needs Python 3.11 "
                       "or newer (Sphinx 9, sphinx-book-theme 1.4): see pyproject.toml"),
    # Sphinx's notes to the themes' and myst's authors, about their use of its API.
    pytest.mark.filterwarnings("ignore:.*Check CHANGES for Sphinx API modifications"),
]

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS, DOCS = REPO / "notebooks", REPO / "docs"
ARTIFACTS = REPO / "test-artifacts"
NOTEBOOK_STEMS = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
DOC_STEMS = sorted(p.stem for p in DOCS.glob("*.md"))
PAGES = [f"{stem}.html" for stem in (*DOC_STEMS, *NOTEBOOK_STEMS)]
# A term in English and one in Chinese that a student would search for.
SEARCHES = ["BatchNorm", "残差块"]
# TeX that MathJax should have replaced, in the text a reader sees outside code: a dollar,
# a delimiter like \( or \[, or a command like \frac.
RAW_MATH = re.compile(r"\$|\\[()\[\]]|\\[A-Za-z]+")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
RUN_INFO = re.compile(r"^profile [\w-]+ \| d2l_resnet ", re.M)
# True once MathJax 2 has typeset every formula of the page (or marked it as an error).
MATH_TYPESET = """() => [...document.querySelectorAll('.math.notranslate')].every(math => {
    const scripts = [...math.querySelectorAll('script[type^="math/"]')];
    return scripts.length > 0 && scripts.every(s => s.MathJax && (s.MathJax.error
        || s.MathJax.state === MathJax.ElementJax.STATE.PROCESSED));
})"""


@functools.cache
def _markdown(stem: str) -> str:
    """The Markdown a page is made of (a notebook's markdown cells, or a file of docs/)."""
    if stem not in NOTEBOOK_STEMS:
        return (DOCS / f"{stem}.md").read_text(encoding="utf-8")
    nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def _has_math(stem: str) -> bool:
    return bool(re.search(r"\$[^$\s][^$]*\$|\\\(|\\\[", CODE.sub("", _markdown(stem))))


def _figures(stem: str) -> int:
    """The images a notebook's page must show: PNG and SVG outputs, images in the markdown."""
    nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    outputs = sum(bool({"image/png", "image/svg+xml"} & set(o.get("data", {})))
                  for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    return outputs + len(re.findall(r"!\[[^\]]*\]\(|<img\b", CODE.sub("", _markdown(stem))))


def _has_run_info(stem: str) -> bool:
    nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    return any(RUN_INFO.search(o.get("text", "")) for c in nb.cells if c.cell_type == "code"
               for o in c.outputs)


def _table_rows(markdown: str) -> list[str]:
    """The first cell of every body row of every Markdown table (after its ``|---|`` line)."""
    rows, in_table = [], False
    for line in markdown.splitlines():
        line = line.strip()
        if re.fullmatch(r"\|?(\s*:?-+:?\s*\|)+\s*(:?-+:?)?\s*", line):
            in_table = True
        elif in_table and line.startswith("|"):
            rows.append(line.strip("|").split("|")[0].strip())
        else:
            in_table = False
    return rows


def _pages_with(term: str, headings_only: bool = False) -> set[str]:
    """The pages whose Markdown (or only its headings) holds ``term``, outside code."""
    pattern = r"^#{1,6} .*" if headings_only else r".+"
    return {f"{stem}.html" for stem in (*DOC_STEMS, *NOTEBOOK_STEMS)
            if any(term.lower() in line.lower()
                   for line in re.findall(pattern, CODE.sub("", _markdown(stem)), re.M))}


def _images(page: Any) -> list[dict[str, Any]]:
    """Every ``<img>`` of the page (PNG, SVG, any type), decoded or not, and its size."""
    return page.evaluate("""Promise.all([...document.images].map(i => i.decode().then(
        () => true, () => false).then(decoded => ({
            src: i.src.slice(-80), decoded: decoded, w: i.naturalWidth, h: i.naturalHeight}))))""")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as ``make html`` writes it, in a temporary folder."""
    if not NOTEBOOK_STEMS:
        pytest.fail(f"no notebooks NN_name.ipynb in {NOTEBOOKS} to build the site from")
    work = tmp_path_factory.mktemp("site")
    assert build(work / "site", work=work / "build") == 0, "the build gave warnings or failed"
    return work / "site"


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
    with launch_chromium() as browser:
        yield browser


@pytest.fixture(params=["file", "http"])
def base(request: pytest.FixtureRequest, site: Path) -> str:
    """Where the site is opened from: the folder on disk, or the loopback server."""
    return site.as_uri() + "/" if request.param == "file" else request.getfixturevalue("server")


class PageVisit:
    """One page opened in a fresh browser context, with what it logged and requested."""

    def __init__(self, browser: Any, url: str, base: str,
                 viewport: tuple[int, int] = (1200, 900)) -> None:
        allowed = (base if base.startswith("http") else "file://", "data:")
        self.errors: list[str] = []
        self.foreign: list[str] = []
        # Each failed request with the page it was made from: leaving a page cuts off
        # what it was still loading (net::ERR_ABORTED), which is no fault of the site.
        self.failed: list[tuple[str, str | None, str]] = []
        made_from: dict[Any, str] = {}
        self.context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]},
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
        self.page.on("request", lambda r: made_from.setdefault(r, self.page.url))
        self.page.on("requestfailed", lambda r: self.failed.append(
            (f"{r.url[:120]} ({r.failure})", r.failure, made_from.get(r, ""))))
        self.page.goto(url, wait_until="load")
        if self.page.evaluate("typeof window.MathJax !== 'undefined'"):
            # Done when every formula Sphinx wrote (class "math notranslate") holds the
            # script MathJax made of it, typeset by the output jax. MathJax's own signals
            # (its queue, the startup's End hook) can fire while a jax it loads late is
            # still at work, which a busy machine showed twice.
            from playwright.sync_api import TimeoutError as PlaywrightTimeout
            try:
                self.page.wait_for_function(MATH_TYPESET, timeout=120_000)
            except PlaywrightTimeout:
                pytest.fail(f"{url}: MathJax had not typeset every formula after 120 s")
        # What the typeset math asks for (fonts above all) loads after MathJax is done.
        self.page.evaluate("document.fonts.ready.then(() => true)")
        self.page.wait_for_load_state("networkidle")

    def assert_clean(self) -> None:
        failed = [text for text, failure, page in self.failed
                  if not (failure == "net::ERR_ABORTED" and page != self.page.url)]
        assert self.errors == [], f"console errors: {self.errors}; failed: {failed}"
        assert self.foreign == [], f"requests to other hosts: {self.foreign}"
        assert failed == [], f"requests that failed: {failed}"

    def hrefs(self, selector: str) -> list[str]:
        """The page names (``02_resnet18.html``) the links matched by ``selector`` point to."""
        return [Path(unquote(urlsplit(h).path)).name for h in self.page.locator(
            selector).evaluate_all("as => as.map(a => a.href)")]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser: Any) -> Iterator[Any]:
    """Opens pages; closes each at the end of the test."""
    visits: list[PageVisit] = []

    def open_page(url: str, base: str, **kwargs: Any) -> PageVisit:
        visits.append(PageVisit(browser, url, base, **kwargs))
        return visits[-1]

    yield open_page
    for v in visits:
        v.close()


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


@pytest.fixture(scope="module")
def course_order(browser: Any, site: Path) -> list[str]:
    """The pages in the order of the sidebar (the table of contents), read from the index."""
    v = PageVisit(browser, (site / "index.html").as_uri(), site.as_uri())
    try:
        return v.hrefs(".bd-sidebar-primary nav a.reference")
    finally:
        v.close()


def test_the_sidebar_lists_every_page_notebooks_in_order(course_order: list[str]) -> None:
    assert sorted(course_order) == sorted(PAGES)
    assert [p for p in course_order if p.removesuffix(".html") in NOTEBOOK_STEMS] == [
        f"{stem}.html" for stem in NOTEBOOK_STEMS]


@pytest.mark.parametrize("name", PAGES)
def test_page_in_browser(visit: Any, site: Path, base: str, name: str,
                         course_order: list[str]) -> None:
    v = visit(base + name, base)
    page, stem = v.page, name.removesuffix(".html")
    v.assert_clean()

    # Math: typeset by MathJax, no TeX left in the text a reader sees.
    typeset = page.evaluate("document.querySelectorAll('.MathJax, .MathJax_Display').length")
    errors = page.evaluate("document.querySelectorAll('.MathJax_Error, .noError, merror').length")
    assert errors == 0, f"{name}: {errors} formulas failed to typeset"
    visible = page.evaluate("""() => {
        const body = document.body.cloneNode(true);
        body.querySelectorAll('pre, code, kbd, script, style, .MathJax_Preview')
            .forEach(e => e.remove());
        return body.innerText;
    }""")
    assert sorted(set(RAW_MATH.findall(visible))) == [], f"{name}: raw TeX left"
    if _has_math(stem):
        assert typeset > 0, f"{name} has math in its Markdown but MathJax typeset none"

    # Images: every one decoded with a size.
    images = _images(page)
    undecoded = [i for i in images if not (i["decoded"] and i["w"] > 0 and i["h"] > 0)]
    assert undecoded == [], f"{name}: images not decoded: {undecoded}"

    # Links: every link into the site resolves, fragments included.
    broken = []
    for href in page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)"):
        target = _local_target(href, base, site)
        if target is None:
            assert not href.startswith(("file:", "http://127.0.0.1")), href
            continue
        path, fragment = target
        if not path.is_file() or (fragment and path.suffix == ".html"
                                  and fragment not in _ids(path)):
            broken.append(href)
    assert broken == [], f"{name}: links that do not resolve: {broken}"

    # Navigation: a sidebar with every page; previous and next in its order.
    assert sorted(v.hrefs(".bd-sidebar-primary nav a.reference")) == sorted(PAGES)
    i = course_order.index(name)
    assert v.hrefs(".prev-next-area a.left-prev") == course_order[max(i - 1, 0):i]
    assert v.hrefs(".prev-next-area a.right-next") == course_order[i + 1:i + 2]

    if stem in NOTEBOOK_STEMS:
        assert len(images) >= _figures(stem), f"{name}: figures missing"
        assert page.locator(".jupyter-widgets, .widget-area").count() == 0, "a widget leaked"
        if _has_run_info(stem):
            assert page.locator(".run-info .profile").count() == 1, f"{name}: no run info"
        assert v.hrefs(".run-info .downloads a") == [f"{stem}.ipynb", f"{stem}.py"]
        assert f"{stem}.ipynb" in v.hrefs(".dropdown-download-buttons a"), "theme download"
        # Exercise solutions (<details> in the markdown) are there, and closed.
        details = len(re.findall(r"<details\b", CODE.sub("", _markdown(stem))))
        assert page.locator("details").count() >= details
        assert page.locator("details[open]").count() == 0, f"{name}: a solution is open"
        if details:
            assert not page.locator("details > :not(summary)").first.is_visible()
    rows = _table_rows(_markdown(stem))
    if stem not in NOTEBOOK_STEMS and rows:  # the glossary, the notation: every row shown
        cells = page.locator("table tbody tr td:first-child").all_inner_texts()
        assert len(cells) >= len(rows) and cells[0].strip(), f"{name}: table rows missing"

    if base.startswith("file:") and name in ("index.html", PAGES[-1]):
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"site-{stem}.png"), full_page=True)


def test_downloads_are_the_notebooks_and_their_py_files(site: Path) -> None:
    for stem in NOTEBOOK_STEMS:
        for suffix in (".ipynb", ".py"):
            source = NOTEBOOKS / f"{stem}{suffix}"
            if source.is_file():
                assert (site / "_sources" / source.name).read_bytes() == source.read_bytes()


@pytest.mark.parametrize("term", SEARCHES)
def test_search_finds_the_page(visit: Any, base: str, term: str) -> None:
    """The search page, from disk and over HTTP, finds every page whose text holds the term,
    first one whose headings do."""
    in_headings, anywhere = _pages_with(term, headings_only=True), _pages_with(term)
    assert anywhere, f"no page holds {term!r} outside code: choose another term for this test"
    v = visit(f"{base}search.html?q={quote(term)}", base)
    v.page.wait_for_function(
        "(document.querySelector('#search-results .search-summary') || {}).innerText"
        "?.startsWith('Search finished')", timeout=30_000)
    found = v.hrefs("#search-results ul.search li a")
    v.assert_clean()
    assert anywhere <= set(found), f"search for {term!r} found {found}, not all of {anywhere}"
    if in_headings:  # a heading counts most
        assert found[0] in in_headings, f"search for {term!r}: first result {found[0]}"


def test_the_search_box_leads_to_the_results(visit: Any, site: Path) -> None:
    """Typed in the search box of a notebook's page (opened from disk), a term finds its page."""
    term, base = SEARCHES[-1], site.as_uri() + "/"
    v = visit(f"{base}{NOTEBOOK_STEMS[-1]}.html", base)
    v.page.keyboard.press("Control+k")
    v.page.locator("input[name=q]:visible").fill(term)
    v.page.keyboard.press("Enter")
    v.page.wait_for_url("**/search.html?q=*")
    v.page.wait_for_selector("#search-results ul.search li a")
    assert _pages_with(term) & set(v.hrefs("#search-results ul.search li a"))
    v.assert_clean()


@pytest.mark.parametrize("name", ["index.html", f"{NOTEBOOK_STEMS[-1]}.html"])
def test_pages_fit_a_phone(visit: Any, site: Path, name: str) -> None:
    """On a phone's screen: no sideways scrolling; the sidebar opens from its button."""
    base = site.as_uri() + "/"
    v = visit(base + name, base, viewport=(390, 844))
    page = v.page
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert not page.locator(".bd-sidebar-primary").is_visible()
    page.locator("button.primary-toggle:visible").click()
    page.locator("#pst-primary-sidebar-modal").wait_for(state="visible")
    assert sorted(v.hrefs("#pst-primary-sidebar-modal nav a.reference")) == sorted(PAGES)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"site-phone-{name.removesuffix('.html')}.png"))
    v.assert_clean()


def test_next_links_walk_the_course_in_order(visit: Any, site: Path,
                                             course_order: list[str]) -> None:
    """From the index, "Next" until the last page: every page, in the sidebar's order."""
    v = visit((site / "index.html").as_uri(), site.as_uri())
    seen = ["index.html"]
    while v.page.locator(".prev-next-area a.right-next").count():
        v.page.locator(".prev-next-area a.right-next").click()
        v.page.wait_for_load_state("load")
        seen.append(Path(urlsplit(v.page.url).path).name)
    assert seen == course_order
    v.assert_clean()
