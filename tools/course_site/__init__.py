"""The course site: the executed notebooks as static HTML pages that work offline.

A maintainer tool, run from the repository root by ``make html`` and ``make site``
(``python -m tools.course_site --help``); students never import it.
"""

from tools.course_site.build import build_site, main

__all__ = ["build_site", "main"]
