"""TensorFlow Serving's REST API (`/v1/models/...`), driven with plain HTTP as its clients send
it (tensorflow/serving `g3doc/api_rest.md`), against the scikit-learn models of the `served`
fixture: iris (one input, label + probabilities, versions 1 and 2, `production` -> 1), churn
(a number and a string column, two outputs) and fragile (one output; sums its row)."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import numpy as np
import pytest
import schemathesis
from conftest import Served
from hypothesis import HealthCheck, settings
from prometheus_client.parser import text_string_to_metric_families
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import ferry
from ferry.serve.rest.openapi import openapi_document
from ferry.serve.rest.tfserving_codec import Format, encode_answer
from ferry.serve.types import InferenceResponse, InferOutput

pytestmark = pytest.mark.serial  # schemathesis' cases vanish under pytest-xdist: see Makefile

CHURN_ROWS = [{"age": 25.0, "plan": "pro"}, {"age": 70.0, "plan": "basic"}]


def v2_outputs(served: Served, path: str, rows: list[list[float]]) -> dict[str, Any]:
    """The V2 endpoint's outputs for iris `rows`, by name, shaped."""
    status, body = served.post_json(path, {"inputs": [
        {"name": "X", "datatype": "FP32", "shape": [len(rows), 4], "data": rows}]})
    assert status == 200, body
    return {o["name"]: np.reshape(o["data"], o["shape"]).tolist() for o in body["outputs"]}


def iris_rows(served: Served, start: int = 48, stop: int = 53) -> list[list[float]]:
    rows: list[list[float]] = served.iris_x[start:stop].tolist()
    return rows


def error_of(served: Served, path: str, body: bytes, method: str = "POST") -> tuple[int, str]:
    status, headers, raw = served.request(method, path, body,
                                          {"Content-Type": "application/json"})
    document = json.loads(raw)
    assert headers["content-type"].startswith("application/json")
    assert list(document) == ["error"], document
    return status, document["error"]


# -- predict: rows and columns -------------------------------------------------------------

def test_rows_answer_one_object_per_row_when_the_model_has_several_outputs(
        served: Served) -> None:
    rows = iris_rows(served)
    status, body = served.post_json("/v1/models/iris:predict", {"instances": rows})

    assert status == 200, body
    expected = v2_outputs(served, "/v2/models/iris/infer", rows)
    assert body == {"predictions": [
        {"label": label, "probabilities": probabilities}
        for label, probabilities in zip(expected["label"], expected["probabilities"],
                                        strict=True)]}
    model = ferry.load("iris:1", registry=served.registry)
    np.testing.assert_allclose([p["probabilities"] for p in body["predictions"]],
                               model.predict_proba(np.asarray(rows, dtype=np.float32)),
                               rtol=1e-6)


def test_columns_answer_one_tensor_per_output(served: Served) -> None:
    rows = iris_rows(served)
    status, body = served.post_json("/v1/models/iris:predict", {"inputs": rows})
    named_status, named = served.post_json("/v1/models/iris:predict", {"inputs": {"X": rows}})

    assert status == named_status == 200, body
    assert body == named == {"outputs": v2_outputs(served, "/v2/models/iris/infer", rows)}


def test_one_output_answers_bare_values(served: Served) -> None:
    rows = iris_rows(served, 0, 3)
    sums = np.asarray(rows, dtype=np.float32).sum(axis=1)

    _, by_rows = served.post_json("/v1/models/fragile:predict", {"instances": rows})
    _, by_columns = served.post_json("/v1/models/fragile:predict", {"inputs": rows})

    np.testing.assert_allclose(by_rows["predictions"], sums, rtol=1e-6)
    assert by_columns == {"outputs": by_rows["predictions"]}
    assert list(by_rows) == ["predictions"]


def test_a_model_with_one_input_takes_rows_as_objects_too(served: Served) -> None:
    rows = iris_rows(served)
    _, plain = served.post_json("/v1/models/iris:predict", {"instances": rows})
    status, named = served.post_json("/v1/models/iris:predict",
                                     {"instances": [{"X": row} for row in rows],
                                      "signature_name": "serving_default"})
    assert status == 200
    assert named == plain


def test_named_rows_fill_string_and_number_columns(served: Served) -> None:
    status, body = served.post_json("/v1/models/churn:predict", {"instances": CHURN_ROWS})

    assert status == 200, body
    expected = ferry.load("churn", registry=served.registry).predict(
        {"age": np.array([25.0, 70.0], dtype=np.float32), "plan": ["pro", "basic"]})
    assert [row["label"] for row in body["predictions"]] == list(expected) == ["stay", "churn"]
    assert all(len(row["probabilities"]) == 2 for row in body["predictions"])


