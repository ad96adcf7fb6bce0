"""A registry with a few models and a live server on 127.0.0.1 for the serving tests."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import ferry
from ferry.registry import Registry
from ferry.serve.batching import BatchSettings
from ferry.serve.server import RunningServer, serve_in_thread
from ferry.serve.settings import ServeSettings

ADMIN_TOKEN = "s3cret"


class SlowOrFailing(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """A native model: sleeps `delay` seconds per call; fails on negative input."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay

    def fit(self, x: np.ndarray, y: np.ndarray) -> SlowOrFailing:
        self.n_features_in_ = x.shape[1]
        return self

    def predict(self, x: Any) -> np.ndarray:
        values = np.asarray(x, dtype=np.float64)
        if (values < 0).any():
            raise ValueError("negative input breaks this model")
        time.sleep(self.delay)
        return values.sum(axis=1)


def churn_frame(rows: int = 200) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.integers(18, 80, rows).astype(float),
                          "plan": rng.choice(["basic", "pro", "team"], rows)})
    return frame, np.where((frame.age > 45) | (frame.plan == "basic"), "churn", "stay")


@dataclass
class Served:
    running: RunningServer
    registry: Registry
    iris_x: np.ndarray

    @property
    def http_address(self) -> str:
        return self.running.http_url.removeprefix("http://")

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        host, port = self.http_address.split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def post_json(self, path: str, document: Any,
                  headers: dict[str, str] | None = None) -> tuple[int, Any]:
        status, _, body = self.request("POST", path, json.dumps(document).encode(),
                                       {"Content-Type": "application/json", **(headers or {})})
        return status, json.loads(body) if body else None


def build_registry(root: Path) -> tuple[Registry, np.ndarray]:
    registry = Registry(f"sqlite:///{root / 'registry.db'}", artifacts_url=str(root / "art"))
    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    iris = LogisticRegression(max_iter=500).fit(x, y)
    ferry.register(iris, "iris", sample=x, registry=registry)
    ferry.register(LogisticRegression(max_iter=500, C=0.01).fit(x, y), "iris", sample=x,
                   registry=registry)
    registry.set_alias("iris", "production", 1)
    frame, target = churn_frame()
    churn = Pipeline([("prep", ColumnTransformer([
        ("num", StandardScaler(), ["age"]),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"])])),
        ("clf", LogisticRegression())]).fit(frame, target)
    ferry.register(churn, "churn", sample=frame, registry=registry)
    ferry.register(SlowOrFailing(0.0).fit(x, y), "fragile", sample=x[:5], force=True,
                   registry=registry)
    return registry, x


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    registry, x = build_registry(tmp_path_factory.mktemp("served"))
    settings = ServeSettings(admin_token=ADMIN_TOKEN, poll_interval_s=0.2,
                             max_request_bytes=1024 * 1024, batching=BatchSettings())
    running = serve_in_thread([], registry=registry, settings=settings)
    yield Served(running, registry, x)
    running.stop()
