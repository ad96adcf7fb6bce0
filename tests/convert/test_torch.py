"""TorchConverter on real PyTorch models trained here: an MLP and a small CNN, no downloads."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")

from sklearn.datasets import load_digits, make_classification  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from ferry.convert import converter_for  # noqa: E402
from ferry.convert.base import Conversion  # noqa: E402
from ferry.convert.check import compare  # noqa: E402
from ferry.convert.torch import TorchConverter  # noqa: E402
from ferry.errors import InvalidInputError, UnsupportedModelError  # noqa: E402
from ferry.runtime.onnx_runtime import OnnxPredictor  # noqa: E402
from ferry.signature import DYNAMIC, Role, Task  # noqa: E402


@dataclass
class Trained:
    model: torch.nn.Module
    train: np.ndarray
    held_out: np.ndarray
    converter: TorchConverter
    conversion: Conversion


class CNN(torch.nn.Module):
    """conv-relu-pool-conv-relu-pool-linear for 1x8x8 digit images."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 8, kernel_size=3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 16, kernel_size=3, padding=1)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(16 * 2 * 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc(x.view(x.size(0), -1))


class DataDependent(torch.nn.Module):
    """Branches on a tensor's value, which torch.export cannot trace."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x
        return -x


def _fit(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, epochs: int) -> torch.nn.Module:
    torch.manual_seed(0)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(inputs)).split(64):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(inputs[batch]), targets[batch])
            loss.backward()
            optimizer.step()
    return model


def _trained(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, epochs: int) -> Trained:
    split = int(len(x) * 0.8)
    _fit(model, x[:split], y[:split], epochs)
    converter = TorchConverter()
    conversion = converter.convert(model, x[:split])
    return Trained(model, x[:split], x[split:], converter, conversion)


@pytest.fixture(scope="module")
def mlp() -> Trained:
    torch.manual_seed(0)
    x, y = make_classification(n_samples=600, n_features=20, n_informative=8, n_classes=3,
                               random_state=0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 3))
    return _trained(model, x.astype(np.float32), y.astype(np.int64), epochs=5)


@pytest.fixture(scope="module")
def cnn() -> Trained:
    torch.manual_seed(0)
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, np.newaxis, :, :]
    return _trained(CNN(), x, digits.target.astype(np.int64), epochs=2)


def _predictor(trained: Trained) -> OnnxPredictor:
    conversion = trained.conversion
    return OnnxPredictor(conversion.onnx_model.SerializeToString(), conversion.signature,
                         conversion.task).load()


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_signature_has_dynamic_batch(name: str, request: pytest.FixtureRequest) -> None:
    trained: Trained = request.getfixturevalue(name)
    signature = trained.conversion.signature
    (spec,) = signature.inputs
    assert (spec.name, spec.dtype) == ("input", "float32")
    assert spec.shape == (DYNAMIC, *trained.train.shape[1:])
    assert [o.name for o in signature.outputs] == ["output"]
    assert signature.outputs[0].role == Role.VALUE
    assert signature.outputs[0].shape[0] == DYNAMIC
    assert trained.conversion.task == Task.OTHER
    graph_input = trained.conversion.onnx_model.graph.input[0]
    assert graph_input.type.tensor_type.shape.dim[0].dim_param == "batch"


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_onnx_matches_original_on_held_out_rows(name: str, request: pytest.FixtureRequest) -> None:
    trained: Trained = request.getfixturevalue(name)
    reference = trained.converter.reference(trained.model, trained.held_out)
    candidate = _predictor(trained).outputs(trained.held_out)
    check = compare(reference, candidate, data="held out")
    assert check.passed, [o.describe() for o in check.outputs]
    assert check.rows == len(trained.held_out)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize("rows", [1, 37])
def test_onnx_takes_any_batch_size(name: str, rows: int, request: pytest.FixtureRequest) -> None:
    trained: Trained = request.getfixturevalue(name)
    batch = trained.held_out[:rows]
    values = _predictor(trained).outputs(batch)[Role.VALUE]
    reference = trained.converter.reference(trained.model, batch)[Role.VALUE]
    assert values.shape == reference.shape == (rows, 10 if name == "cnn" else 3)
    assert compare({Role.VALUE: reference}, {Role.VALUE: values}, data="batch").passed


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_save_and_load_round_trip(name: str, request: pytest.FixtureRequest,
                                  tmp_path: Path) -> None:
    trained: Trained = request.getfixturevalue(name)
    converter = trained.converter
    saved = converter.save(trained.model, trained.held_out)
    assert saved.format == "pt2"
    assert not saved.data.startswith(b"\x80")  # not a pickle
    want = converter.reference(trained.model, trained.held_out)[Role.VALUE]
    loaded = converter.load(saved)
    got = converter.reference(loaded, trained.held_out)[Role.VALUE]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    path = tmp_path / "model.pt2"
    path.write_bytes(saved.data)
    from_file = converter.read_file(path)
    assert converter.matches(from_file)
    np.testing.assert_allclose(converter.reference(from_file, trained.held_out)[Role.VALUE],
                               want, rtol=1e-6, atol=1e-7)


def test_native_signature_reads_outputs(mlp: Trained) -> None:
    signature = mlp.converter.native_signature(mlp.model, mlp.held_out)
    assert signature.inputs[0].shape == (DYNAMIC, 20)
    (output,) = signature.outputs
    assert (output.name, output.dtype, output.shape, output.role) == (
        "output", "float32", (DYNAMIC, 3), Role.VALUE)


def test_one_row_sample_still_gives_dynamic_batch() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 2))
    conversion = TorchConverter().convert(model, np.ones((1, 4), dtype=np.float32))
    predictor = OnnxPredictor(conversion.onnx_model.SerializeToString(), conversion.signature,
                              conversion.task).load()
    assert predictor.outputs(np.ones((5, 4), dtype=np.float32))[Role.VALUE].shape == (5, 2)


def test_float64_sample_for_float32_model_gives_float32_input(mlp: Trained) -> None:
    rows = mlp.held_out.astype(np.float64)
    conversion = TorchConverter().convert(mlp.model, rows)
    assert conversion.signature.inputs[0].dtype == "float32"
    predictor = OnnxPredictor(conversion.onnx_model.SerializeToString(), conversion.signature,
                              conversion.task).load()
    reference = mlp.converter.reference(mlp.model, rows)
    assert compare(reference, predictor.outputs(rows), data="float64 rows").passed


def test_fixed_batch_axis_is_renamed_dynamic() -> None:
    from onnx import TensorProto, helper

    from ferry.convert.torch import _make_batch_dynamic

    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["output"])], "fixed",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [2, 3])],
    )
    model = helper.make_model(graph)
    _make_batch_dynamic(model, export_rows=2)
    for value in (model.graph.input[0], model.graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        assert (dims[0].dim_param, dims[1].dim_value) == ("batch", 3)


def test_unexportable_model_is_unsupported() -> None:
    with pytest.raises(UnsupportedModelError, match="DataDependent") as info:
        TorchConverter().convert(DataDependent(), np.ones((4, 3), dtype=np.float32))
    assert "\n" not in str(info.value)


def test_missing_sample_is_invalid_input() -> None:
    model = torch.nn.Linear(3, 1)
    with pytest.raises(InvalidInputError, match="example_input"):
        TorchConverter().convert(model, None)
    with pytest.raises(InvalidInputError, match="example_input"):
        TorchConverter().save(model)


def test_matches_torch_modules_only() -> None:
    converter = converter_for("torch")
    assert isinstance(converter, TorchConverter)
    assert converter.matches(torch.nn.Linear(3, 1))
    assert not converter.matches(LogisticRegression())
    assert not converter.matches(np.zeros(3))


def test_matching_a_sklearn_model_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from ferry.convert.torch import TorchConverter\n"
        "assert not TorchConverter().matches(LogisticRegression())\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