@pytest.mark.parametrize("inputs", [
    {"age": [[25.0], [70.0]], "plan": [["pro"], ["basic"]]},
    {"age": [25, 70], "plan": ["pro", "basic"]},
    {"age": [25, 70], "plan": [{"b64": base64.b64encode(b"pro").decode()}, "basic"]},
], ids=["as-shaped", "one-value-per-row", "b64"])
def test_named_columns_match_the_rows(served: Served, inputs: dict[str, Any]) -> None:
    _, rows = served.post_json("/v1/models/churn:predict", {"instances": CHURN_ROWS})
    status, columns = served.post_json("/v1/models/churn:predict", {"inputs": inputs})

    assert status == 200, columns
    assert columns["outputs"]["label"] == [row["label"] for row in rows["predictions"]]
    assert columns["outputs"]["probabilities"] == [row["probabilities"]
                                                   for row in rows["predictions"]]


def test_nan_and_infinity_are_taken_and_answered(served: Served) -> None:
    body = b'{"instances": [[NaN, 1.0, 2.0, 3.0], [Infinity, 1, 1, 1], [1, 1, 1, 1]]}'
    status, _, raw = served.request("POST", "/v1/models/fragile:predict", body)

    assert status == 200, raw
    assert b"NaN" in raw and b"Infinity" in raw
    answer = json.loads(raw)["predictions"]
    assert math.isnan(answer[0]) and answer[1] == math.inf and answer[2] == 4.0


def test_binary_outputs_named_bytes_are_answered_in_b64() -> None:
    response = InferenceResponse("m", "1", [
        InferOutput("image_bytes", "BYTES", (2,), np.array([b"\x00\xff", b"ok"], dtype=object)),
        InferOutput("caption", "BYTES", (2,), np.array([b"cat", b"dog"], dtype=object))])

    rows = json.loads(encode_answer(response, Format.ROWS))
    columns = json.loads(encode_answer(response, Format.COLUMNS))

    assert rows == {"predictions": [{"image_bytes": {"b64": "AP8="}, "caption": "cat"},
                                    {"image_bytes": {"b64": "b2s="}, "caption": "dog"}]}
    assert columns == {"outputs": {"image_bytes": [{"b64": "AP8="}, {"b64": "b2s="}],
                                   "caption": ["cat", "dog"]}}


# -- versions and labels -----------------------------------------------------------------------

@pytest.mark.parametrize(("path", "v2_path"), [
    ("/v1/models/iris/versions/2:predict", "/v2/models/iris/versions/2/infer"),
    ("/v1/models/iris/labels/production:predict", "/v2/models/iris/versions/1/infer"),
    ("/v1/models/iris:predict", "/v2/models/iris/versions/1/infer"),
], ids=["version", "label", "default-is-production"])
def test_the_path_picks_the_version(served: Served, path: str, v2_path: str) -> None:
    rows = iris_rows(served, 70, 75)
    status, body = served.post_json(path, {"inputs": rows})

    assert status == 200, body
    assert body["outputs"] == v2_outputs(served, v2_path, rows)


def test_versions_answer_differently(served: Served) -> None:
    rows = iris_rows(served, 70, 75)
    _, one = served.post_json("/v1/models/iris/versions/1:predict", {"inputs": rows})
    _, two = served.post_json("/v1/models/iris/versions/2:predict", {"inputs": rows})
    assert one["outputs"]["probabilities"] != two["outputs"]["probabilities"]


# -- status and metadata ---------------------------------------------------------------------

