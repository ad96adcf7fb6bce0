"""Stored batch predictions served by key, against a live server on 127.0.0.1: the answers
equal the model's own predictions and name the run that made them; missing keys, bad keys,
versions and aliases; a newer run taken up without a restart; string keys in a Parquet
folder; and once through `python -m ferry serve` in a process of its own.

The module's server reads its own registry; its batch runs write to a DuckDB file and a
Parquet folder of the module's, and it checks for newer runs every `REFRESH_S`.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import Served
from openapi_schema_validator import OAS30Validator
from serve_process import start_serve
from sklearn.linear_model import LogisticRegression

import ferry
from ferry.batch import batch
from ferry.batch.stored import MAX_KEYS
from ferry.registry import BatchRun, Registry, RunStatus
from ferry.serve.rest import protocol
from ferry.serve.rest import stored as stored_rest
from ferry.serve.rest.openapi import openapi_document
from ferry.serve.server import serve_in_thread
from ferry.serve.settings import ServeSettings

REFRESH_S = 0.3
MAX_BODY = 64 * 1024
FEATURES = ["a", "b", "c"]


def scores_frame(rows: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 3)), columns=FEATURES)
    return frame, np.where(frame.a + frame.b > 0, "yes", "no")


def documented(schema: str, instance: Any) -> bool:
    """Whether the OpenAPI document's `schema` takes `instance`."""
    document = openapi_document()
    root = {"$ref": f"#/components/schemas/{schema}", "components": document["components"]}
    return bool(OAS30Validator(root).is_valid(instance))


@dataclass
class Stored:
    served: Served
    frame: pd.DataFrame
    """The batch input: `id` (1000, 1001, ...), `segment`, the features."""
    folder: Path

    @property
    def registry(self) -> Registry:
        return self.served.registry

    def get(self, path: str) -> tuple[int, Any]:
        status, _, body = self.served.request("GET", path)
        return status, json.loads(body)

    def post(self, path: str, document: Any) -> tuple[int, Any]:
        return self.served.post_json(path, document)

    def newest(self, model: str, version: int | None = None) -> BatchRun:
        return self.registry.runs(model, version, RunStatus.COMPLETED)[0]

    def expected(self, version: int, ids: list[int]) -> list[Any]:
        rows = self.frame.set_index("id").loc[ids, FEATURES]
        model = ferry.load(f"scores:{version}", registry=self.registry)
        return list(model.predict(rows).tolist())

    def batch(self, version: int, **options: Any) -> BatchRun:
        return batch(f"scores:{version}", str(self.folder / "in.parquet"),
                     str(self.folder / "warehouse.duckdb#scores"), registry=self.registry,
                     **options)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    """`scores` v1 and v2 (alias production -> 1) and v3, batch-scored: v3 without a key
    first, then v1 and v2 with `--key id --keep segment`; `words` (string keys) into a
    Parquet folder; `idle`, never batch-scored."""
    folder = tmp_path_factory.mktemp("stored")
    registry = Registry(f"sqlite:///{folder / 'registry.db'}", artifacts_url=str(folder / "art"))
    frame, target = scores_frame()
    for c in (1.0, 0.01, 0.1):
        ferry.register(LogisticRegression(C=c).fit(frame, target), "scores",
                       sample=frame.head(50), registry=registry)
    ferry.register(LogisticRegression().fit(frame, target), "idle", sample=frame.head(50),
                   registry=registry)
    ferry.register(LogisticRegression().fit(frame, target), "words", sample=frame.head(50),
                   registry=registry)
    registry.set_alias("scores", "production", 1)
    frame.insert(0, "id", np.arange(1000, 1000 + len(frame)))
    frame.insert(1, "segment", np.where(frame.c > 0, "high", "low"))
    frame.to_parquet(folder / "in.parquet")
    frame.assign(id=[f"user/{i}" for i in frame.id]).to_parquet(folder / "words.parquet")
    batch("words", str(folder / "words.parquet"), str(folder / "words-out"), key="id",
          registry=registry)
    settings = ServeSettings(stored_refresh_s=REFRESH_S, access_log=False,
                             max_request_bytes=MAX_BODY)
    running = serve_in_thread(["scores", "words"], grpc_port=None, registry=registry,
                              settings=settings)
    result = Stored(Served(running, registry, np.empty(0)), frame, folder)
    result.batch(3)
    result.batch(1, key="id", keep=["segment"])
    result.batch(2, key="id", keep=["segment"])
    yield result
    running.stop()


