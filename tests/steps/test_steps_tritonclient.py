"""A version with Python steps over gRPC and HTTP, called with Triton's own clients: texts
in as a BYTES tensor, the preprocess step (`tokenize`) and postprocess step (`label_names`) run
around the model, labels out as strings; a text the step refuses is INVALID_ARGUMENT over gRPC
and a 400 over HTTP. The registry and settings are `test_steps_serving`'s; this module serves
them with gRPC on (and `trust_code`, as `ferry serve --trust-code` does)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from sklearn.linear_model import LogisticRegression
from steps_fixtures import LABELS, texts, tokenize
from test_steps_serving import SETTINGS, steps_registry
from tritonclient.utils import InferenceServerException

from ferry.serve.server import RunningServer, serve_in_thread

MODEL = "sentiment"


@pytest.fixture(scope="module")
def grpc_served(tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[RunningServer, LogisticRegression]]:
    """One server for the module, gRPC on an ephemeral port, trusting the stored steps."""
    registry, model = steps_registry(tmp_path_factory.mktemp("steps-grpc"))
    running = serve_in_thread([], grpc_port=0, registry=registry,
                              settings=replace(SETTINGS, trust_code=True))
    yield running, model
    running.stop()


def infer_texts(running: RunningServer, rows: list[str]) -> np.ndarray:
    """The `label` output of `MODEL` for `rows`, sent as one BYTES tensor over gRPC."""
    client = grpcclient.InferenceServerClient(running.grpc_address)
    try:
        tensor = grpcclient.InferInput("X", [len(rows)], "BYTES")
        tensor.set_data_from_numpy(np.asarray(rows, dtype=object))
        result = client.infer(MODEL, [tensor],
                              outputs=[grpcclient.InferRequestedOutput("label")])
        return np.asarray(result.as_numpy("label"))
    finally:
        client.close()


def test_texts_in_label_names_out_over_grpc(
        grpc_served: tuple[RunningServer, LogisticRegression]) -> None:
    running, model = grpc_served
    raw, _ = texts(12, seed=7)
    labels = infer_texts(running, raw.tolist())
    expected = np.asarray(LABELS)[model.predict(tokenize(raw))]
    assert [label.decode() for label in labels.reshape(-1)] == expected.tolist()


def test_a_text_the_step_refuses_is_invalid_argument(
        grpc_served: tuple[RunningServer, LogisticRegression]) -> None:
    running, _ = grpc_served
    with pytest.raises(InferenceServerException) as raised:
        infer_texts(running, ["good fine", ""])
    assert raised.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "tokenize" in raised.value.message()
    assert infer_texts(running, ["happy lovely"]).reshape(-1)[0].decode() in LABELS


def test_texts_in_label_names_out_over_http_with_tritonclient(
        grpc_served: tuple[RunningServer, LogisticRegression]) -> None:
    running, model = grpc_served
    raw, _ = texts(5, seed=8)
    client = httpclient.InferenceServerClient(running.http_url.removeprefix("http://"))
    try:
        tensor = httpclient.InferInput("X", [len(raw)], "BYTES")
        tensor.set_data_from_numpy(np.asarray(raw, dtype=object), binary_data=True)
        result = client.infer(MODEL, [tensor], outputs=[
            httpclient.InferRequestedOutput("label", binary_data=True)])
        with pytest.raises(InferenceServerException, match="tokenize"):
            client.infer(MODEL, [_texts_input(["   "])])
    finally:
        client.close()
    expected = np.asarray(LABELS)[model.predict(tokenize(raw))]
    assert [label.decode() for label in result.as_numpy("label")] == expected.tolist()


def _texts_input(rows: list[str]) -> httpclient.InferInput:
    tensor = httpclient.InferInput("X", [len(rows)], "BYTES")
    tensor.set_data_from_numpy(np.asarray(rows, dtype=object), binary_data=False)
    return tensor