def available(version: str) -> dict[str, Any]:
    return {"version": version, "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}


@pytest.mark.parametrize(("path", "versions"), [
    ("/v1/models/iris", ["1", "2"]),
    ("/v1/models/iris/versions/2", ["2"]),
    ("/v1/models/iris/labels/production", ["1"]),
])
def test_status_lists_the_versions_asked_for(served: Served, path: str,
                                             versions: list[str]) -> None:
    status, _, raw = served.request("GET", path)
    assert status == 200
    assert json.loads(raw) == {"model_version_status": [available(v) for v in versions]}


def dims(*sizes: int) -> dict[str, Any]:
    return {"dim": [{"size": str(size), "name": ""} for size in sizes], "unknown_rank": False}


def test_metadata_is_the_signature_def_map(served: Served) -> None:
    status, _, raw = served.request("GET", "/v1/models/iris/metadata")

    assert status == 200
    assert json.loads(raw) == {
        "model_spec": {"name": "iris", "signature_name": "", "version": "1"},
        "metadata": {"signature_def": {"signature_def": {"serving_default": {
            "inputs": {"X": {"dtype": "DT_FLOAT", "tensor_shape": dims(-1, 4), "name": "X:0"}},
            "outputs": {
                "label": {"dtype": "DT_INT64", "tensor_shape": dims(-1), "name": "label:0"},
                "probabilities": {"dtype": "DT_FLOAT", "tensor_shape": dims(-1, 3),
                                  "name": "probabilities:0"}},
            "method_name": "tensorflow/serving/predict"}}}}}


def test_metadata_of_a_version_and_of_string_inputs(served: Served) -> None:
    _, _, iris = served.request("GET", "/v1/models/iris/versions/2/metadata")
    _, _, churn = served.request("GET", "/v1/models/churn/metadata")

    assert json.loads(iris)["model_spec"]["version"] == "2"
    inputs = json.loads(churn)["metadata"]["signature_def"]["signature_def"][
        "serving_default"]["inputs"]
    assert {name: tensor["dtype"] for name, tensor in inputs.items()} == {
        "age": "DT_FLOAT", "plan": "DT_STRING"}


# -- errors ------------------------------------------------------------------------------------

def predict_body(**document: Any) -> bytes:
    return json.dumps(document).encode()


@pytest.mark.parametrize(("path", "body", "status", "phrase"), [
    ("/v1/models/half:predict", predict_body(instances=[1.0]), 404,
     "Servable not found for request: Latest(half)"),
    ("/v1/models/iris/versions/9:predict", predict_body(instances=[[1, 2, 3, 4]]), 404,
     "Servable not found for request: Specific(iris, 9)"),
    ("/v1/models/iris/labels/canary:predict", predict_body(instances=[[1, 2, 3, 4]]), 400,
     "Unrecognized servable version label: canary"),
    ("/v1/models/iris/versions/two:predict", predict_body(instances=[[1, 2, 3, 4]]), 400,
     "Failed to convert version: two to numeric"),
    ("/v1/models/iris:predict", predict_body(instances=[[1, 2, 3, 4]], inputs=[[1, 2, 3, 4]]),
     400, "exactly one of 'instances' (rows) or 'inputs' (columns), got 2"),
    ("/v1/models/iris:predict", predict_body(signature_name=""), 400, "got 0"),
    ("/v1/models/iris:predict", predict_body(signature_name="classify", instances=[[1] * 4]),
     400, "signature_name: serving signature name 'classify' not found"),
    ("/v1/models/iris:predict", predict_body(instances=[[1, 2, 3, 4], [1, 2]]), 400,
     "input 'X': every row must have the same shape"),
    ("/v1/models/iris:predict", predict_body(inputs=[[1, 2, 3, 4], [1, 2, 3]]), 400,
     "input 'X': every row must have the same shape"),
    ("/v1/models/iris:predict", predict_body(instances=[[1, 2, 3]]), 400,
     "input 'X' has shape [1, 3], model iris expects [-1, 4]"),
    ("/v1/models/iris:predict", predict_body(instances=[["a", "b", "c", "d"]]), 400,
     "input 'X': data is not FP32"),
    ("/v1/models/iris:predict", predict_body(inputs={"Y": [[1, 2, 3, 4]]}), 400,
     "unknown input 'Y'"),
    ("/v1/models/churn:predict", predict_body(instances=[{"age": 3, "plan": "pro"},
                                                         {"age": 4}]), 400,
     "instances[1] has no input 'plan'"),
    ("/v1/models/churn:predict", predict_body(inputs={"age": [[3]]}), 400,
     "missing input 'plan'"),
    ("/v1/models/churn:predict", predict_body(instances=[[3, "pro"]]), 400,
     "the model takes 2 inputs (age, plan): give each by name"),
    ("/v1/models/churn:predict", predict_body(inputs={"age": [3], "plan": [7]}), 400,
     "input 'plan': element 0 must be a string or {\"b64\": \"...\"}, got a number"),
    ("/v1/models/churn:predict", predict_body(inputs={"age": [3], "plan": [{"b64": "%%"}]}),
     400, "input 'plan': element 0: 'b64' is not valid base64"),
    ("/v1/models/iris:predict", predict_body(instances=[]), 400, "non-empty list"),
    ("/v1/models/iris:predict", b'{"instances": [[1, 2, 3, 4]]', 400, "invalid JSON body"),
    ("/v1/models/iris:predict", b"[1, 2]", 400, "must be a JSON object"),
    ("/v1/models/iris:classify", predict_body(examples=[{"x": 1}]), 400,
     ":classify is not supported"),
    ("/v1/models/iris:regress", predict_body(examples=[{"x": 1}]), 400,
     "only :predict is"),
    ("/v1/models/iris/weights", b"", 400, "Malformed request: POST /v1/models/iris/weights"),
], ids=["unknown-model", "unknown-version", "unknown-label", "version-not-a-number",
        "instances-and-inputs", "neither", "signature", "ragged-rows", "ragged-columns",
        "short-rows", "strings-for-floats", "unknown-input", "row-missing-input",
        "column-missing-input", "unnamed-rows-for-two-inputs", "number-for-string", "bad-b64",
        "no-rows", "bad-json", "not-an-object", "classify", "regress", "unknown-path"])
def test_bad_requests_answer_an_error_naming_the_problem(served: Served, path: str, body: bytes,
                                                         status: int, phrase: str) -> None:
    answered, message = error_of(served, path, body)
    assert answered == status, message
    assert phrase in message


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/models/iris:predict"), ("POST", "/v1/models/iris/metadata"),
    ("POST", "/v1/models/iris")])
