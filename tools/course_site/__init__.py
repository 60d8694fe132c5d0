"""The course site: the executed notebooks as static HTML pages that work offline.

A maintainer tool, run from the repository root by ``make html`` and ``make site``
(``python -m tools.course_site --help``); students never import it. Each notebook becomes
one page (nbconvert's JupyterLab look, code highlighted, figures embedded) with
previous/next/contents navigation, downloads of its ``.ipynb`` and ``.py``, and the
profile and versions that produced its outputs (read from the ``run_info()`` line its
last cell prints). ``index.html`` lists the notebooks in order. Nothing is loaded from
another host: MathJax is copied into the site from the ``jupyter-server-mathjax``
package, and progress-bar widgets are dropped from the pages.

- :mod:`tools.course_site.content`: what is read from a notebook and done to its HTML
  (titles, summaries, run information, navigation, links, math), pure functions.
- :mod:`tools.course_site.build`: executing (nbclient), rendering (nbconvert) and
  writing the site; the command line (``main``).
- ``templates/``: the nbconvert template ``course`` (pages and index) and ``static/``.
"""
