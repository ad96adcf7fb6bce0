"""The dashboard's fixtures, imported by each test module (a `conftest.py` here would be
imported as `conftest`, hiding tests/serve's under one worker): a registry of real models,
a server (`ferry serve` in a thread) showing it, one headless Chromium, and a folder the
screenshots are kept in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Browser, Page
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression

import ferry
from ferry.monitor.capture.settings import CaptureSettings
from ferry.registry import Registry
from ferry.serve.server import RunningServer, serve_in_thread
from ferry.serve.settings import ServeSettings

SCREENSHOTS = Path(__file__).parent / "screenshots"
"""Where the tests keep their screenshots (ignored by git)."""
ADMIN_TOKEN = "dashboard-test-token"


def make_registry(root: Path) -> Registry:
    """iris (two versions, `production` on 1, `staging` on 2) and diabetes (one version)."""
    registry = Registry(f"sqlite:///{root / 'registry.db'}", artifacts_url=str(root / "art"),
                        actor="ui-tester")
    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    ferry.register(LogisticRegression(max_iter=500).fit(x, y), "iris", sample=x,
                   metrics={"accuracy": 0.96}, tags={"team": "flowers"}, registry=registry)
    ferry.register(RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0).fit(x, y),
                   "iris", sample=x, metrics={"accuracy": 0.97}, registry=registry)
    registry.set_alias("iris", "production", 1)
    registry.set_alias("iris", "staging", 2)
    d, t = load_diabetes(return_X_y=True)
    ferry.register(LinearRegression().fit(d, t), "diabetes", sample=d.astype(np.float32),
                   registry=registry)
    return registry


@pytest.fixture(scope="module")
def ui_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    registry = make_registry(tmp_path_factory.mktemp("ui"))
    yield registry
    registry.close()


@pytest.fixture(scope="module")
def ui_server(ui_registry: Registry) -> Iterator[RunningServer]:
    """`ferry serve` of the registry, capture off, with an admin token."""
    settings = ServeSettings(capture=CaptureSettings(enabled=False), drift_every_s=0,
                             access_log=False, admin_token=ADMIN_TOKEN)
    running = serve_in_thread([], grpc_port=None, registry=ui_registry, settings=settings)
    yield running
    running.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 800})
    opened = context.new_page()
    yield opened
    context.close()


def screenshot(page: Page, name: str) -> Path:
    """Keep a full-page screenshot as tests/ui/screenshots/NAME.png."""
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
