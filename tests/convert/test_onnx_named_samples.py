"""ONNX models with several tensor inputs, registered with a sample of one array per input
(a dict in Python, an .npz file from the CLI), and models whose outputs are strings: Triton's
"simple" and "simple_string" example models, built with onnx.helper."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
import tritonclient.http as triton_http
from onnx import TensorProto, helper
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import ferry
from ferry.cli import app
from ferry.convert.check import compare
from ferry.data import sample_from_parquet, sample_to_parquet
from ferry.errors import SampleMismatchError
from ferry.registry import Registry
from ferry.runtime.predictor import GraphPredictor
from ferry.serve.server import serve_in_thread
from ferry.signature import Role

WIDTH = 16
ROWS = 32


def _model(name: str, nodes: list[onnx.NodeProto], input_type: int,
           output_type: int) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info(n, input_type, ["batch", WIDTH])
              for n in ("INPUT0", "INPUT1")]
    outputs = [helper.make_tensor_value_info(n, output_type, ["batch", WIDTH])
               for n in ("OUTPUT0", "OUTPUT1")]
    graph = helper.make_graph(nodes, name, inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def simple_model() -> onnx.ModelProto:
    """Triton's "simple": OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1, INT32."""
    return _model("simple", [helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
                             helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"])],
                  TensorProto.INT32, TensorProto.INT32)


def simple_string_model() -> onnx.ModelProto:
    """Triton's "simple_string": the same on strings holding decimal integers."""
    cast = [helper.make_node("Cast", [f"INPUT{i}"], [f"int{i}"], to=TensorProto.INT32)
            for i in (0, 1)]
    math = [helper.make_node("Add", ["int0", "int1"], ["sum"]),
            helper.make_node("Sub", ["int0", "int1"], ["difference"])]
    back = [helper.make_node("Cast", [inner], [f"OUTPUT{i}"], to=TensorProto.STRING)
            for i, inner in enumerate(("sum", "difference"))]
    return _model("simple_string", cast + math + back, TensorProto.STRING, TensorProto.STRING)


@pytest.fixture
def inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"INPUT0": rng.integers(-100, 100, (ROWS, WIDTH), dtype=np.int32),
            "INPUT1": rng.integers(-100, 100, (ROWS, WIDTH), dtype=np.int32)}


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_python_registration_with_one_array_per_input(
        sqlite_registry: Registry, inputs: dict[str, np.ndarray]) -> None:
    version = ferry.register(simple_model(), "simple", sample=inputs, registry=sqlite_registry)

    assert version.conversion_check["passed"] is True
    assert version.conversion_check["rows"] == ROWS
    assert [(s.name, s.shape) for s in version.signature.inputs] == [
        ("INPUT0", (-1, WIDTH)), ("INPUT1", (-1, WIDTH))]
    stored = ferry.load_sample("simple", registry=sqlite_registry)
    assert isinstance(stored, dict) and sorted(stored) == ["INPUT0", "INPUT1"]
    for name, array in inputs.items():
        assert stored[name].dtype == np.int32
        np.testing.assert_array_equal(stored[name], array)
    predictor = ferry.load("simple", registry=sqlite_registry)
    assert isinstance(predictor, GraphPredictor)
    outputs = predictor.run(stored)
    np.testing.assert_array_equal(outputs["OUTPUT0"], inputs["INPUT0"] + inputs["INPUT1"])
    np.testing.assert_array_equal(outputs["OUTPUT1"], inputs["INPUT0"] - inputs["INPUT1"])


def test_cli_registration_with_an_npz_sample_then_predict(
        tmp_path: Path, inputs: dict[str, np.ndarray]) -> None:
    model, sample = tmp_path / "simple.onnx", tmp_path / "sample.npz"
    onnx.save(simple_model(), model)
    np.savez(sample, **inputs)

    code, out, err = cli("register", str(model), "--name", "simple", "--sample", str(sample))
    assert code == 0, err
    shown = json.loads(cli("show", "simple", "--json")[1])
    assert shown["conversion_check"]["passed"] is True
    assert shown["conversion_check"]["rows"] == ROWS

    code, out, err = cli("predict", "simple", "--input", str(sample), "--json")
    assert code == 0, err
    first = json.loads(out)[0]
    assert [first[f"output_{i}"] for i in range(WIDTH)] == (
        inputs["INPUT0"][0] + inputs["INPUT1"][0]).tolist()


