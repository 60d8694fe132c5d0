"""The course site's Sphinx configuration: myst-nb pages in sphinx-book-theme, offline.

No page loads anything from another host: MathJax 2 comes from ``jupyter-server-mathjax``,
widgets show their text, the theme's launch and repository buttons are off.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `tools` is importable

project = html_title = "Residual Networks in PyTorch"
author = "the d2l-resnet authors"
extensions = ["myst_nb", "tools.course_site.extension"]
html_search_language = "en_zh"  # English, and Chinese words too (extension.py)

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3  # "[the stem](02_resnet18.ipynb#the-stem-b1-第一个模块)"
myst_update_mathjax = False  # MathJax below looks for \( \) and \[ \] only
nb_execution_mode = "off"  # the pages show the outputs the notebooks hold
nb_merge_streams = True  # prints become one block; "\r"-redrawn text bars their last state
# No widget manager from a CDN: a widget (a progress bar) shows the text it carries instead.
nb_ipywidgets_js = {}
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]

html_theme = "sphinx_book_theme"
html_theme_options = {"home_page_in_toc": True, "use_fullscreen_button": False,
                      "show_toc_level": 2,
                      # No top bar: it repeats the sidebar's search box, and its hidden menu
                      # button leaves the page's without effect (pydata-sphinx-theme #2451).
                      "navbar_persistent": []}
html_context = {"default_mode": "auto"}  # light or dark, as the reader's system is
html_sourcelink_suffix = ""  # downloads: _sources/01_residual_block.ipynb, not .ipynb.txt
html_static_path = ["static"]
html_favicon = "static/favicon.svg"  # the residual sum; without one, browsers ask for /favicon.ico
html_css_files = ["course.css"]
html_js_files = ["course.js"]

mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"  # copied there
# The MathML that MathJax hides beside each formula for screen readers asks Chromium for
# TeX fonts that jupyter-server-mathjax does not ship: it gets the page's serif font.
_TEX_FONTS = [*(f'[mathvariant="{v}"]' for v in ("script", "bold-script", "fraktur",
                                                 "bold-fraktur", "double-struck")),
              *(f'[class="MJX-tex-{c}"]' for c in ("caligraphic", "caligraphic-bold",
                                                   "oldstyle", "oldstyle-bold"))]
mathjax2_config = {
    "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
                "processEnvironments": False},
    "HTML-CSS": {
        "availableFonts": ["STIX-Web"], "preferredFont": "STIX-Web", "webFont": "STIX-Web",
        "imageFont": None, "linebreaks": {"automatic": True},
        # MathJax probes a font at about:blank, which Chromium reports as an error from file://.
        "styles": {"@font-face": {"font-family": "MathJax_Blank",
                                  "src": "local('MathJax_Blank')"}},
    },
    "NativeMML": {"styles": {selector: {"font-family": "serif"} for selector in _TEX_FONTS}},
    "messageStyle": "none", "showMathMenu": False,
}
