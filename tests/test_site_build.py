"""The course site's configuration on a small course, without a browser (see test_site.py).

A repository of two tiny notebooks and two Markdown pages is built with the code
``make html`` and ``make site`` run; the HTML is read as text.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

from tools.course_site.build import build

pytestmark = [
    pytest.mark.skipif(sys.version_info < (3, 11), reason="the course site needs Python 3.11 "
                       "or newer (Sphinx 9, sphinx-book-theme 1.4): see pyproject.toml"),
    pytest.mark.filterwarnings("ignore:.*Check CHANGES for Sphinx API modifications"),
]

RUN_LINE = ("profile {} | d2l_resnet 0.1.0 | Python 3.11.7 | torch 2.4.0 | "
            "torchvision 0.19.0 | device cpu | precision fp32 (no native bfloat16)")
INDEX = """# A small course (小课程)

```{toctree}
:glob:

setup
[0-9][0-9]_*
```
"""
SETUP = "# Setting up (安装)\n\nWritten by hand: `make lab`.\n"
WIDGET = "application/vnd.jupyter.widget-view+json"


def _notebook(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def _code(source: str, *outputs: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source, execution_count=1)
    cell.outputs = list(outputs)
    return cell


def _print(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("stream", name="stdout", text=text)


def _first(profile: str) -> nbformat.NotebookNode:
    """Math, a link into the next notebook, a progress bar, a hidden solution, run_info()."""
    bar = nbformat.v4.new_output("display_data", data={
        WIDGET: {"model_id": "abc", "version_major": 2, "version_minor": 0},
        "text/plain": "epochs: 100%|##########| 2/2"})
    nb = _notebook(
        nbformat.v4.new_markdown_cell(
            "# 1. The residual block (残差网络 · 残差块)\n\nThe block computes $y = F(x) + x$; "
            "[the stages](02_second.ipynb#the-stages-模块) come next.\n\n"
            "<details>\n<summary>Solution 1</summary>\n\n```python\nprint(42)\n```\n\n"
            "</details>"),
        _code("fit()", _print("epoch 1\r"), bar, _print("\repoch 2\n")),
        _code("print(run_info())", _print(RUN_LINE.format(profile) + "\n")))
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docs/ and notebooks/ of a small course, and executed copies in build/notebooks."""
    root = tmp_path_factory.mktemp("course")
    (root / "docs").mkdir()
    (root / "docs" / "index.md").write_text(INDEX, encoding="utf-8")
    (root / "docs" / "setup.md").write_text(SETUP, encoding="utf-8")
    (root / "notebooks").mkdir()
    (root / "build" / "notebooks").mkdir(parents=True)
    second = _notebook(nbformat.v4.new_markdown_cell(
        "# 2. ResNet-18\n\n## The stages (模块)\n\nWith BatchNorm."))
    for folder, profile in (("notebooks", "course"), ("build/notebooks", "quick")):
        nbformat.write(_first(profile), root / folder / "01_first.ipynb")
        nbformat.write(second, root / folder / "02_second.ipynb")
    for stem in ("01_first", "02_second"):
        (root / "notebooks" / f"{stem}.py").write_text(f"# %% [markdown]\n# {stem}\n")
    return root


def _build(course: Path, out: str, executed: Path | None = None) -> Path:
    site = course / out
    assert build(site, notebooks=course / "notebooks", executed=executed,
                 docs=course / "docs", work=course / "build") == 0, "Sphinx warned or failed"
    return site


@pytest.fixture(scope="module")
def site(course: Path) -> Path:
    """The small course as ``make html`` builds it, from the committed outputs."""
    return _build(course, "site")


def test_search_indexes_english_words_and_chinese_ones_with_their_parts() -> None:
    from tools.course_site.extension import EnglishAndChinese

    words = EnglishAndChinese({}).split("The residual block (残差网络 · 残差块) and BatchNorm")
    assert {"residual", "BatchNorm", "残差网络", "残差块", "残差", "网络", "差块"} <= set(words)
    long_run = EnglishAndChinese({}).split("一二三四五六七八九十")
    assert "一二三四五六七八" in long_run and "一二三四五六七八九" not in long_run


