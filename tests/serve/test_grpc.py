"""The Open Inference Protocol over gRPC, driven by tritonclient.grpc unchanged from PyPI."""

from __future__ import annotations

import time

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from conftest import ADMIN_TOKEN, Served
from tritonclient.utils import InferenceServerException

import ferry


@pytest.fixture
def client(served: Served) -> triton_grpc.InferenceServerClient:
    return triton_grpc.InferenceServerClient(served.running.grpc_address)


def iris_input(rows: np.ndarray) -> triton_grpc.InferInput:
    datatype = "FP64" if rows.dtype == np.float64 else "FP32"
    tensor = triton_grpc.InferInput("X", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows)
    return tensor


def test_health_and_metadata(client: triton_grpc.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.get_server_metadata(as_json=True)["name"] == "ferry"
    assert client.is_model_ready("iris", "production")
    assert not client.is_model_ready("nope")
    meta = client.get_model_metadata("iris", as_json=True)
    assert meta["versions"] == ["1", "2"]
    assert meta["inputs"][0] == {"name": "X", "datatype": "FP32", "shape": ["-1", "4"]}


def test_infer_with_raw_contents_matches_ferry_load(client: triton_grpc.InferenceServerClient,
                                                    served: Served) -> None:
    rows = served.iris_x[90:110]
    expected = ferry.load("iris:2", registry=served.registry)

    result = client.infer("iris", [iris_input(rows)], model_version="2", request_id="g-1")

    assert result.get_response().id == "g-1"
    assert result.get_response().model_version == "2"
    np.testing.assert_array_equal(result.as_numpy("label"), expected.predict(rows))
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected.predict_proba(rows),
                               rtol=1e-6)


def test_bytes_input_and_output_selection(client: triton_grpc.InferenceServerClient) -> None:
    age = triton_grpc.InferInput("age", [1, 1], "FP32")
    age.set_data_from_numpy(np.array([[70.0]], dtype=np.float32))
    plan = triton_grpc.InferInput("plan", [1, 1], "BYTES")
    plan.set_data_from_numpy(np.array([[b"basic"]], dtype=object))

    result = client.infer("churn", [age, plan],
                          outputs=[triton_grpc.InferRequestedOutput("label")])

    assert [o.name for o in result.get_response().outputs] == ["label"]
    assert result.as_numpy("label").tolist() == [b"churn"]


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda c, x: c.infer("nope", [iris_input(x)]), "StatusCode.NOT_FOUND"),
        (lambda c, x: c.infer("iris", [iris_input(x)], model_version="7"),
         "StatusCode.NOT_FOUND"),
        (lambda c, x: c.infer("iris", [iris_input(x[:, :3])]), "StatusCode.INVALID_ARGUMENT"),
        (lambda c, x: c.infer("iris", [iris_input(x.astype(np.float64))]),
         "StatusCode.INVALID_ARGUMENT"),
        (lambda c, x: c.infer("fragile", [iris_input(-x)]), "StatusCode.INTERNAL"),
        (lambda c, x: c.unload_model("iris"), "StatusCode.UNAUTHENTICATED"),
    ],
)
def test_errors_map_to_status_codes(client: triton_grpc.InferenceServerClient, served: Served,
                                    call: object, code: str) -> None:
    with pytest.raises(InferenceServerException) as info:
        call(client, served.iris_x[:2])  # type: ignore[operator]

    assert info.value.status() == code
    assert client.is_server_live()


def test_repository_over_grpc(client: triton_grpc.InferenceServerClient) -> None:
    index = client.get_model_repository_index(as_json=True)["models"]
    assert {"name": "iris", "version": "2", "state": "READY"} in index

    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    client.unload_model("fragile", headers=auth)
    assert not client.is_model_ready("fragile")
    client.load_model("fragile", headers=auth)
    assert client.is_model_ready("fragile")


def test_each_grpc_request_writes_an_access_log_line(client: triton_grpc.InferenceServerClient,
                                                     served: Served,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    import json
    import logging

    caplog.set_level(logging.INFO, logger="ferry.access")
    client.infer("iris", [iris_input(served.iris_x[:1])])
    with pytest.raises(InferenceServerException):
        client.infer("nope", [iris_input(served.iris_x[:1])])

    def grpc_lines() -> list[dict[str, object]]:
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "ferry.access"]
        return [line for line in lines if line["protocol"] == "grpc"]

    deadline = time.monotonic() + 5  # the server logs after the client has its answer
    while len(grpc_lines()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    logged = grpc_lines()
    expected = {"method": "ModelInfer", "model": "iris", "status": "OK"}
    assert expected.items() <= logged[0].items()
    assert logged[1]["status"] == "NOT_FOUND"
    assert all(float(line["duration_ms"]) >= 0 for line in logged)  # type: ignore[arg-type]
