"""A version with Python steps served: refused without --trust-code; with it, the steps run
around the batched model call, metadata shows the pipeline's inputs and outputs, each stage is
timed in /metrics, and a step's failure is answered (400 or 500, naming the step)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from steps_fixtures import fragile_tokenize, label_names, texts, tokenize

import ferry
from ferry.errors import UnsafeFileError
from ferry.monitor.capture.settings import CaptureSettings
from ferry.registry import Registry
from ferry.serve.server import RunningServer, serve_in_thread
from ferry.serve.settings import ServeSettings

SETTINGS = ServeSettings(capture=CaptureSettings(enabled=False), drift_every_s=0,
                         access_log=False)


def steps_registry(root: Path) -> tuple[Registry, LogisticRegression]:
    registry = Registry(f"sqlite:///{root / 'registry.db'}", artifacts_url=str(root / "art"))
    rows, labels = texts(200)
    model = LogisticRegression(max_iter=500).fit(tokenize(rows), labels)
    raw, _ = texts(20, seed=1)
    ferry.register(model, "sentiment", raw_sample=raw, preprocess=tokenize,
                   postprocess=label_names, registry=registry)
    ferry.register(model, "fragile", raw_sample=raw, preprocess=fragile_tokenize,
                   registry=registry)
    return registry, model


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[RunningServer, LogisticRegression]]:
    registry, model = steps_registry(tmp_path_factory.mktemp("steps"))
    running = serve_in_thread([], grpc_port=None, registry=registry,
                              settings=ServeSettings(**{**SETTINGS.__dict__, "trust_code": True}))
    yield running, model
    running.stop()


def call(running: RunningServer, method: str, path: str,
         document: Any = None) -> tuple[int, Any]:
    host, port = running.http_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        body = None if document is None else json.dumps(document).encode()
        connection.request(method, path, body=body,
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        kind = response.getheader("Content-Type") or ""
        return response.status, json.loads(data) if "json" in kind else data.decode()
    finally:
        connection.close()


def infer(running: RunningServer, model: str, rows: list[str]) -> tuple[int, Any]:
    return call(running, "POST", f"/v2/models/{model}/infer", {"inputs": [
        {"name": "X", "datatype": "BYTES", "shape": [len(rows)], "data": rows}]})


def test_a_version_with_steps_is_not_served_without_trust(tmp_path: Path) -> None:
    registry, _ = steps_registry(tmp_path)
    with pytest.raises(UnsafeFileError, match="--trust-code"):
        serve_in_thread(["sentiment"], grpc_port=None, registry=registry, settings=SETTINGS)


def test_metadata_shows_the_pipelines_text_input_and_label_output(
        served: tuple[RunningServer, LogisticRegression]) -> None:
    status, metadata = call(served[0], "GET", "/v2/models/sentiment")
    assert status == 200, metadata
    assert metadata["inputs"] == [{"name": "X", "datatype": "BYTES", "shape": [-1]}]
    outputs = {o["name"]: o for o in metadata["outputs"]}
    assert outputs["label"]["datatype"] == "BYTES"


def test_texts_in_label_names_out(served: tuple[RunningServer, LogisticRegression]) -> None:
    running, model = served
    raw, _ = texts(8, seed=5)
    status, answer = infer(running, "sentiment", raw.tolist())
    assert status == 200, answer
    label = next(o for o in answer["outputs"] if o["name"] == "label")
    expected = np.asarray(["negative", "positive"])[model.predict(tokenize(raw))]
    assert label["data"] == expected.tolist()


def test_a_step_refusing_the_input_is_a_400_and_a_failing_step_a_500(
        served: tuple[RunningServer, LogisticRegression]) -> None:
    running, _ = served
    status, answer = infer(running, "sentiment", ["good", "   "])
    assert status == 400
    assert "preprocess step 'tokenize'" in answer["error"]
    status, answer = infer(running, "fragile", ["explode"])
    assert status == 500
    assert "preprocess step 'fragile_tokenize' failed" in answer["error"]
    status, answer = infer(running, "fragile", ["good fine"])
    assert status == 200, answer


def test_each_stage_is_timed_in_metrics(served: tuple[RunningServer, LogisticRegression]
                                        ) -> None:
    running, _ = served
    assert infer(running, "sentiment", ["happy lovely"])[0] == 200
    status, text = call(running, "GET", "/metrics")
    assert status == 200
    for stage in ("preprocess", "compute", "postprocess"):
        assert (f'ferry_stage_duration_seconds_count{{model="sentiment",stage="{stage}",'
                f'version="1"}}') in text


def test_serve_and_predict_take_trust_code() -> None:
    from typer.testing import CliRunner

    from ferry.cli import app

    for command in ("serve", "predict"):
        result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert "--trust-code" in result.stdout
