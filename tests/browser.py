"""Headless Chromium for the tests that open pages (the bundle consumer, the dashboard).

Playwright drives Debian's `chromium` (installed by `make check-system`): `playwright install`
downloads its own browsers from a host this machine cannot reach.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    # Without these Chromium tries to reach Google's services at start.
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path() -> str:
    """Debian's Chromium; skips the test where it is not installed."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (make check-system installs Debian's chromium)")
    return path


@contextmanager
def chromium_browser() -> Iterator[Browser]:
    """A headless Chromium, closed on exit."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test extra")
    executable = chromium_path()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()
