"""What the course site adds to Sphinx, myst-nb and sphinx-book-theme (see ``conf.py``)."""

import html
import json
import re
import shutil
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.search.en import SearchEnglish

RUN_INFO = re.compile(r"^'?profile ([\w-]+) \| (d2l_resnet [^'\n]*)", re.M)  # run_info()
CHINESE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")


class EnglishAndChinese(SearchEnglish):
    """English search that also indexes each run of Chinese characters and its parts of two
    to eight characters, so that 残差 finds "残差网络 · 残差块" as 残差块 does."""

    lang = "en_zh"

    def split(self, input: str) -> list[str]:
        return super().split(input) + [
            run[i:j] for run in CHINESE.findall(input)
            for i in range(len(run)) for j in range(i + 2, min(i + 8, len(run)) + 1)]


def add_banner(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any],
               doctree: Any) -> None:
    """Under a notebook's title: what produced its outputs (its last ``run_info()`` line)
    and its downloads, the ``.ipynb`` and its ``.py`` pair."""
    source = Path(app.srcdir, f"{pagename}.ipynb")
    if doctree is None or not source.is_file():
        return
    outputs = [o for cell in json.loads(source.read_text(encoding="utf-8"))["cells"]
               for o in cell.get("outputs", [])]  # printed, or shown as a value:
    runs = RUN_INFO.findall("\n".join("".join(o.get("text", o.get("data", {}).get(
        "text/plain", ""))) for o in outputs))
    profile, parts = runs[-1] if runs else ("", "")
    info = (f'Outputs produced with profile <strong class="profile">{profile}</strong> &middot; '
            + html.escape(parts).replace(" | ", " &middot; ") if runs else
            "The outputs do not say what produced them (the last cell prints "
            "<code>run_info()</code>).")
    if profile == "quick":
        info += ("<br>A preview: the quick profile trains on a small part of the data, so its "
                 "numbers are not the course's (<code>make site</code> gives those).")
    links = " ".join(f'<a href="{context["pathto"](f"_sources/{pagename}{s}", 1)}" download>'
                     f"{pagename}{s}</a>" for s in (".ipynb", ".py"))
    context["body"] = context["body"].replace("</h1>", (
        f'</h1><div class="run-info {profile}"><p>{info}</p>'
        f'<p class="downloads">Download {links}</p></div>'), 1)


def copy_files(app: Sphinx, exception: Exception | None) -> None:
    """MathJax 2 into ``_static/mathjax`` (less its SVG output, never used); the ``.py`` pairs."""
    import jupyter_server_mathjax

    if exception is None:
        shutil.copytree(Path(jupyter_server_mathjax.__file__).with_name("static"),
                        Path(app.outdir, "_static", "mathjax"), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("SVG", "a11y"))
        for py in Path(app.srcdir).glob("*.py"):
            shutil.copy2(py, Path(app.outdir, "_sources", py.name))


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_search_language(EnglishAndChinese)
    app.connect("html-page-context", add_banner)
    app.connect("build-finished", copy_files)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
