"""The course site: Sphinx, myst-nb and sphinx-book-theme (``build.py``, ``conf.py``)."""
