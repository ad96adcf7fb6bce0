"""Feedback: true labels sent late, by request id, to a live server (and by `ferry feedback`),
checked against the version's signature, stored atomically and joined to the sampled rows."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from openapi_schema_validator import OAS30Validator
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import ferry
from ferry.cli import app
from ferry.monitor.capture.settings import CaptureSettings
from ferry.monitor.events import SampledRows
from ferry.monitor.feedback import MAX_LABELS_PER_CALL
from ferry.monitor.store import MonitoringStore, open_store
from ferry.registry import Registry
from ferry.serve.batching import BatchSettings
from ferry.serve.rest.openapi import openapi_document
from ferry.serve.server import RunningServer, serve_in_thread
from ferry.serve.settings import ServeSettings

TOKEN = "feedback-token"
DOCUMENT = openapi_document()
REQUESTS = ("req-0", "req-1", "req-2")
ROWS = 2
"""Rows per request."""


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> tuple[Registry, np.ndarray]:
    root = tmp_path_factory.mktemp("feedback")
    registry = Registry(f"sqlite:///{root / 'registry.db'}", artifacts_url=str(root / "art"))
    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    ferry.register(LogisticRegression(max_iter=500).fit(x, y), "iris", sample=x,
                   registry=registry)
    return registry, x


def start(registry: Registry, capture: CaptureSettings) -> RunningServer:
    settings = ServeSettings(admin_token=TOKEN, batching=BatchSettings(), capture=capture)
    return serve_in_thread([], registry=registry, settings=settings, grpc_port=None)


@pytest.fixture(scope="module")
def running(iris: tuple[Registry, np.ndarray]) -> Iterator[RunningServer]:
    """A server that captured `REQUESTS` (ROWS rows each) into an in-memory store."""
    registry, x = iris
    server = start(registry, CaptureSettings(store_url="memory://", flush_interval_s=0.05))
    try:
        for i, request_id in enumerate(REQUESTS):
            rows = x[i * 50:i * 50 + ROWS]
            body = {"id": request_id, "inputs": [{"name": "X", "datatype": "FP32",
                                                  "shape": list(rows.shape),
                                                  "data": rows.ravel().tolist()}]}
            assert post(server, "/v2/models/iris/infer", body)[0] == 200
        wait_sampled(server.server.capture.store, REQUESTS)
        yield server
    finally:
        server.stop()


def post(running: RunningServer, path: str, document: Any,
         token: str | None = TOKEN) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(running.http_url + path, json.dumps(document).encode(),
                                     headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_sampled(store: MonitoringStore, request_ids: tuple[str, ...]) -> None:
    """Until the capture has written the requests' rows (a second's rows go once it ends)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if set(request_ids) <= set(store.samples("iris", 1)["request_id"].to_pylist()):
            return
        time.sleep(0.05)
    raise AssertionError("the capture did not write the sampled rows in time")


def labels_of(running: RunningServer) -> dict[tuple[str, int], Any]:
    table = running.server.capture.store.samples("iris", 1)
    return {(r["request_id"], r["row"]): r["label"] for r in table.to_pylist()}


def test_labels_are_stored_and_joined_to_the_sampled_rows(running: RunningServer) -> None:
    body = {"labels": [{"id": "req-0", "row": 1, "label": 0},  # row given
                       {"id": "req-1", "label": 1},  # row defaults to 0
                       {"id": "req-2", "labels": [2, 2]}]}  # every row of one request

    status, answer = post(running, "/v2/models/iris/feedback", body)

    assert status == 200, answer
    assert answer == {"model": "iris", "labels": 4, "matched": 4, "skipped": 0,
                      "skipped_ids": []}
    labels = labels_of(running)
    assert labels[("req-0", 1)] == 0 and labels[("req-1", 0)] == 1
    assert labels[("req-2", 0)] == labels[("req-2", 1)] == 2
    assert labels[("req-1", 1)] is None  # not named: still unlabelled


def test_a_later_label_replaces_the_earlier_one_through_the_versioned_route(
        running: RunningServer) -> None:
    assert post(running, "/v2/models/iris/feedback",
                {"labels": [{"id": "req-1", "row": 1, "label": 0}]})[0] == 200
    status, answer = post(running, "/v2/models/iris/versions/1/feedback",
                          {"labels": [{"id": "req-1", "row": 1, "label": 2.0}]})
    assert status == 200, answer
    assert labels_of(running)[("req-1", 1)] == 2  # a whole float is the integer class


def test_a_compact_body_labels_every_row_of_one_request(running: RunningServer) -> None:
    status, answer = post(running, "/v2/models/iris/feedback", {"id": "req-0",
                                                                  "labels": [1, 1]})
    assert status == 200, answer
    assert answer["labels"] == 2
    assert labels_of(running)[("req-0", 0)] == labels_of(running)[("req-0", 1)] == 1