def test_string_outputs_are_checked_as_strings(tmp_path: Path,
                                               inputs: dict[str, np.ndarray]) -> None:
    model, sample = tmp_path / "simple_string.onnx", tmp_path / "strings.npz"
    onnx.save(simple_string_model(), model)
    np.savez(sample, **{name: array.astype(str) for name, array in inputs.items()})

    code, _, err = cli("register", str(model), "--name", "simple_string", "--sample",
                         str(sample))

    assert code == 0, err
    check = json.loads(cli("show", "simple_string", "--json")[1])["conversion_check"]
    assert check["passed"] is True
    assert check["outputs"] == [{"role": "value", "passed": True, "max_abs_error": None,
                                 "max_rel_error": None, "label_agreement": None,
                                 "exact_match": 1.0}]


def test_string_outputs_that_differ_fail_the_check() -> None:
    want = {Role.VALUE: np.array([["1", "2"], ["3", "4"]], dtype=object)}
    got = {Role.VALUE: np.array([["1", "2"], ["3", "5"]], dtype=object)}

    check = compare(want, got, data="sample")

    assert not check.passed
    worst = check.worst()
    assert worst is not None and worst.exact_match == 0.75
    assert worst.describe() == "value: 75.0000% of strings equal"
    assert compare(want, {Role.VALUE: np.array([[b"1", b"2"], [b"3", b"4"]])},
                   data="sample").passed


@pytest.mark.parametrize("arrays", [
    {"INPUT0": np.arange(12, dtype=np.int32).reshape(3, 4),
     "INPUT1": np.linspace(0, 1, 3 * 2 * 2, dtype=np.float32).reshape(3, 2, 2)},
    {"ids": np.array([1, 2, 3], dtype=np.int64)},
    {"text": np.array([["a", "bc"], ["", "déf"]]),
     "objects": np.array(["x", "yz"], dtype=object)},
], ids=["numbers", "one-dimensional", "strings"])
def test_named_tensor_samples_round_trip_through_parquet(arrays: dict[str, np.ndarray]) -> None:
    back = sample_from_parquet(sample_to_parquet(arrays))

    assert isinstance(back, dict) and list(back) == list(arrays)
    for name, array in arrays.items():
        assert back[name].dtype == array.dtype and back[name].shape == array.shape
        np.testing.assert_array_equal(back[name], array)


def test_named_arrays_must_name_the_inputs(sqlite_registry: Registry,
                                           inputs: dict[str, np.ndarray]) -> None:
    with pytest.raises(SampleMismatchError, match="INPUT1") as error:
        ferry.register(simple_model(), "simple", sample={"INPUT0": inputs["INPUT0"],
                                                          "other": inputs["INPUT1"]},
                       registry=sqlite_registry)
    assert "name each array after its input" in str(error.value)


def test_named_arrays_must_have_the_same_rows(sqlite_registry: Registry,
                                              inputs: dict[str, np.ndarray]) -> None:
    with pytest.raises(SampleMismatchError, match="same number of rows"):
        ferry.register(simple_model(), "simple", sample={"INPUT0": inputs["INPUT0"],
                                                          "INPUT1": inputs["INPUT1"][:3]},
                       registry=sqlite_registry)


def test_named_arrays_are_for_graph_models(sqlite_registry: Registry) -> None:
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=300).fit(x, y)

    with pytest.raises(SampleMismatchError, match="one array per input"):
        ferry.register(model, "iris", sample={"X": x}, registry=sqlite_registry)


def test_server_warms_up_on_the_stored_sample_and_answers_triton_clients(
        sqlite_registry: Registry, inputs: dict[str, np.ndarray],
        caplog: pytest.LogCaptureFixture) -> None:
    ferry.register(simple_model(), "simple", sample=inputs, registry=sqlite_registry)
    caplog.set_level(logging.WARNING, logger="ferry.serve")

    running = serve_in_thread(["simple"], registry=sqlite_registry, grpc_port=None)
    try:
        client = triton_http.InferenceServerClient(running.http_url.removeprefix("http://"))
        request = []
        for name, array in inputs.items():
            tensor = triton_http.InferInput(name, list(array[:2].shape), "INT32")
            tensor.set_data_from_numpy(array[:2])
            request.append(tensor)
        result = client.infer("simple", request)
    finally:
        running.stop()

    assert not [r for r in caplog.records if "warm-up" in r.getMessage()]
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"),
                                  inputs["INPUT0"][:2] - inputs["INPUT1"][:2])


def test_numbers_held_as_objects_are_still_compared_with_tolerance() -> None:
    want = {Role.VALUE: np.array([1.0, 2.0], dtype=object)}
    got = {Role.VALUE: np.array([1.0000001, 2.0], dtype=np.float32)}

    (output,) = compare(want, got, data="sample").outputs

    assert output.passed and output.exact_match is None and output.max_abs_error is not None