def test_the_wrong_method_is_a_malformed_request(served: Served, method: str, path: str) -> None:
    status, message = error_of(served, path, b"{}", method)
    assert status == 400
    assert message.startswith(f"Malformed request: {method} {path}")


@pytest.mark.parametrize("path", ["/v1/models/half", "/v1/models/half/metadata"])
def test_status_and_metadata_of_an_unknown_model_are_not_found(served: Served,
                                                               path: str) -> None:
    status, message = error_of(served, path, b"", "GET")
    assert status == 404
    assert message.startswith("Servable not found for request: Latest(half)")


# -- recording --------------------------------------------------------------------------------

def requests_counted(served: Served, version: str, status: str) -> float:
    _, _, raw = served.request("GET", "/metrics")
    for family in text_string_to_metric_families(raw.decode()):
        for sample in family.samples:
            if sample.name == "ferry_inference_requests_total" and sample.labels == {
                    "model": "iris", "version": version, "protocol": "http", "status": status}:
                return float(sample.value)
    return 0.0


def successes(served: Served, version: str) -> int:
    _, _, raw = served.request("GET", f"/v2/models/iris/versions/{version}/stats")
    count: int = json.loads(raw)["model_stats"][0]["inference_stats"]["success"]["count"]
    return count


def test_metrics_and_statistics_count_these_requests(served: Served) -> None:
    before = (requests_counted(served, "2", "200"), requests_counted(served, "2", "400"),
              successes(served, "2"))

    for _ in range(3):
        served.post_json("/v1/models/iris/versions/2:predict", {"instances": iris_rows(served)})
    served.post_json("/v1/models/iris/versions/2:predict", {"instances": [[1, 2]]})

    after = (requests_counted(served, "2", "200"), requests_counted(served, "2", "400"),
             successes(served, "2"))
    assert after == (before[0] + 3, before[1] + 1, before[2] + 3)


# -- the OpenAPI document, held against these paths on served models ----------------------------

FUZZ_CONFIG: dict[str, Any] = {
    "seed": 20240917,
    "generation": {"max-examples": 20},
    "dictionaries": {"models": {"values": ["iris", "churn"]}, "versions": {"values": ["1", "2"]},
                     "labels": {"values": ["production"]}},
    "operations": [{"include-path-regex": "^/v1/models/",
                    "parameters": {"path.name": {"dictionary": "models", "probability": 0.9},
                                   "path.version": {"dictionary": "versions", "probability": 0.8},
                                   "path.label": {"dictionary": "labels", "probability": 0.8}}}],
}
"""Fuzzed bodies on models that are served (test_openapi.py's run mostly meets a 404 here);
not `fragile`, which fails on negative numbers by design (a documented 500)."""
FUZZ_SCHEMA = schemathesis.openapi.from_dict(openapi_document(),
                                             config=schemathesis.Config.from_dict(FUZZ_CONFIG))


@FUZZ_SCHEMA.exclude(path_regex="^(?!/v1/models/)").parametrize()
@settings(max_examples=20, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_the_paths_answer_as_documented(case: schemathesis.Case, served: Served) -> None:
    case.call_and_validate(base_url=served.running.http_url, checks=[
        not_a_server_error, response_schema_conformance, status_code_conformance,
        content_type_conformance])
