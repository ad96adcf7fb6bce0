"""Triton's statistics and model configuration extensions, configuration overrides on load,
request and response compression, Triton's error phrases and bounded metric labels, over HTTP
and gRPC with tritonclient."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from conftest import ADMIN_TOKEN, Served
from tritonclient.utils import InferenceServerException

AUTH = {"authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def http(served: Served) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(served.http_address)
    yield client
    client.close()


@pytest.fixture(scope="module")
def grpc(served: Served) -> Iterator[grpcclient.InferenceServerClient]:
    client = grpcclient.InferenceServerClient(served.running.grpc_address)
    yield client
    client.close()


def _iris_inputs(module: Any, rows: np.ndarray) -> list[Any]:
    x = module.InferInput("X", list(rows.shape), "FP32")
    x.set_data_from_numpy(rows)
    return [x]


def _version_stats(document: dict[str, Any], version: str) -> dict[str, Any]:
    (stats,) = [s for s in document["model_stats"] if s["version"] == version]
    return stats


def test_server_metadata_lists_the_extensions(http: Any, grpc: Any) -> None:
    for extensions in (http.get_server_metadata()["extensions"],
                       grpc.get_server_metadata().extensions):
        assert {"statistics", "model_configuration", "model_repository"} <= set(extensions)


def test_statistics_count_what_was_sent_over_http(served: Served, http: Any) -> None:
    before = _version_stats(http.get_inference_statistics("iris"), "1")
    for rows in (1, 3, 2):
        http.infer("iris", _iris_inputs(httpclient, served.iris_x[:rows]), model_version="1")
    with pytest.raises(InferenceServerException):
        bad = httpclient.InferInput("X", [1, 3], "FP32")
        bad.set_data_from_numpy(np.zeros((1, 3), np.float32))
        http.infer("iris", [bad], model_version="1")
    after = _version_stats(http.get_inference_statistics("iris", "1"), "1")

    stats, old = after["inference_stats"], before["inference_stats"]
    assert stats["success"]["count"] - old["success"]["count"] == 3
    assert stats["success"]["ns"] > old["success"]["ns"]
    assert stats["fail"]["count"] - old["fail"]["count"] == 1
    assert after["inference_count"] - before["inference_count"] == 6
    assert after["execution_count"] - before["execution_count"] == 3
    assert stats["queue"]["count"] - old["queue"]["count"] == 3
    assert after["last_inference"] > 0
    sizes = {b["batch_size"]: b["compute_infer"]["count"] for b in after["batch_stats"]}
    assert {1, 2, 3} <= set(sizes)


def test_statistics_over_grpc_match_the_model_and_version(served: Served, grpc: Any) -> None:
    grpc.infer("iris", _iris_inputs(grpcclient, served.iris_x[:4]), model_version="2")
    response = grpc.get_inference_statistics("iris", "2")
    (stats,) = response.model_stats
    assert (stats.name, stats.version) == ("iris", "2")
    assert stats.inference_count >= 4
    assert stats.inference_stats.success.count >= 1
    assert 4 in [b.batch_size for b in stats.batch_stats]

    every = grpc.get_inference_statistics()
    assert {("iris", "1"), ("iris", "2"), ("churn", "1")} <= {
        (s.name, s.version) for s in every.model_stats}


def test_statistics_of_an_unknown_model_is_not_found(served: Served, grpc: Any) -> None:
    status, _, body = served.request("GET", "/v2/models/nope/stats")
    assert status == 404
    assert "Request for unknown model" in json.loads(body)["error"]
    with pytest.raises(InferenceServerException, match="Request for unknown model"):
        grpc.get_inference_statistics("nope")


def test_model_config_says_how_the_version_is_served(http: Any, grpc: Any) -> None:
    config = http.get_model_config("iris", "1")
    assert config["name"] == "iris"
    assert config["platform"] == "onnxruntime_onnx"
    assert config["max_batch_size"] >= 1
    assert config["input"] == [{"name": "X", "data_type": "TYPE_FP32", "dims": [4]}]
    assert {o["name"] for o in config["output"]} == {"label", "probabilities"}
    assert config["instance_group"][0]["count"] == 1
    assert "dynamic_batching" in config

    message = grpc.get_model_config("iris", "1").config
    assert message.name == "iris"
    assert message.max_batch_size == config["max_batch_size"]
    assert [(i.name, list(i.dims)) for i in message.input] == [("X", [4])]
    assert message.input[0].data_type == 11  # TYPE_FP32


def test_string_inputs_are_type_string_in_the_config(http: Any) -> None:
    config = http.get_model_config("churn")
    assert {i["name"]: i["data_type"] for i in config["input"]} == {
        "age": "TYPE_FP32", "plan": "TYPE_STRING"}
    assert all(i["dims"] == [1] for i in config["input"])


def test_a_config_override_on_load_is_honoured_on_both_protocols(served: Served) -> None:
    http = httpclient.InferenceServerClient(served.http_address, verbose=False)
    grpc = grpcclient.InferenceServerClient(served.running.grpc_address)
    try:
        http.load_model("churn", headers=AUTH, config='{"max_batch_size": "16"}')
        assert http.get_model_config("churn")["max_batch_size"] == 16
        grpc.load_model("churn", headers=AUTH, config=json.dumps({
            "max_batch_size": 8, "dynamic_batching": {"preferred_batch_size": [4],
                                                      "max_queue_delay_microseconds": 200},
            "instance_group": [{"count": 2, "kind": "KIND_CPU"}]}))
        config = grpc.get_model_config("churn").config
        assert config.max_batch_size == 8
        assert list(config.dynamic_batching.preferred_batch_size) == [4]
        assert config.dynamic_batching.max_queue_delay_microseconds == 200
        assert config.instance_group[0].count == 2
        assert http.is_model_ready("churn")
    finally:
        http.load_model("churn", headers=AUTH)
        http.close()
        grpc.close()
    assert served.request("GET", "/v2/models/churn/config")[0] == 200


@pytest.mark.parametrize("config, message", [
    ('"parameters": {"config": {{"max_batch_size": "16"}}}', "not valid JSON"),
    ('{"max_batch_size": 0}', "max_batch_size must be an integer >= 1"),
    ('{"max_batch_size": true}', "max_batch_size must be an integer >= 1"),
    ('{"platform": "tensorflow_savedmodel"}', "field 'platform' cannot be overridden"),
    ('{"max_batch_size": 4, "dynamic_batching": {"preferred_batch_size": [8]}}',
     "preferred_batch_sizes must lie within 1..4"),
    ('{"instance_group": [{"count": 1, "kind": "KIND_GPU"}]}', "run on the CPU"),
    ('[1, 2]', "must be a JSON object"),
])
def test_a_bad_config_override_fails_to_load_on_both_protocols(served: Served, config: str,
                                                              message: str) -> None:
    http = httpclient.InferenceServerClient(served.http_address)
    grpc = grpcclient.InferenceServerClient(served.running.grpc_address)
    try:
        with pytest.raises(InferenceServerException) as http_error:
            http.load_model("churn", headers=AUTH, config=config)
        with pytest.raises(InferenceServerException) as grpc_error:
            grpc.load_model("churn", headers=AUTH, config=config)
    finally:
        http.close()
        grpc.close()
    for error in (http_error.value, grpc_error.value):
        assert "failed to load 'churn'" in error.message()
        assert message in error.message()
    assert http_error.value.status() == "400"
    assert grpc_error.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert served.post_json("/v2/models/churn/predict", {"instances": [
        {"age": 30, "plan": "pro"}]})[0] == 200


def test_file_overrides_are_refused_on_both_protocols(served: Served) -> None:
    http = httpclient.InferenceServerClient(served.http_address)
    grpc = grpcclient.InferenceServerClient(served.running.grpc_address)
    files = {"file:1/model.onnx": b"\x08\x01"}
    try:
        for client in (http, grpc):
            with pytest.raises(InferenceServerException, match="file overrides are not"):
                client.load_model("churn", headers=AUTH, config='{"max_batch_size": 4}',
                                  files=files)
    finally:
        http.close()
        grpc.close()


def test_loading_an_unknown_model_says_failed_to_load(served: Served) -> None:
    for client in (httpclient.InferenceServerClient(served.http_address),
                   grpcclient.InferenceServerClient(served.running.grpc_address)):
        with pytest.raises(InferenceServerException, match="failed to load 'wrong_model_name'"):
            client.load_model("wrong_model_name", headers=AUTH)
        client.close()


def test_triton_phrases_for_unknown_models_and_versions(served: Served, grpc: Any) -> None:
    rows = served.iris_x[:1]
    with pytest.raises(InferenceServerException, match="Request for unknown model: 'nope'"):
        grpc.infer("nope", _iris_inputs(grpcclient, rows))
    with pytest.raises(InferenceServerException,
                       match="Request for unknown model: 'iris' version 7 is not found"):
        grpc.infer("iris", _iris_inputs(grpcclient, rows), model_version="7")
    with pytest.raises(InferenceServerException, match="failed to get model version from"
                                                       " specified version string 'canary'"):
        grpc.infer("iris", _iris_inputs(grpcclient, rows), model_version="canary")


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests_and_responses_with_tritonclient(served: Served,
                                                             algorithm: str) -> None:
    client = httpclient.InferenceServerClient(served.http_address)
    rows = np.repeat(served.iris_x, 3, axis=0)  # a response over the compression threshold
    try:
        result = client.infer("iris", _iris_inputs(httpclient, rows),
                              request_compression_algorithm=algorithm,
                              response_compression_algorithm=algorithm)
    finally:
        client.close()
    assert result.get_response()["model_name"] == "iris"
    assert result.as_numpy("label").shape == (len(rows),)


def _infer_body(served: Served, rows: int = 1) -> bytes:
    return json.dumps({"inputs": [{"name": "X", "shape": [rows, 4], "datatype": "FP32",
                                   "data": served.iris_x[:rows].tolist()}]}).encode()


def test_a_response_is_compressed_only_when_asked_and_large(served: Served) -> None:
    big = _infer_body(served, 150)
    status, headers, body = served.request("POST", "/v2/models/iris/infer", big,
                                           {"Accept-Encoding": "br, gzip;q=0.8"})
    assert status == 200
    assert headers.get("content-encoding") == "gzip"
    assert len(json.loads(gzip.decompress(body))["outputs"][0]["data"]) == 150
    status, headers, body = served.request("POST", "/v2/models/iris/infer", big,
                                           {"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in headers and json.loads(body)["model_name"] == "iris"
    status, headers, _ = served.request("POST", "/v2/models/iris/infer", _infer_body(served),
                                        {"Accept-Encoding": "gzip"})
    assert status == 200 and "content-encoding" not in headers


@pytest.mark.parametrize("accept", ["gzip;q=\u00b2", "gzip;q=0.\u00b9", "gzip;q=1\u00b2"])
def test_a_quality_of_non_ascii_digits_is_not_a_number(served: Served, accept: str) -> None:
    """str.isdigit() takes "²" and "¹" for digits, which float() refuses."""
    status, _, body = served.request("POST", "/v2/models/iris/infer", _infer_body(served),
                                     {"Accept-Encoding": accept})
    assert status == 200 and json.loads(body)["model_name"] == "iris"


def test_raw_deflate_bodies_are_accepted(served: Served) -> None:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    body = compressor.compress(_infer_body(served)) + compressor.flush()
    status, _, answer = served.request("POST", "/v2/models/iris/infer", body,
                                       {"Content-Encoding": "deflate"})
    assert status == 200, answer


@pytest.mark.parametrize("encoding, body, status, message", [
    ("br", b"{}", 400, "Content-Encoding 'br' is not supported"),
    ("gzip", b"not gzip at all", 400, "not valid gzip data"),
    ("gzip", gzip.compress(b"{}", mtime=0)[:-6], 400, "not valid gzip data"),
    ("gzip", gzip.compress(b" " * (3 * 1024 * 1024), mtime=0), 413, "inflates past the limit"),
])
def test_bad_compressed_bodies_are_refused(served: Served, encoding: str, body: bytes,
                                           status: int, message: str) -> None:
    got, _, answer = served.request("POST", "/v2/models/iris/infer", body,
                                    {"Content-Encoding": encoding})
    assert got == status
    assert message in json.loads(answer)["error"]


def _metrics(served: Served) -> str:
    return served.request("GET", "/metrics")[2].decode()


def test_unknown_model_names_never_become_metric_labels(served: Served) -> None:
    for index in range(60):
        served.request("POST", f"/v2/models/ghost-{index}/infer", b"{}")
        served.request("POST", f"/v2/models/iris/versions/alias-{index}/infer", b"{}")
    text = _metrics(served)
    assert "ghost-" not in text and "alias-" not in text
    size = len(text)
    for index in range(60, 200):
        served.request("POST", f"/v2/models/ghost-{index}/infer", b"{}")
    assert len(_metrics(served)) == size
    assert 'ferry_inference_requests_total{model="",protocol="http",status="404",version=""}' \
        in _metrics(served)


def test_unknown_model_names_over_grpc_are_not_labels_either(served: Served, grpc: Any) -> None:
    for index in range(20):
        with pytest.raises(InferenceServerException):
            grpc.infer(f"spectre-{index}", _iris_inputs(grpcclient, served.iris_x[:1]))
    text = _metrics(served)
    assert "spectre-" not in text
    assert 'protocol="grpc",status="NOT_FOUND",version=""' in text


def test_repository_bodies_must_be_objects(served: Served) -> None:
    for path in ("/v2/repository/index", "/v2/repository/models/iris/load"):
        status, _, body = served.request("POST", path, b"[1]", AUTH)
        assert status == 400, body
        assert "must be a JSON object" in json.loads(body)["error"]
    status, _, body = served.request("POST", "/v2/repository/index", b'{"ready": "yes"}')
    assert status == 400 and "'ready'" in json.loads(body)["error"]


@pytest.mark.parametrize("number", ["\u00b2", "1\u00b9"])
def test_a_config_number_in_non_ascii_digits_is_refused_naming_it(number: str) -> None:
    from ferry.serve.batching import BatchSettings
    from ferry.serve.model_config import load_override

    with pytest.raises(ValueError, match="max_batch_size"):
        load_override("iris", {"config": json.dumps({"max_batch_size": number})},
                      BatchSettings())


@pytest.mark.parametrize(("method", "action"), [("POST", "infer"), ("GET", "ready"),
                                                ("GET", "stats"), ("GET", "config")])
def test_a_version_of_thousands_of_digits_is_not_found(served: Served, method: str,
                                                       action: str) -> None:
    """int() refuses more than 4,300 digits: a version past any real one is no version."""
    status, _, body = served.request(method, f"/v2/models/iris/versions/{'9' * 5000}/{action}",
                                     _infer_body(served) if method == "POST" else None)
    assert status == 404, body


def test_a_version_of_thousands_of_digits_over_grpc_is_not_found(grpc: Any) -> None:
    with pytest.raises(InferenceServerException, match="failed to get model version"):
        grpc.get_model_metadata("iris", "9" * 5000)


def test_a_grpc_error_echoing_a_long_value_still_reaches_the_client(grpc: Any) -> None:
    """Status details travel as metadata, which clients cap at 8 KiB: the message is
    bounded, so the client reads INVALID_ARGUMENT, not RESOURCE_EXHAUSTED."""
    name = "x" * 20_000
    tensor = grpcclient.InferInput(name, [1, 4], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 4), np.float32))
    with pytest.raises(InferenceServerException) as refused:
        grpc.infer("iris", [tensor])
    assert refused.value.status() == "StatusCode.INVALID_ARGUMENT", refused.value.message()
