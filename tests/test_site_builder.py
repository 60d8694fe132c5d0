"""The course-site builder's own parts: navigation, link rewriting, preprocessing, a small build.

The pages themselves are checked in a real browser by test_site.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from tools.course_site.build import PREPROCESSORS, SITE_MARKER, build_site
from tools.course_site.content import (
    SUMMARIES,
    add_section_links,
    navigation,
    notebook_title,
    parse_glossary,
    parse_run_info,
    protect_math,
    restore_math,
    rewrite_links,
    rewrite_url,
)

PAGES = {"01_residual_block": "01_residual_block.html", "02_resnet18": "02_resnet18.html"}
SVG = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 120 40">'
       '<rect width="120" height="40" fill="#4a7"/></svg>\n')
RUN_LINE = ("profile course | d2l_resnet 0.1.0 | Python 3.11.7 | torch 2.4.0 | "
            "torchvision 0.19.0 | device cpu")


def test_navigation_links_each_page_to_its_neighbours() -> None:
    nav = navigation([("a.html", "A"), ("b.html", "B"), ("c.html", "C")])
    assert [(n["prev"] and n["prev"].href, n["next"] and n["next"].href) for n in nav] == [
        (None, "b.html"), ("a.html", "c.html"), ("b.html", None)]
    assert nav[1]["next"].title == "C"


def test_navigation_of_a_single_page_has_no_neighbours() -> None:
    assert navigation([("a.html", "A")]) == [{"prev": None, "next": None}]
    assert navigation([]) == []


@pytest.mark.parametrize(("url", "expected"), [
    ("02_resnet18.ipynb", ("02_resnet18.html", None)),
    ("02_resnet18.ipynb#Stages", ("02_resnet18.html#Stages", None)),
    ("./02_resnet18.py", ("02_resnet18.html", None)),
    ("../notebooks/01_residual_block.ipynb", ("01_residual_block.html", None)),
    ("../src/d2l_resnet/model.py", ("files/src/d2l_resnet/model.py", "src/d2l_resnet/model.py")),
    ("../src/d2l_resnet/model.py#L10", ("files/src/d2l_resnet/model.py#L10",
                                        "src/d2l_resnet/model.py")),
    ("figures/block.png", ("files/notebooks/figures/block.png", "notebooks/figures/block.png")),
    ("03_not_in_the_course.ipynb", ("files/notebooks/03_not_in_the_course.ipynb",
                                    "notebooks/03_not_in_the_course.ipynb")),
    ("https://arxiv.org/abs/1603.05027", ("https://arxiv.org/abs/1603.05027", None)),
    ("//example.org/x.js", ("//example.org/x.js", None)),
    ("#Residual-block", ("#Residual-block", None)),
    ("mailto:someone@example.org", ("mailto:someone@example.org", None)),
    ("data:image/png;base64,AAAA", ("data:image/png;base64,AAAA", None)),
    ("/etc/passwd", ("/etc/passwd", None)),
    ("../../outside.txt", ("../../outside.txt", None)),
])
def test_rewrite_url(url: str, expected: tuple[str, str | None]) -> None:
    assert rewrite_url(url, PAGES, "notebooks") == expected


def test_rewrite_links_changes_only_href_and_src() -> None:
    fragment = (
        '<p>See <a href="02_resnet18.ipynb#Stages">the model</a>, '
        "<img src='figures/a&amp;b.png' alt='02_resnet18.ipynb'> and "
        '<a href="https://d2l.ai">the book</a>.</p>')

    def rewrite(url: str) -> str:
        return rewrite_url(url, PAGES)[0]

    out = rewrite_links(fragment, rewrite)
    assert 'href="02_resnet18.html#Stages"' in out
    assert "src='files/notebooks/figures/a&amp;b.png'" in out
    assert "alt='02_resnet18.ipynb'" in out  # not a link: unchanged
    assert 'href="https://d2l.ai"' in out


def test_section_links_list_the_second_level_headings() -> None:
    page = (
        '<body><main class="notebook"><h1 id="Title">Title</h1>'
        '<h2 id="The-block-(残差块)">The block (残差块)<a class="anchor-link" '
        'href="#The-block-(残差块)">¶</a></h2><h3 id="Detail">Detail</h3>'
        '<h2 id="Sizes">Sizes &amp; <code>shapes</code></h2></main></body>')
    out = add_section_links(page)
    nav = out[:out.index('<main class="notebook">')]
    assert re.findall(r'<li><a href="#([^"]+)">(.*?)</a></li>', nav) == [
        ("The-block-(残差块)", "The block (残差块)"), ("Sizes", "Sizes &amp; shapes")]
    assert add_section_links("<main class=\"notebook\"><h1 id=\"T\">T</h1></main>") == (
        '<main class="notebook"><h1 id="T">T</h1></main>')


def test_math_is_kept_away_from_markdown() -> None:
    """A formula's ``+`` at a line start is no list item; code keeps its dollars."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    source = ("Added to a shortcut, $y'' = y\n+ g(y)$, and *x* with `$code$`, \\$5,\n"
              "\\\\(a_1 * b_1\\\\) and\n\n$$a_1 * b_2 < c$$\n\n```\ncost = '$$'\n```\n")
    text, spans = protect_math(source)
    assert spans == ["$y'' = y\n+ g(y)$", "\\$", "\\\\(a_1 * b_1\\\\)", "$$a_1 * b_2 < c$$"]
    out = restore_math(markdown2html_mistune(text), spans)
    assert "<li>" not in out
    assert "$y'' = y\n+ g(y)$" in out and "<em>x</em>" in out
    assert "<code>$code$</code>" in out and "\\$5" in out
    assert "\\(a_1 * b_1\\)" in out  # Jupyter's double backslash, as MathJax reads it
    assert "$$a_1 * b_2 &lt; c$$" in out
    assert "cost" in out and "D2LMATH" not in out