def test_labels_of_requests_not_sampled_are_skipped_and_named(running: RunningServer) -> None:
    body = {"labels": [{"id": "req-0", "row": 0, "label": 1}, {"id": "not-sampled",
                                                                 "label": 1}]}

    status, answer = post(running, "/v2/models/iris/feedback", body)

    assert status == 200, answer
    assert answer == {"model": "iris", "labels": 1, "matched": 1, "skipped": 1,
                      "skipped_ids": ["not-sampled"]}
    assert labels_of(running)[("req-0", 0)] == 1
    schema = {"$ref": "#/components/schemas/FeedbackResponse",
              "components": DOCUMENT["components"]}
    OAS30Validator(schema).validate(answer)


def test_an_unknown_request_id_alone_is_refused_by_name_and_nothing_is_stored(
        running: RunningServer) -> None:
    before = labels_of(running)
    body = {"labels": [{"id": "no-such-request", "label": 1}, {"id": "nor-this", "label": 2}]}

    status, answer = post(running, "/v2/models/iris/feedback", body)

    assert status == 400
    assert "no-such-request" in answer["error"] and "nor-this" in answer["error"]
    assert labels_of(running) == before


def test_a_bad_label_refuses_the_whole_call(running: RunningServer) -> None:
    before = labels_of(running)
    body = {"labels": [{"id": "req-0", "row": 0, "label": 1}, {"id": "req-1", "label": 9}]}

    status, answer = post(running, "/v2/models/iris/feedback", body)

    assert status == 400 and "req-1" in answer["error"]
    assert labels_of(running) == before


@pytest.mark.parametrize(("label", "shown"), [("setosa", "'setosa'"), (7, "7"), (1.5, "1.5"),
                                              (True, "True"), (None, "null"),
                                              ([1], "[1]")])
def test_a_label_the_classifier_cannot_have_is_refused(running: RunningServer, label: Any,
                                                       shown: str) -> None:
    before = labels_of(running)
    body = {"labels": [{"id": "req-0", "label": 0}, {"id": "req-1", "label": label}]}

    status, answer = post(running, "/v2/models/iris/feedback", body)

    assert status == 400
    assert "'req-1' row 0" in answer["error"] and shown in answer["error"]
    assert labels_of(running) == before


@pytest.mark.parametrize(("body", "named"), [
    ({"labels": []}, "labels"),
    ([{"id": "req-0", "label": 0}], "labels"),
    ({"labels": [{"id": "req-0"}]}, "labels[0].label"),
    ({"labels": [{"id": "", "label": 0}]}, "labels[0].id"),
    ({"labels": [{"id": "req-0", "label": 0, "lable": 1}]}, "lable"),
    ({"labels": [{"id": "req-0", "row": -1, "label": 0}]}, "labels[0].row"),
    ({"labels": [{"id": "req-0", "row": 2**40, "label": 0}]}, "labels[0].row"),
    ({"labels": [{"id": "req-0", "labels": []}]}, "labels[0].labels"),
    ({"labels": [{"id": "req-0", "labels": [0] * (MAX_LABELS_PER_CALL + 1)}]},
     f"more than {MAX_LABELS_PER_CALL}"),
], ids=["empty", "not-an-object", "no-label", "empty-id", "unknown-field", "negative-row",
        "huge-row", "empty-rows", "too-many"])
def test_a_malformed_body_is_refused_naming_the_field(running: RunningServer, body: Any,
                                                      named: str) -> None:
    status, answer = post(running, "/v2/models/iris/feedback", body)
    assert status == 400
    assert named in answer["error"]


@pytest.mark.parametrize("body", [
    {"labels": []}, {"labels": [{"id": "req-0"}]}, {"labels": [{"id": "", "label": 0}]},
    {"labels": [{"id": "req-0", "label": 0, "lable": 1}]},
    {"labels": [{"id": "req-0", "row": -1, "label": 0}]},
    {"labels": [{"id": "req-0", "row": 0, "labels": [0]}]}, {"id": "req-0", "labels": []},
    {"labels": [{"id": "req-0", "label": 0}], "extra": 1},
])
def test_the_openapi_schema_refuses_what_the_server_refuses(running: RunningServer,
                                                            body: Any) -> None:
    schema = {"$ref": "#/components/schemas/FeedbackRequest", "components": DOCUMENT["components"]}
    assert not OAS30Validator(schema).is_valid(body)
    assert post(running, "/v2/models/iris/feedback", body)[0] == 400