def test_get_answers_the_models_prediction_and_names_the_run(stored: Stored) -> None:
    status, body = stored.get("/v2/models/scores/predictions/1017")
    run = stored.newest("scores")
    assert status == 200, body
    assert body["prediction"] == stored.expected(2, [1017])[0]
    assert (body["model"], body["version"], body["run_id"]) == ("scores", 2, run.id)
    assert body["scored_at"] == run.time().isoformat()
    assert body["key"] == 1017
    assert body["kept"] == {"segment": stored.frame.segment[17]}
    assert set(body["probabilities"]) == {"no", "yes"}
    assert sum(body["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert documented("StoredPrediction", body)


def test_post_answers_in_request_order_and_names_the_missing_keys(stored: Stored) -> None:
    status, body = stored.post("/v2/models/scores/predictions",
                               {"keys": [1005, "1001", 7, 1200, 1005]})
    assert status == 200, body
    assert [p["key"] for p in body["predictions"]] == [1005, 1001, 1200, 1005]
    assert [p["prediction"] for p in body["predictions"]] == stored.expected(
        2, [1005, 1001, 1200, 1005])
    assert body["missing"] == [7]
    assert (body["version"], body["run_id"]) == (2, stored.newest("scores").id)
    assert documented("StoredPredictions", body)
    assert documented("StoredPredictionsRequest", {"keys": [1005, "1001"]})
    assert not documented("StoredPredictionsRequest", {"keys": list(range(MAX_KEYS + 1))})


def test_an_unknown_key_is_404(stored: Stored) -> None:
    status, body = stored.get("/v2/models/scores/predictions/7")
    assert status == 404
    assert "no stored prediction for key '7'" in body["error"]


@pytest.mark.parametrize(("path", "message"), [
    ("/v2/models/idle/predictions/1000", "'idle' has no completed batch run"),
    ("/v2/models/nobody/predictions/1000", "no model named 'nobody'"),
    ("/v2/models/scores/predictions/1000?version=3", "without --key"),
    ("/v2/models/scores/predictions/1000?version=9", "version 9 of 'scores' has no completed"),
    ("/v2/models/scores/predictions/1000?alias=staging", "no alias 'staging'"),
])
def test_no_run_no_model_no_key_column_are_404(stored: Stored, path: str, message: str) -> None:
    status, body = stored.get(path)
    assert status == 404
    assert message in body["error"]


@pytest.mark.parametrize(("method", "path", "body", "message"), [
    ("GET", "/v2/models/scores/predictions/abc", None, "key: 'abc' is not a valid key"),
    ("GET", "/v2/models/scores/predictions/10.5", None, "'id' holds integers"),
    ("POST", "/v2/models/scores/predictions", {"keys": [1000, "x"]}, r"keys[1]: 'x'"),
    ("POST", "/v2/models/scores/predictions", {"keys": [1000, True]}, "keys[1]: True"),
    ("POST", "/v2/models/scores/predictions", {"keys": list(range(MAX_KEYS + 1))},
     f"at most {MAX_KEYS}"),
    ("POST", "/v2/models/scores/predictions", {"keys": []}, "non-empty list of keys"),
    ("POST", "/v2/models/scores/predictions", [1000], "non-empty list of keys"),
    ("GET", "/v2/models/scores/predictions/1000?version=production", None, "?alias="),
    ("GET", "/v2/models/scores/predictions/1000?version=1&alias=production", None, "not both"),
    ("GET", "/v2/models/scores/versions/1/predictions/1000?alias=production", None,
     "the path names the version already"),
])
def test_bad_keys_and_selectors_are_400_naming_the_field(stored: Stored, method: str, path: str,
                                                         body: Any, message: str) -> None:
    if method == "GET":
        status, answer = stored.get(path)
    else:
        status, answer = stored.post(path, body)
    assert status == 400
    assert message in answer["error"]


@pytest.mark.parametrize("key", ["1017", "7", "abc"])
def test_the_protocols_fast_path_and_the_asgi_route_answer_alike(
        stored: Stored, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A GET whose run is held is answered by the HTTP protocol itself; a percent-encoded
    model name sends the same request the ASGI way."""
    stored.get("/v2/models/scores/predictions/1000")  # the run is held from here on
    answered: list[Any] = []

    def held_answer(*args: Any) -> Any:
        answered.append(stored_rest.held_answer(*args))
        return answered[-1]

    monkeypatch.setattr(protocol, "held_answer", held_answer)
    fast = stored.served.request("GET", f"/v2/models/scores/predictions/{key}")
    routed = stored.served.request("GET", f"/v2/models/%73cores/predictions/{key}")
    assert len(answered) == 1 and answered[0] is not None
    assert (fast[0], json.loads(fast[2])) == (routed[0], json.loads(routed[2]))
    assert fast[1]["content-type"] == routed[1]["content-type"] == "application/json"
    assert fast[1]["content-length"] == str(len(fast[2]))


def test_a_body_over_the_limit_is_413(stored: Stored) -> None:
    status, _, body = stored.served.request("POST", "/v2/models/scores/predictions",
                                            b'{"keys": [' + b" " * MAX_BODY + b"1]}")
    assert status == 413
    assert "over the limit" in json.loads(body)["error"]


@pytest.mark.parametrize(("path", "version"), [
    ("/v2/models/scores/predictions/1017?version=1", 1),
    ("/v2/models/scores/predictions/1017?alias=production", 1),
    ("/v2/models/scores/versions/1/predictions/1017", 1),
    ("/v2/models/scores/versions/production/predictions/1017", 1),
    ("/v2/models/scores/versions/2/predictions/1017", 2),
])
def test_a_version_or_an_alias_picks_its_run(stored: Stored, path: str, version: int) -> None:
    status, body = stored.get(path)
    assert status == 200, body
    assert (body["version"], body["run_id"]) == (version, stored.newest("scores", version).id)
    assert body["prediction"] == stored.expected(version, [1017])[0]


def test_post_takes_a_version_too(stored: Stored) -> None:
    status, body = stored.post("/v2/models/scores/versions/1/predictions", {"keys": [1017]})
    assert status == 200 and body["version"] == 1


def test_string_keys_from_a_parquet_folder(stored: Stored) -> None:
    quoted = urllib.parse.quote("user/1042", safe="")
    status, body = stored.get(f"/v2/models/words/predictions/{quoted}")
    assert status == 200, body
    assert body["key"] == "user/1042"
    status, body = stored.post("/v2/models/words/predictions", {"keys": ["user/1001", 1001]})
    assert status == 400 and "keys[1]: 1001" in body["error"]
    status, body = stored.post("/v2/models/words/predictions", {"keys": ["user/1001", "1001"]})
    assert [p["key"] for p in body["predictions"]] == ["user/1001"]
    assert body["missing"] == ["1001"]
    assert documented("StoredPredictions", body)


def test_a_newer_run_is_taken_up_without_a_restart(stored: Stored) -> None:
    before = stored.get("/v2/models/scores/versions/2/predictions/1003")[1]["run_id"]
    newer = stored.batch(2, key="id", keep=["segment"])  # replaces the older run's rows
    assert newer.id != before
    deadline = time.monotonic() + 30
    while True:
        status, body = stored.get("/v2/models/scores/versions/2/predictions/1003")
        assert status == 200, body  # the old run answers from memory until the new one is in
        if body["run_id"] == newer.id:
            break
        assert time.monotonic() < deadline, "the newer run was never taken up"
        time.sleep(REFRESH_S / 3)
    assert body["scored_at"] == newer.time().isoformat()
    assert body["prediction"] == stored.expected(2, [1003])[0]


def test_a_server_process_answers_from_the_warehouse(ferry_home: Path, tmp_path: Path) -> None:
    frame, target = scores_frame(100, seed=1)
    ferry.register(LogisticRegression().fit(frame, target), "solo", sample=frame.head(20))
    frame.insert(0, "id", np.arange(len(frame)))
    frame.to_parquet(tmp_path / "in.parquet")
    run = batch("solo", str(tmp_path / "in.parquet"), key="id")
    server = start_serve(ferry_home, "solo", "--no-capture")
    try:
        status, body = server.request("GET", "/v2/models/solo/predictions/42")
        answer = json.loads(body)
        assert status == 200, answer
        assert answer["run_id"] == run.id
        assert answer["prediction"] == ferry.load("solo").predict(frame.iloc[[42]][FEATURES])[0]
    finally:
        assert server.stop() == 0
