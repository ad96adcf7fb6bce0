"""`register(..., dynamic_axes={1: "sequence"})`: a PyTorch text encoder exported so that it
takes token ids of any length, loaded and served at lengths the sample never had."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")

import ferry  # noqa: E402
from ferry.cli import app  # noqa: E402
from ferry.errors import InvalidInputError, UnsupportedModelError  # noqa: E402
from ferry.registry import Registry  # noqa: E402
from ferry.serve.server import serve_in_thread  # noqa: E402
from ferry.signature import DYNAMIC  # noqa: E402

triton_http = pytest.importorskip("tritonclient.http")

VOCAB = 50
POSITIONS = 40
SAMPLE_LENGTH = 12


class PositionalEncoder(torch.nn.Module):
    """Token and position embeddings (positions sliced to the input's length, as BERT does),
    one self-attention layer with a padding mask, masked mean pool, L2 norm."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = torch.nn.Embedding(VOCAB, 16, padding_idx=0)
        self.positions = torch.nn.Embedding(POSITIONS, 16)
        self.attention = torch.nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        mask = input_ids != 0
        length = input_ids.shape[1]
        hidden = self.tokens(input_ids) + self.positions.weight[:length].unsqueeze(0)
        attended, _ = self.attention(hidden, hidden, hidden, key_padding_mask=~mask,
                                     need_weights=False)
        weights = mask.unsqueeze(-1).to(attended.dtype)
        pooled = (attended * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2.0, dim=1)


class FlatHead(torch.nn.Module):
    """A Linear over the flattened input: only one input width works."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(6 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


def _token_ids(rows: int, length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCAB, size=(rows, length), dtype=np.int64)
    for row, used in enumerate(rng.integers(2, length + 1, size=rows)):
        ids[row, used:] = 0
    return ids


def _eager(module: torch.nn.Module, ids: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(ids)).numpy()


@pytest.fixture(scope="module")
def encoder() -> torch.nn.Module:
    torch.manual_seed(0)
    return PositionalEncoder().eval()


def test_token_ids_of_any_length_predict_like_the_module(encoder: torch.nn.Module,
                                                         sqlite_registry: Registry) -> None:
    version = ferry.register(encoder, "encoder", sample=_token_ids(20, SAMPLE_LENGTH, 0),
                             dynamic_axes={1: "sequence"}, registry=sqlite_registry)
    assert version.signature.inputs[0].shape == (DYNAMIC, DYNAMIC)
    graph = onnx.load_from_string(sqlite_registry.read_artifact(version, "onnx")).graph
    assert [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim] == \
        ["batch", "sequence"]
    predictor = ferry.load(version.uri, registry=sqlite_registry)
    for length in (3, SAMPLE_LENGTH, 30):
        ids = _token_ids(4, length, length)
        np.testing.assert_allclose(predictor.predict(ids), _eager(encoder, ids), atol=1e-5)
    # the stored original (a torch.export program) takes other lengths too
    native = ferry.convert.converter_for("torch").load(
        ferry.convert.SavedOriginal(sqlite_registry.read_artifact(version, "original"), "pt2"))
    ids = _token_ids(2, 25, 7)
    np.testing.assert_allclose(_eager(native, ids), _eager(encoder, ids), atol=1e-6)


def test_served_at_two_lengths_over_http(encoder: torch.nn.Module,
                                         sqlite_registry: Registry) -> None:
    ferry.register(encoder, "encoder", sample=_token_ids(20, SAMPLE_LENGTH, 0),
                   dynamic_axes={1: "sequence"}, registry=sqlite_registry)
    running = serve_in_thread(["encoder:1"], registry=sqlite_registry, grpc_port=None)
    try:
        client = triton_http.InferenceServerClient(running.http_url.removeprefix("http://"))
        assert client.get_model_metadata("encoder")["inputs"][0]["shape"] == [-1, -1]
        for length in (5, 33):
            ids = _token_ids(2, length, length)
            tensor = triton_http.InferInput("input", list(ids.shape), "INT64")
            tensor.set_data_from_numpy(ids, binary_data=False)
            answer = client.infer("encoder", [tensor])
            np.testing.assert_allclose(answer.as_numpy("output"), _eager(encoder, ids),
                                       atol=1e-5)
    finally:
        running.stop()


@pytest.mark.parametrize(("axes", "message"), [
    ({0: "rows"}, "axis 0 is the batch"),
    ({1: "batch"}, "use a plain name other than 'batch'"),
    ({1: "two words"}, "use a plain name"),
    ({1: "a", 2: "a"}, "repeat a name"),
    ({2: "sequence"}, "dynamic axis 2 does not exist"),
])
def test_bad_dynamic_axes_are_refused_before_anything_is_stored(
        encoder: torch.nn.Module, sqlite_registry: Registry, axes: dict[int, str],
        message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        ferry.register(encoder, "encoder", sample=_token_ids(4, SAMPLE_LENGTH, 0),
                       dynamic_axes=axes, registry=sqlite_registry)
    assert sqlite_registry.models() == []


def test_an_axis_the_module_fixes_is_refused(sqlite_registry: Registry) -> None:
    torch.manual_seed(0)
    rows = np.random.default_rng(0).normal(size=(8, 6, 4)).astype(np.float32)
    with pytest.raises(UnsupportedModelError, match="only takes size 6 on input axis 1"):
        ferry.register(FlatHead().eval(), "flat", sample=rows, dynamic_axes={1: "steps"},
                       registry=sqlite_registry)


def test_dynamic_axes_are_for_pytorch_only(sqlite_registry: Registry) -> None:
    x = np.random.default_rng(0).normal(size=(40, 3))
    model = LogisticRegression().fit(x, x[:, 0] > 0)
    with pytest.raises(InvalidInputError, match="dynamic_axes is for PyTorch models"):
        ferry.register(model, "logistic", sample=x, dynamic_axes={1: "features"},
                       registry=sqlite_registry)


def test_cli_dynamic_axis_mistakes_exit_2(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FERRY_HOME", str(tmp_path / "home"))
    model = tmp_path / "model.onnx"
    model.write_bytes(b"unused")
    result = CliRunner().invoke(app, ["register", str(model), "-n", "m",
                                      "--dynamic-axis", "one=sequence"])
    assert result.exit_code == 2
    assert "write AXIS=NAME with AXIS a number" in result.output
