"""The Open Inference Protocol over HTTP, driven by tritonclient.http unchanged from PyPI."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton_http
from conftest import ADMIN_TOKEN, Served
from tritonclient.utils import InferenceServerException


@pytest.fixture
def client(served: Served) -> triton_http.InferenceServerClient:
    return triton_http.InferenceServerClient(served.http_address)


def iris_input(x: np.ndarray, binary: bool) -> triton_http.InferInput:
    tensor = triton_http.InferInput("X", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    return tensor


def test_health_and_metadata(client: triton_http.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    server = client.get_server_metadata()
    assert server["name"] == "ferry"
    assert {"binary_tensor_data", "model_repository"} <= set(server["extensions"])
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", "2")
    assert client.is_model_ready("iris", "production")
    meta = client.get_model_metadata("iris")
    assert meta["versions"] == ["1", "2"]
    assert meta["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]
    assert [o["name"] for o in meta["outputs"]] == ["label", "probabilities"]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_matches_ferry_load(client: triton_http.InferenceServerClient, served: Served,
                                  binary: bool) -> None:
    rows = served.iris_x[40:60]
    expected = ferry_load_proba(served, "iris:1", rows)

    result = client.infer("iris", [iris_input(rows, binary)], request_id="req-7",
                          outputs=[triton_http.InferRequestedOutput("probabilities",
                                                                    binary_data=binary)])

    assert result.get_response()["id"] == "req-7"
    assert result.get_response()["model_version"] == "1"
    assert [o["name"] for o in result.get_response()["outputs"]] == ["probabilities"]
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, rtol=1e-6)


def ferry_load_proba(served: Served, uri: str, rows: np.ndarray) -> np.ndarray:
    import ferry

    return ferry.load(uri, registry=served.registry).predict_proba(rows)


def test_version_by_number_and_alias(client: triton_http.InferenceServerClient,
                                     served: Served) -> None:
    rows = served.iris_x[:5]
    by_alias = client.infer("iris", [iris_input(rows, True)], model_version="production")
    by_number = client.infer("iris", [iris_input(rows, True)], model_version="2")
    default = client.infer("iris", [iris_input(rows, True)])

    assert by_alias.get_response()["model_version"] == "1"
    assert by_number.get_response()["model_version"] == "2"
    assert default.get_response()["model_version"] == "1"  # production wins over latest


def test_bytes_inputs_for_string_columns(client: triton_http.InferenceServerClient,
                                         served: Served) -> None:
    import ferry

    ages = np.array([[25.0], [70.0]], dtype=np.float32)
    plans = np.array([[b"pro"], [b"basic"]], dtype=object)
    age = triton_http.InferInput("age", [2, 1], "FP32")
    age.set_data_from_numpy(ages)
    plan = triton_http.InferInput("plan", [2, 1], "BYTES")
    plan.set_data_from_numpy(plans)

    result = client.infer("churn", [age, plan])

    expected = ferry.load("churn", registry=served.registry).predict(
        {"age": ages[:, 0], "plan": ["pro", "basic"]})
    assert [v.decode() for v in result.as_numpy("label")] == list(expected)


def test_predict_endpoint_takes_records_and_dataframe_split(served: Served) -> None:
    status, body = served.post_json("/v2/models/churn/predict", {
        "instances": [{"age": 25, "plan": "pro"}, {"age": 70, "plan": "basic"}]})
    assert status == 200, body
    assert body["predictions"] == ["stay", "churn"]
    assert body["classes"] == ["churn", "stay"]
    assert len(body["probabilities"]) == 2

    status, split = served.post_json("/v2/models/churn/versions/1/predict", {
        "dataframe_split": {"columns": ["age", "plan"], "data": [[25, "pro"], [70, "basic"]]}})
    assert status == 200
    assert split["predictions"] == body["predictions"]


def test_repository_index_load_and_unload_with_token(served: Served) -> None:
    client = triton_http.InferenceServerClient(served.http_address)
    index = {(m["name"], m["version"]): m["state"] for m in client.get_model_repository_index()}
    assert index[("iris", "1")] == index[("iris", "2")] == "READY"

    with pytest.raises(InferenceServerException, match="401"):
        client.unload_model("churn")
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    client.unload_model("churn", headers=auth)
    assert not client.is_model_ready("churn")
    status, body = served.post_json("/v2/models/churn/predict", {"instances": [{"age": 1}]})
    assert status == 503 and "unloaded" in body["error"]

    client.load_model("churn", headers=auth)
    assert client.is_model_ready("churn")


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v2/models/iris/infer", b"{not json", 400, "invalid JSON"),
        ("/v2/models/iris/infer", b'{"inputs": []}', 400, "non-empty list"),
        ("/v2/models/iris/infer", json.dumps({"inputs": [{"name": "X", "shape": [1, 3],
         "datatype": "FP32", "data": [1, 2, 3]}]}).encode(), 400, "expects [-1, 4]"),
        ("/v2/models/iris/infer", json.dumps({"inputs": [{"name": "X", "shape": [1, 4],
         "datatype": "FP64", "data": [1, 2, 3, 4]}]}).encode(), 400, "expects FP32"),
        ("/v2/models/iris/infer", json.dumps({"inputs": [{"name": "X", "shape": [1, 4],
         "datatype": "FP32", "data": [1, 2, 3]}]}).encode(), 400, "do not fill shape"),
        ("/v2/models/iris/infer", json.dumps({"inputs": [{"name": "Z", "shape": [1, 4],
         "datatype": "FP32", "data": [1, 2, 3, 4]}]}).encode(), 400, "unknown input 'Z'"),
        ("/v2/models/iris/infer", json.dumps({"inputs": [{"name": "X", "shape": [1, 4],
         "datatype": "WORDS", "data": [1, 2, 3, 4]}]}).encode(), 400, "unknown datatype"),
        ("/v2/models/iris/infer", json.dumps({"inputs": [{"name": "X", "shape": [1, 4],
         "datatype": "FP32", "data": ["a", "b", "c", "d"]}]}).encode(), 400, "not FP32"),
        ("/v2/models/iris/infer", json.dumps({"inputs": [{"name": "X", "shape": [1, 4],
         "datatype": "FP32", "data": [1, 2, 3, 4]}], "outputs": [{"name": "nope"}]}).encode(),
         400, "unknown output 'nope'"),
        ("/v2/models/nope/infer", b"{}", 404, "no model named 'nope'"),
        ("/v2/models/iris/versions/9/infer", b"{}", 404, "no version '9'"),
        ("/v2/models/iris/versions/canary/infer", b"{}", 404, "alias 'canary'"),
        ("/v2/models/iris/predict", b'{"rows": 1}', 400, "instances"),
    ],
)
def test_bad_requests_get_clear_errors(served: Served, path: str, body: bytes, status: int,
                                       message: str) -> None:
    got_status, _, got_body = served.request("POST", path, body,
                                             {"Content-Type": "application/json"})

    assert got_status == status
    assert message in json.loads(got_body)["error"]


def test_oversized_request_is_413(served: Served) -> None:
    status, _, body = served.request("POST", "/v2/models/iris/infer", b"x" * (2 * 1024 * 1024))

    assert status == 413
    assert "over the limit" in json.loads(body)["error"]


def test_failure_inside_model_is_500_and_server_goes_on(served: Served) -> None:
    bad = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32",
                       "data": [-1, 2, 3, 4]}]}
    good = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}

    status, body = served.post_json("/v2/models/fragile/infer", bad)
    assert status == 500
    assert "negative input breaks this model" in body["error"]

    status, body = served.post_json("/v2/models/fragile/infer", good)
    assert status == 200
    assert body["outputs"][0]["data"] == [10.0]


def test_metrics_count_requests_in_base_units(served: Served) -> None:
    client = triton_http.InferenceServerClient(served.http_address)
    client.infer("iris", [iris_input(served.iris_x[:2], True)], model_version="2")
    served.post_json("/v2/models/iris/versions/2/infer", {"inputs": []})

    status, headers, body = served.request("GET", "/metrics")
    text = body.decode()

    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    assert ('ferry_inference_requests_total{model="iris",protocol="http",status="200",'
            'version="2"}') in text
    assert 'status="400",version="2"' in text
    for name in ("ferry_request_duration_seconds_bucket", "ferry_queue_duration_seconds_count",
                 "ferry_compute_duration_seconds_count", "ferry_batch_size_bucket",
                 "ferry_inflight_requests", "ferry_request_size_bytes_count",
                 "ferry_response_size_bytes_count"):
        assert name in text, name


def test_openapi_docs(served: Served) -> None:
    status, _, body = served.request("GET", "/openapi.json")
    document = json.loads(body)
    assert status == 200
    assert "/v2/models/{name}/versions/{version}/infer" in document["paths"]
    status, headers, _ = served.request("GET", "/docs")
    assert status == 200 and headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("body, message", [
    ({"dataframe_split": {"columns": [{}], "data": []}}, "cannot read the rows"),
    ({"dataframe_split": {"columns": ["age", "plan"], "data": [[41]]}},
     "every row must hold 2 values"),
])
def test_bad_dataframe_splits_are_refused(served: Served, body: Any, message: str) -> None:
    status, answer = served.post_json("/v2/models/churn/predict", body)
    assert status == 400
    assert message in answer["error"]


def test_predict_for_an_unknown_model_is_not_found_whatever_the_body(served: Served) -> None:
    status, answer = served.post_json("/v2/models/nope/predict", {"rows": "garbage"})
    assert status == 404
    assert "Request for unknown model" in answer["error"]


@pytest.mark.parametrize("method, path, status, message", [
    ("GET", "/v2/nothing/here", 404, "no route '/v2/nothing/here'"),
    ("GET", "/docs/static/..%2F__init__.py", 404, "no route"),
    ("DELETE", "/v2/models/iris", 405, "DELETE is not allowed"),
])
def test_unknown_routes_and_methods_answer_json(served: Served, method: str, path: str,
                                                status: int, message: str) -> None:
    got, headers, body = served.request(method, path)
    assert got == status
    assert headers["content-type"] == "application/json"
    assert message in json.loads(body)["error"]