def test_the_site_has_its_pages_search_index_downloads_and_mathjax(course: Path,
                                                                   site: Path) -> None:
    assert {p.name for p in site.glob("*.html")} >= {
        "index.html", "setup.html", "01_first.html", "02_second.html", "search.html"}
    index = (site / "searchindex.js").read_text(encoding="utf-8")
    for term in ("batchnorm", "残差块", "残差"):
        assert json.dumps(term) in index, term
    for stem in ("01_first", "02_second"):
        for suffix in (".ipynb", ".py"):
            source = course / "notebooks" / f"{stem}{suffix}"
            assert (site / "_sources" / source.name).read_bytes() == source.read_bytes()
    assert not (course / "jupyter_execute").exists()  # nothing written beside the site
    assert (site / "_static" / "mathjax" / "MathJax.js").is_file()
    assert not (site / "_static" / "mathjax" / "jax" / "output" / "SVG").exists()


def test_nothing_comes_from_another_host(site: Path) -> None:
    """No script, style, image, font or frame of any page or style sheet names another host."""
    for path in [*site.rglob("*.html"), *site.glob("_static/*.css")]:
        text = path.read_text(encoding="utf-8", errors="replace")
        loads = re.findall(r"""<(?:script|img|link|iframe)\b[^>]*?(?:src|href)=["']([^"']+)""",
                           text) + re.findall(r"""@import\s+url\(["']?([^"')]+)""", text)
        assert [u for u in loads if re.match(r"(https?:)?//", u)] == [], path.name
        for cdn in ("require.min.js", "embed-amd.js", "jsdelivr", "unpkg", "cdnjs"):
            assert cdn not in text, f"{path.name} names {cdn}"


def test_a_notebook_page(site: Path) -> None:
    """Run information, downloads, the widget as text, math, the link, the solution closed."""
    page = (site / "01_first.html").read_text(encoding="utf-8")
    info = page[page.index('<div class="run-info'):]
    info = info[:info.index("</div>")]
    assert 'profile <strong class="profile">course</strong>' in info
    assert "torch 2.4.0 &middot; torchvision 0.19.0" in info and "preview" not in info.lower()
    assert re.findall(r'href="([^"]+)" download', info) == [
        "_sources/01_first.ipynb", "_sources/01_first.py"]
    assert page.index("</h1>") < page.index('<div class="run-info')
    assert "epochs: 100%|##########| 2/2" in page and WIDGET not in page
    assert "epoch 1\nepoch 2" in page  # the prints merged, "\r" resolved
    assert r"\(y = F(x) + x\)" in page
    assert 'href="02_second.html#the-stages"' in page  # the heading's anchor, resolved
    assert "<details>" in page and "<details open" not in page
    second = (site / "02_second.html").read_text(encoding="utf-8")
    assert "do not say what produced them" in second and "profile <strong" not in second


def test_make_site_shows_the_executed_outputs(course: Path) -> None:
    """Built from the executed copies, the pages say so: the quick profile is a preview."""
    site = _build(course, "site-executed", executed=course / "build" / "notebooks")
    page = (site / "01_first.html").read_text(encoding="utf-8")
    assert 'profile <strong class="profile">quick</strong>' in page and "A preview" in page
    nb = nbformat.read(course / "notebooks" / "01_first.ipynb", as_version=4)
    assert "profile course" in nb.cells[-1].outputs[0].text  # the committed one, unchanged


def test_a_page_written_in_markdown_is_in_the_sidebar_and_the_order(site: Path) -> None:
    index = (site / "index.html").read_text(encoding="utf-8")
    nav = index[index.index("bd-docs-nav"):]
    assert re.findall(r'class="reference internal" href="([^"#]+)"', nav)[:3] == [
        "setup.html", "01_first.html", "02_second.html"]
    setup = (site / "setup.html").read_text(encoding="utf-8")
    assert "Setting up (安装)" in setup and 'href="01_first.html"' in setup  # next
