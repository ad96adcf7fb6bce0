"""TensorFlow and Keras models, built and trained here: registered, checked at batch 1 and 32,
served over HTTP to tritonclient, optimized; TextVectorization refused (or forced native).

The module shares one registry and one server; it needs the `tensorflow` extra."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from http_helpers import post_json

if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("tf2onnx") is None:
    pytest.skip("the tensorflow extra is not installed: pip install 'ferry-ml[tensorflow]'",
                allow_module_level=True)
import tritonclient.http as triton_http

from ferry.convert.tensorflow.runtime import keras as keras_module
from ferry.convert.tensorflow.runtime import tensorflow

tf = tensorflow()  # through ferry, which loads torch's triton first (see its docstring)
keras = keras_module()

import ferry  # noqa: E402
from ferry.convert.tensorflow import SavedModel  # noqa: E402
from ferry.errors import InvalidInputError, UnsupportedModelError  # noqa: E402
from ferry.files import read_model_file  # noqa: E402
from ferry.optimizer import TimingSettings  # noqa: E402
from ferry.optimizer.candidates.onnxruntime import OnnxRuntimeAsServed  # noqa: E402
from ferry.registry import Registry, Runtime  # noqa: E402
from ferry.serve.server import RunningServer, serve_in_thread  # noqa: E402

pytestmark = pytest.mark.filterwarnings(  # inside Keras 3.15's own fit() under numpy 2
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
FAST = TimingSettings(repeats=1, max_repeats=1, slices=2, min_slice_s=0.005, min_calls=2,
                      warmup_s=0.0, warmup_calls=1)
CITIES = np.array(["paris", "rome", "oslo", "lima"])


@dataclass
class Case:
    """A model as the user has it, the rows it takes, and how it was registered."""

    model: Any
    rows: Any
    registered: Any = None

    def original(self, rows: Any) -> np.ndarray:
        if isinstance(self.model, SavedModel):
            name = next(iter(self.model.input_specs()))
            return np.asarray(next(iter(self.model({name: rows}).values())))
        if isinstance(rows, dict):
            rows = {k: tf.constant(v.astype(str)) if v.dtype.kind in "OU" else tf.constant(v)
                    for k, v in rows.items()}
        return np.asarray(self.model(rows, training=False))


def digits_cnn() -> tuple[keras.Model, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    images = x.reshape(-1, 8, 8, 1).astype(np.float32)
    model = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Rescaling(1 / 16),
        keras.layers.Conv2D(8, 3, activation="relu"), keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(images[:512], y[:512], epochs=1, batch_size=64, verbose=0)
    return model, images[512:640]


def batchnorm_regressor() -> tuple[keras.Model, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 3.0, size=(256, 6)).astype(np.float32)
    inputs = keras.Input((6,), name="features")
    hidden = keras.layers.Dropout(0.4)(keras.layers.BatchNormalization()(
        keras.layers.Dense(16, activation="relu")(inputs)))
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    model.compile("adam", "mse")
    model.fit(x, x.sum(axis=1), epochs=2, batch_size=32, verbose=0)
    return model, x[:64]


def city_and_numbers() -> tuple[keras.Model, dict[str, np.ndarray]]:
    city = keras.Input((1,), dtype="string", name="city")
    numbers = keras.Input((3,), name="numbers")
    lookup = keras.layers.StringLookup(vocabulary=list(CITIES[:3]), output_mode="one_hot")
    joined = keras.layers.Concatenate()([keras.layers.Flatten()(lookup(city)), numbers])
    model = keras.Model({"city": city, "numbers": numbers},
                        keras.layers.Dense(2, activation="softmax")(joined))
    rng = np.random.default_rng(2)
    rows = {"city": rng.choice(CITIES, (64, 1)).astype(object),
            "numbers": rng.normal(size=(64, 3)).astype(np.float32)}
    return model, rows


def text_model() -> tuple[keras.Model, np.ndarray]:
    vectorize = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=4)
    vectorize.adapt(["red apples", "green pears and apples", "ripe red pears"])
    text = keras.Input((1,), dtype="string")
    tokens = keras.layers.Embedding(20, 2)(vectorize(text))
    model = keras.Model(text, keras.layers.Dense(1)(keras.layers.Flatten()(tokens)))
    return model, np.array([["red pears"], ["green apples and pears"]] * 16, dtype=object)


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    root = tmp_path_factory.mktemp("tensorflow")
    cnn, images = digits_cnn()
    cnn.export(str(root / "exported"), verbose=False)
    regressor, features = batchnorm_regressor()
    regressor.save(root / "regressor.h5")
    two_inputs, rows = city_and_numbers()
    return {
        "cnn": Case(cnn, images),
        "batchnorm": Case(regressor, features),
        "two-inputs": Case(two_inputs, rows),
        "savedmodel": Case(read_model_file(root / "exported"), images),
        "h5": Case(read_model_file(root / "regressor.h5"), features),
    }


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, cases: dict[str, Case]) -> Registry:
    root = tmp_path_factory.mktemp("tf-registry")
    registry = Registry(f"sqlite:///{root / 'registry.db'}", artifacts_url=str(root / "art"))
    for name, case in cases.items():
        case.registered = ferry.register(case.model, name, sample=case.rows, registry=registry)
    return registry


@pytest.fixture(scope="module")
def server(registry: Registry) -> Iterator[RunningServer]:
    running = serve_in_thread([], registry=registry)
    yield running
    running.stop()


@pytest.mark.parametrize("name", ["cnn", "batchnorm", "two-inputs", "savedmodel", "h5"])
def test_registered_version_predicts_like_the_original_at_batch_1_and_32(
        name: str, cases: dict[str, Case], registry: Registry) -> None:
    case = cases[name]
    version = case.registered
    assert version.framework == "tensorflow" and version.runtime == Runtime.ONNX
    assert version.conversion_check["passed"] and not version.forced
    predictor = ferry.load(version.uri, registry=registry)
    for size in (1, 32):
        rows = _head(case.rows, size)
        got = np.asarray(predictor.predict(rows)).reshape(size, -1)
        np.testing.assert_allclose(got, case.original(rows).reshape(size, -1),
                                   rtol=1e-4, atol=1e-5)


def test_signature_keeps_names_dtypes_and_an_open_batch_axis(cases: dict[str, Case]) -> None:
    inputs = {s.name: (s.dtype, s.shape) for s in cases["two-inputs"].registered.signature.inputs}
    assert inputs == {"city": ("string", (-1, 1)), "numbers": ("float32", (-1, 3))}
    cnn = cases["cnn"].registered.signature
    assert [(s.name, s.shape) for s in cnn.inputs] == [("input", (-1, 8, 8, 1))]
    assert [(s.name, s.shape, s.role) for s in cnn.outputs] == [("output", (-1, 10), "value")]
    assert cases["batchnorm"].registered.signature.inputs[0].name == "features"


def test_unknown_city_goes_to_the_lookup_oov_slot_in_onnx_as_in_keras(
        cases: dict[str, Case], registry: Registry) -> None:
    case = cases["two-inputs"]
    rows = {"city": np.array([["lima"], ["nowhere"], ["rome"]], dtype=object),
            "numbers": np.ones((3, 3), np.float32)}
    got = ferry.load(case.registered.uri, registry=registry).predict(rows)
    np.testing.assert_allclose(np.asarray(got), case.original(rows), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["cnn", "batchnorm", "two-inputs", "savedmodel", "h5"])
def test_served_over_http_to_tritonclient(name: str, cases: dict[str, Case],
                                          server: RunningServer) -> None:
    case = cases[name]
    client = triton_http.InferenceServerClient(server.http_url.removeprefix("http://"))
    rows = _head(case.rows, 5)
    named = rows if isinstance(rows, dict) else {case.registered.signature.inputs[0].name: rows}
    output = case.registered.signature.outputs[0].name
    answer = client.infer(name, [_triton_input(n, a) for n, a in named.items()]).as_numpy(output)
    np.testing.assert_allclose(answer, case.original(rows), rtol=1e-4, atol=1e-6)


def _triton_input(name: str, array: np.ndarray) -> triton_http.InferInput:
    text = array.dtype.kind in "OU"
    tensor = triton_http.InferInput(name, list(array.shape), "BYTES" if text else "FP32")
    tensor.set_data_from_numpy(array.astype(object) if text else array, binary_data=not text)
    return tensor


def test_tensorflow_serving_rest_clients_get_tf_servings_answers(
        cases: dict[str, Case], server: RunningServer) -> None:
    rows = _head(cases["two-inputs"].rows, 3)
    instances = [{"city": [str(c[0])], "numbers": n.tolist()}
                 for c, n in zip(rows["city"], rows["numbers"], strict=True)]
    status, answer = post_json(server.http_url, "/v1/models/two-inputs:predict",
                               {"instances": instances})
    assert status == 200
    np.testing.assert_allclose(np.asarray(answer["predictions"]),
                               cases["two-inputs"].original(rows), rtol=1e-4, atol=1e-6)
    images = cases["cnn"].rows[:2]
    status, answer = post_json(server.http_url, "/v1/models/cnn/versions/1:predict",
                               {"signature_name": "serving_default", "inputs": images.tolist()})
    assert status == 200
    np.testing.assert_allclose(np.asarray(answer["outputs"]), cases["cnn"].original(images),
                               rtol=1e-4, atol=1e-6)



@pytest.mark.parametrize("name", ["cnn", "batchnorm", "two-inputs", "savedmodel", "h5"])
def test_optimized_variant_passes_the_gate_and_times_the_originals_calls(
        name: str, cases: dict[str, Case], registry: Registry) -> None:
    case = cases[name]
    result = ferry.optimize(case.registered.uri, registry=registry, batch_sizes=(1,),
                            threads=1, timing=FAST, candidates=[OnnxRuntimeAsServed()])
    assert result.chosen is not None and result.version is not None
    if isinstance(case.model, SavedModel):
        assert result.baseline_name == "signature" and not result.other_baselines
    else:
        assert result.baseline_name == "tf.function"
        assert set(result.other_baselines) == {"eager"}
        assert result.other_baselines["eager"][1].median_s > 0
    optimized = ferry.load(result.version.uri, registry=registry)
    rows = _head(case.rows, 8)
    np.testing.assert_allclose(np.asarray(optimized.predict(rows)).reshape(8, -1),
                               case.original(rows).reshape(8, -1), rtol=1e-4, atol=1e-6)


def test_several_outputs_keep_their_names_and_the_first_is_the_value(
        registry: Registry) -> None:
    features = keras.Input((4,), name="features")
    hidden = keras.layers.Dense(8, activation="relu")(features)
    model = keras.Model(features, [keras.layers.Dense(1, name="score")(hidden),
                                   keras.layers.Dense(3, name="aux")(hidden)])
    rows = np.random.default_rng(3).normal(size=(32, 4)).astype(np.float32)
    version = ferry.register(model, "two-outputs", sample=rows, registry=registry)
    outputs = {spec.name: spec for spec in version.signature.outputs}
    assert set(outputs) == {"score", "aux"} and outputs["score"].role == "value"
    predicted = ferry.load(version.uri, registry=registry).predict(rows)
    score, aux = model(rows, training=False)
    np.testing.assert_allclose(np.asarray(predicted).reshape(-1), np.asarray(score).reshape(-1),
                               rtol=1e-5, atol=1e-6)
    assert np.asarray(aux).shape == (32, 3)


def test_text_vectorization_is_refused_with_its_reason_or_served_natively_when_forced(
        registry: Registry, server: RunningServer) -> None:
    model, texts = text_model()
    with pytest.raises(UnsupportedModelError, match=r"TextVectorization.*StringSplitV2"):
        ferry.register(model, "texts", sample=texts, registry=registry)
    version = ferry.register(model, "texts", sample=texts, registry=registry, force=True)
    assert version.runtime == Runtime.NATIVE and version.forced
    expected = np.asarray(model(tf.constant(texts.astype(str))))
    np.testing.assert_allclose(np.asarray(ferry.load("texts", registry=registry).predict(texts)),
                               expected, rtol=1e-5)
    client = triton_http.InferenceServerClient(server.http_url.removeprefix("http://"))
    client.load_model("texts")
    answer = client.infer("texts", [_triton_input("input", texts[:3])]).as_numpy("output")
    np.testing.assert_allclose(answer, expected[:3], rtol=1e-5)


def test_savedmodel_signature_is_chosen_by_name(tmp_path: Path, cases: dict[str, Case]) -> None:
    directory = cases["savedmodel"].model.path
    with pytest.raises(InvalidInputError, match=r"no signature 'classify'.*serving_default"):
        ferry.register(SavedModel(directory, "classify"), "nope", sample=cases["cnn"].rows,
                       registry=Registry(f"sqlite:///{tmp_path / 'r.db'}",
                                         artifacts_url=str(tmp_path / "a")))


def test_cli_registers_a_savedmodel_directory_and_refuses_signature_for_a_file(
        tmp_path: Path, cases: dict[str, Case], monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from ferry.cli import app

    sample = tmp_path / "images.npy"
    np.save(sample, cases["cnn"].rows)
    monkeypatch.setenv("FERRY_HOME", str(tmp_path / "home"))
    for name in ("FERRY_REGISTRY_URL", "FERRY_ARTIFACTS_URL"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    directory = str(cases["savedmodel"].model.path)
    done = runner.invoke(app, ["register", directory, "--name", "digits", "--sample",
                               str(sample), "--signature", "serving_default", "--json"])
    assert done.exit_code == 0, done.output
    assert '"framework": "tensorflow"' in done.stdout
    refused = runner.invoke(app, ["register", str(sample), "--name", "x", "--signature",
                                  "serving_default"])
    assert refused.exit_code == 2 and "--signature is for TensorFlow SavedModel" in \
        refused.stderr


def _head(rows: Any, size: int) -> Any:
    if isinstance(rows, dict):
        return {name: values[:size] for name, values in rows.items()}
    return rows[:size]


def test_torch_export_still_works_after_tensorflow_is_loaded_through_ferry() -> None:
    script = ("from ferry.convert.tensorflow.runtime import tensorflow; tensorflow()\n"
              "import torch\n"
              "torch.export.export(torch.nn.Linear(4, 2), (torch.zeros(2, 4),))\n"
              "print('exported')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and "exported" in done.stdout, done.stderr[-2000:]
