"""``python -m tools.course_site.build``: the course site (``make html``, ``make site``).

``docs/*.md`` (the index holds the table of contents) and the notebooks, with their
``.py`` pairs and ``figures/``, go into one folder that Sphinx builds with ``conf.py``.
Nothing is executed: the pages show the notebooks' outputs, or those of ``--executed``.
"""

import argparse
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def build(out: Path, *, notebooks: Path = REPO / "notebooks", executed: Path | None = None,
          docs: Path = REPO / "docs", work: Path = REPO / "build") -> int:
    """Build the site into ``out`` from ``docs`` and ``notebooks`` (their outputs taken from
    ``executed``, if given), with Sphinx's own files in ``work/site``; 1 if Sphinx warned."""
    from sphinx.cmd.build import build_main  # the dev extra's, on Python 3.11 and newer

    src = work / "site" / "src"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(docs, src)
    if (notebooks / "figures").is_dir():
        shutil.copytree(notebooks / "figures", src / "figures")
    for nb in sorted(notebooks.glob("[0-9][0-9]_*.ipynb")):
        shutil.copy2((executed or notebooks) / nb.name, src)  # copy2 keeps the time, so
        if nb.with_suffix(".py").is_file():                   # Sphinx reads only changes
            shutil.copy2(nb.with_suffix(".py"), src)
    html = work / "site" / "html"  # not `out`: myst-nb writes into the folder beside it
    status = build_main(["-q", "-W", "--keep-going", "-c", str(Path(__file__).parent),
                         "-d", str(work / "site" / "doctrees"), str(src), str(html)])
    shutil.copytree(html, out, dirs_exist_ok=True)
    return status


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--out", type=Path, default=Path("site"), help="default: site")
    parser.add_argument("--build", type=Path, default=Path("build"), help="for Sphinx's files")
    parser.add_argument("--executed", type=Path, help="executed copies of the notebooks")
    args, start = parser.parse_args(), time.perf_counter()
    status = build(args.out, executed=args.executed, work=args.build)
    print(f"==> {len(list(args.out.glob('*.html')))} pages in {args.out}/, "
          f"{time.perf_counter() - start:.0f} s{' (see the warnings above)' if status else ''}; "
          f"open {(args.out / 'index.html').resolve().as_uri()}")
    sys.exit(status)