def _notebook(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def _code(source: str, *outputs: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source, execution_count=1)
    cell.outputs = list(outputs)
    return cell


def _widget_output() -> nbformat.NotebookNode:
    return nbformat.v4.new_output(
        "display_data",
        data={"application/vnd.jupyter.widget-view+json":
              {"model_id": "abc", "version_major": 2, "version_minor": 0},
              "text/plain": "epochs:   0%|          | 0/5 [00:00<?, ?it/s]"})


def _preprocess(nb: nbformat.NotebookNode) -> dict:
    """What the exporter does to a notebook before rendering it, in the same order."""
    resources: dict = {}
    for preprocessor in PREPROCESSORS:
        nb, resources = preprocessor(enabled=True)(nb, resources)
    return resources


def test_widgets_go_and_the_prints_around_them_merge() -> None:
    """A widget between two prints is dropped first, so the prints become one block."""
    prints = [nbformat.v4.new_output("stream", name="stdout", text=f"epoch {i}\n")
              for i in (1, 2)]
    err = nbformat.v4.new_output("stream", name="stderr", text="warning\n")
    figure = nbformat.v4.new_output("display_data", data={"text/plain": "<Figure>"})
    nb = _notebook(_code("fit()", prints[0], _widget_output(), prints[1], err, figure))
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    assert _preprocess(nb)["widgets_dropped"] == 1
    assert "widgets" not in nb.metadata
    assert [o.get("text", o.get("data")) for o in nb.cells[0].outputs] == [
        "epoch 1\nepoch 2\n", "warning\n", {"text/plain": "<Figure>"}]


def test_progress_redrawn_with_carriage_returns_keeps_its_final_state() -> None:
    progress = nbformat.v4.new_output(
        "stream", name="stderr", text="\r 0%|  | 0/2\r 50%|# | 1/2\r100%|##| 2/2\nfinished\n")
    nb = _notebook(_code("loop()", progress))
    _preprocess(nb)
    (output,) = nb.cells[0].outputs
    assert output.text == "100%|##| 2/2\nfinished\n"


def test_title_and_run_info_are_read_from_the_notebook() -> None:
    nb = _notebook(
        nbformat.v4.new_markdown_cell("# 1. The residual block (残差块)\n\nText with `code`."),
        _code("print(run_info())", nbformat.v4.new_output("stream", name="stdout",
                                                          text=RUN_LINE + "\n")))
    assert notebook_title(nb, "fallback") == "1. The residual block (残差块)"
    run = parse_run_info(nb)
    assert run is not None and run.profile == "course" and not run.preview
    assert run.parts[0] == "d2l_resnet 0.1.0" and run.line == RUN_LINE
    assert notebook_title(_notebook(), "fallback") == "fallback"
    assert parse_run_info(_notebook()) is None


@pytest.fixture
def small_course(tmp_path: Path) -> Path:
    """A repository with two tiny executed notebooks: math, a widget, links, run_info."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "blocks.py").write_text("x = 1\n")
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    quick_line = RUN_LINE.replace("profile course", "profile quick")
    first = _notebook(
        nbformat.v4.new_markdown_cell(
            "# 1. First (第一)\n\nThe block is $y = F(x) + x$; see [the next one]"
            "(02_second.ipynb#Part) and [the blocks](../src/blocks.py)."),
        _code("loop()", _widget_output()),
        _code("print(run_info())", nbformat.v4.new_output("stream", name="stdout",
                                                          text=quick_line + "\n")))
    first.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    second = _notebook(nbformat.v4.new_markdown_cell("# 2. Second\n\n## Part\n\nNo math."))
    for stem, nb in (("01_first", first), ("02_second", second)):
        nbformat.write(nb, notebooks / f"{stem}.ipynb")
        (notebooks / f"{stem}.py").write_text("# %%\n")
    return tmp_path


def test_build_site_writes_linked_offline_pages(small_course: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    report = build_site(small_course / "notebooks", out, log=lambda line: None)
    assert [p.href for p in report.pages] == ["01_first.html", "02_second.html"]
    assert (out / "mathjax" / "MathJax.js").is_file()
    assert (out / "downloads" / "01_first.ipynb").is_file()
    assert (out / "downloads" / "02_second.py").is_file()
    assert (out / "files" / "src" / "blocks.py").read_text() == "x = 1\n"
    assert any("02_second: no run_info()" in w for w in report.warnings)

    index = (out / "index.html").read_text()
    assert index.index('href="01_first.html"') < index.index('href="02_second.html"')
    first = (out / "01_first.html").read_text()
    assert 'href="02_second.html#Part"' in first
    assert 'href="files/src/blocks.py"' in first
    next_links = re.findall(r'<a\b[^>]*\brel="next"[^>]*>', first)
    assert next_links and all('href="02_second.html"' in a for a in next_links)
    assert "profile <strong" in first and "quick" in first and "A preview" in first
    assert "widget-view+json" not in first and "widget-state+json" not in first
    for page in out.glob("*.html"):
        text = page.read_text()
        # Nothing is loaded from another host: scripts, styles, images, fonts.
        loads = re.findall(r"""<(?:script|img|link|iframe)\b[^>]*?(?:src|href)=["']([^"']+)""",
                           text)
        assert [u for u in loads if re.match(r"(https?:)?//", u)] == [], page.name
        assert "require.min.js" not in text and "cdnjs" not in text, page.name


def test_build_site_refuses_a_folder_it_did_not_write(small_course: Path,
                                                      tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "notes.html").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a course site"):
        build_site(small_course / "notebooks", other, log=lambda line: None)
    assert (other / "notes.html").read_text() == "keep me"
    out = tmp_path / "site"
    build_site(small_course / "notebooks", out, log=lambda line: None)
    assert (out / SITE_MARKER).is_file()
    build_site(small_course / "notebooks", out, log=lambda line: None)  # a rebuild is fine


def test_an_svg_figure_in_markdown_is_published_with_the_site(tmp_path: Path) -> None:
    """``![...](figures/x.svg)`` in a notebook: the file is copied and the page points to it."""
    notebooks = tmp_path / "notebooks"
    (notebooks / "figures").mkdir(parents=True)
    (notebooks / "figures" / "residual_block.svg").write_text(SVG)
    nb = _notebook(nbformat.v4.new_markdown_cell(
        "# 1. Figures\n\n![The residual block](figures/residual_block.svg)"))
    nbformat.write(nb, notebooks / "01_figures.ipynb")
    out = tmp_path / "site"
    report = build_site(notebooks, out, log=lambda line: None)
    assert (out / "files" / "notebooks" / "figures" / "residual_block.svg").read_text() == SVG
    page = (out / "01_figures.html").read_text()
    (img,) = re.findall(r"<img\b[^>]*>", page)
    assert 'src="files/notebooks/figures/residual_block.svg"' in img
    assert 'alt="The residual block"' in img
    assert not any("points to no file" in w for w in report.warnings)


def test_a_sixth_notebook_needs_no_more_than_its_summary_line(tmp_path: Path) -> None:
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    stems = [f"0{i}_part{i}" for i in range(1, 7)]
    for i, stem in enumerate(stems, 1):
        nb = _notebook(nbformat.v4.new_markdown_cell(f"# {i}. Part {i}\n\nText."),
                       _code("print(run_info())", nbformat.v4.new_output(
                           "stream", name="stdout", text=RUN_LINE + "\n")))
        nbformat.write(nb, notebooks / f"{stem}.ipynb")
        (notebooks / f"{stem}.py").write_text("# %%\n")
    out = tmp_path / "site"
    report = build_site(notebooks, out, log=lambda line: None)
    assert [p.href for p in report.pages] == [f"{stem}.html" for stem in stems]
    index = (out / "index.html").read_text()
    assert re.findall(r'class="toc-link" href="([^"]+)"', index) == [
        f"{stem}.html" for stem in stems]
    assert SUMMARIES["06"] in index and "(6 of 6 notebooks)" in index
    last = (out / "06_part6.html").read_text()
    assert "Notebook 6 of 6" in last and 'rel="next"' not in last
    next_links = re.findall(r'<a\b[^>]*\brel="next"[^>]*>', (out / "05_part5.html").read_text())
    assert next_links and all('href="06_part6.html"' in a for a in next_links)


GLOSSARY_MD = """# Glossary (术语表)

Some words.

| English | 中文 | Note |
|---|---|---|
| residual block | 残差块 | notebook 1 |
| stride | 步幅 |
| a <b>bold</b> term | 粗体 | x | extra |

Text after the table.
"""


def test_parse_glossary_reads_the_first_table() -> None:
    glossary = parse_glossary(GLOSSARY_MD)
    assert glossary is not None
    assert glossary.header == ("English", "中文", "Note")
    assert glossary.rows == (("residual block", "残差块", "notebook 1"),
                             ("stride", "步幅", ""),
                             ("a <b>bold</b> term", "粗体", "x"))
    assert parse_glossary("# Title\n\nNo table | here.\n") is None
    assert parse_glossary("| a | b |\n| not a separator |\n") is None


def test_the_index_shows_the_glossary_of_the_repository(small_course: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site(small_course / "notebooks", out, log=lambda line: None)
    assert 'class="glossary"' not in (out / "index.html").read_text()
    (small_course / "docs").mkdir()
    (small_course / "docs" / "glossary.md").write_text(GLOSSARY_MD, encoding="utf-8")
    build_site(small_course / "notebooks", out, log=lambda line: None)
    index = (out / "index.html").read_text(encoding="utf-8")
    table = index[index.index('<table class="glossary">'):index.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", table)
    assert len(rows) == 4                        # the header and three terms
    assert "<th>English</th><th>中文</th><th>Note</th>" in rows[0]
    assert '<td>residual block</td><td lang="zh">残差块</td><td>notebook 1</td>' in rows[1]
    assert "a &lt;b&gt;bold&lt;/b&gt; term" in rows[3]   # text, not markup
    (small_course / "docs" / "glossary.md").write_text("# Glossary\n\nNo table yet.\n")
    report = build_site(small_course / "notebooks", out, log=lambda line: None)
    assert 'class="glossary"' not in (out / "index.html").read_text()
    assert any("glossary.md holds no Markdown table" in w for w in report.warnings)
