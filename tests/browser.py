"""Headless Chromium for the browser tests (the course site, JupyterLab), via Playwright.

Playwright never downloads a browser here: it drives the system's Chromium (or the
executable named by ``D2L_RESNET_CHROMIUM``). Without one the tests are skipped, with the
install hint; under CI (``CI=true``) they fail instead, since there they must run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic",
]
INSTALL_HINT = (
    "Chromium is needed for the browser tests (the course site, JupyterLab): install it "
    "with `sudo apt-get install chromium` (Debian/Ubuntu), or point D2L_RESNET_CHROMIUM at "
    "a Chromium or Chrome executable")
PLAYWRIGHT_HINT = (
    "Playwright (Python) is missing: install the dev extras with `pip install -e '.[dev]'` "
    "(no browser download is needed)")


def unavailable(reason: str) -> NoReturn:
    """Skip on a person's machine; fail under CI, where the browser tests must run."""
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"CI=true, so the browser test must run: {reason}", pytrace=False)
    pytest.skip(reason)


def chromium() -> str | None:
    """The Chromium executable to drive, or None."""
    explicit = os.environ.get("D2L_RESNET_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@contextmanager
def launch_chromium() -> Iterator[Any]:
    """A headless Chromium (a Playwright ``Browser``), closed on exit.

    Skips (or fails under CI) when Chromium or Playwright is missing.
    """
    executable = chromium()
    if executable is None:
        unavailable(INSTALL_HINT)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable(PLAYWRIGHT_HINT)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
