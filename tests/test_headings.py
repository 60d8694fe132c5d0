"""Every heading of the notebooks and of the Markdown documents (README, CONTRIBUTING,
the site's pages) carries its Chinese title beside the English one.

Students of the original course find their place by the Chinese section titles
(DESIGN.md, "Language"), so ``## Summary (小结)``, not ``## Summary``. Headings inside
fenced code (the exercise solutions) are code comments, not headings.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

TOP = Path(__file__).resolve().parents[1]
NOTEBOOKS = TOP / "notebooks"
CHECKED = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
DOCUMENTS = ["README.md", "CONTRIBUTING.md",
             *sorted(str(p.relative_to(TOP)) for p in (TOP / "docs").glob("*.md"))]
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
CHINESE = re.compile(r"[\u4e00-\u9fff]")


def headings(markdown: str) -> list[str]:
    """The Markdown headings of ``markdown``, leaving out lines inside code fences."""
    found, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (match := HEADING.match(line)):
            found.append(match.group(2))
    return found


def test_headings_finds_headings_outside_code_only() -> None:
    text = "# Title (标题)\n\nText.\n\n```python\n# a comment\n```\n\n## Summary\n"
    assert headings(text) == ["Title (标题)", "Summary"]


@pytest.mark.parametrize("stem", CHECKED)
def test_every_heading_has_its_chinese_title(stem: str) -> None:
    nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    found = [h for cell in nb.cells if cell.cell_type == "markdown"
             for h in headings(cell.source)]
    assert len(found) >= 5, f"{stem}: expected its section headings, found {found}"
    missing = [h for h in found if not CHINESE.search(h)]
    assert missing == [], f"{stem}: headings without their Chinese title: {missing}"


@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_heading_of_the_documents_has_its_chinese_title(name: str) -> None:
    found = headings((TOP / name).read_text(encoding="utf-8"))
    assert found, f"{name}: expected at least its title"
    missing = [h for h in found if not CHINESE.search(h)]
    assert missing == [], f"{name}: headings without their Chinese title: {missing}"