def test_the_openapi_schema_accepts_both_forms() -> None:
    schema = {"$ref": "#/components/schemas/FeedbackRequest", "components": DOCUMENT["components"]}
    for body in ({"labels": [{"id": "a", "label": 0}, {"id": "b", "labels": [1, 2]}]},
                 {"id": "a", "labels": [0, 1]}):
        assert OAS30Validator(schema).is_valid(body), body


def test_feedback_needs_the_admin_token(running: RunningServer) -> None:
    before = labels_of(running)
    body = {"labels": [{"id": "req-0", "label": 2}]}

    assert post(running, "/v2/models/iris/feedback", body, token=None)[0] == 401
    assert post(running, "/v2/models/iris/feedback", body, token="wrong")[0] == 401
    assert labels_of(running) == before


def test_feedback_for_a_model_not_served_is_not_found(running: RunningServer) -> None:
    status, answer = post(running, "/v2/models/nope/feedback",
                          {"labels": [{"id": "req-0", "label": 0}]})
    assert status == 404 and "nope" in answer["error"]


def test_feedback_without_capture_says_capture_is_off(
        iris: tuple[Registry, np.ndarray]) -> None:
    server = start(iris[0], CaptureSettings(enabled=False))
    try:
        status, answer = post(server, "/v2/models/iris/feedback",
                              {"labels": [{"id": "req-0", "label": 0}]})
    finally:
        server.stop()
    assert status == 400
    assert "capture" in answer["error"] and "--no-capture" in answer["error"]


# -- ferry feedback (the CLI writes to the default store directly) ---------------------------

@pytest.fixture
def captured(iris: tuple[Registry, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> str:
    """The module's registry as the default one, and request `cli-0` (3 rows) sampled into
    the default (embedded) store."""
    registry, x = iris
    monkeypatch.setenv("FERRY_REGISTRY_URL", registry.url or "")
    monkeypatch.setenv("FERRY_ARTIFACTS_URL", registry.artifacts_url or "")
    with open_store() as store:
        store.append_samples([SampledRows(datetime.now(UTC), "cli-0", "iris", 1,
                                          {"petal": x[:3, 2], "output:label": np.zeros(3)})])
    return "iris"


def ferry_feedback(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["feedback", *args], prog_name="ferry")
    return result.exit_code, result.stdout, result.stderr


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def stored_labels() -> list[Any]:
    with open_store() as store:
        return store.samples("iris", 1)["label"].to_pylist()


def test_ferry_feedback_attaches_a_csv(captured: str, tmp_path: Path) -> None:
    labels = write_csv(tmp_path / "labels.csv", "id,row,label\ncli-0,0,2\ncli-0,2,1\n")

    code, out, err = ferry_feedback(captured, str(labels), "--json")

    assert code == 0, err
    assert json.loads(out) == {"model": "iris", "labels": 2, "matched": 2, "skipped": 0,
                               "skipped_ids": []}
    assert stored_labels() == [2, None, 1]


def test_ferry_feedback_says_which_labels_it_skipped(captured: str, tmp_path: Path) -> None:
    labels = write_csv(tmp_path / "labels.csv", "id,row,label\ncli-0,1,2\nnope,0,1\nnope,1,1\n")

    code, out, err = ferry_feedback(captured, str(labels))

    assert code == 0, err
    assert " ".join(out.split()) == ("attached 1 labels to iris; 1 name a sampled row; skipped 2"
                                     " labels of requests the capture did not sample, among"
                                     " them nope")
    assert stored_labels() == [None, 2, None]


@pytest.mark.parametrize(("text", "named"), [
    ("id,row,label\nnope,0,1\n", "nope"),
    ("id,row,label\ncli-0,0,setosa\n", "setosa"),
    ("id,row,label\ncli-0,x,1\n", "line 2"),
    ("request,label\ncli-0,1\n", "missing id"),
    ("id,row,label\n", "no labels"),
], ids=["unknown-id", "not-a-class", "bad-row", "bad-header", "empty"])
def test_ferry_feedback_exits_2_on_bad_input_and_stores_nothing(
        captured: str, tmp_path: Path, text: str, named: str) -> None:
    code, _, err = ferry_feedback(captured, str(write_csv(tmp_path / "labels.csv", text)))

    assert code == 2
    assert named in " ".join(err.split())
    assert stored_labels() == [None, None, None]


def test_ferry_feedback_exit_codes_for_missing_things(captured: str, tmp_path: Path) -> None:
    labels = write_csv(tmp_path / "labels.csv", "id,label\ncli-0,0\n")
    assert ferry_feedback(captured, str(tmp_path / "absent.csv"))[0] == 2
    assert ferry_feedback("not a name", str(labels))[0] == 2
    assert ferry_feedback("unknown-model", str(labels))[0] == 1
