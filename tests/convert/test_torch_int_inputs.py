"""TorchConverter on a module whose one input is int64 token ids (a tiny text encoder).

The shape of what `bench/optimize/models.py` registers for all-MiniLM-L6-v2: token ids
`[N, L]` with 0 as padding, the attention mask computed inside the module, one float output.
The ids must stay int64 through the sample, the reference, the export and the check.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")

import ferry  # noqa: E402
from ferry.convert.torch import TorchConverter  # noqa: E402
from ferry.registry import Registry  # noqa: E402
from ferry.signature import DYNAMIC, Role, Task  # noqa: E402

VOCAB = 50
LENGTH = 12


class TinyEncoder(torch.nn.Module):
    """Embedding, one self-attention layer with a padding mask, masked mean pool, L2 norm."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, 16, padding_idx=0)
        self.attention = torch.nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        mask = input_ids != 0
        hidden = self.embed(input_ids)
        attended, _ = self.attention(hidden, hidden, hidden, key_padding_mask=~mask,
                                     need_weights=False)
        weights = mask.unsqueeze(-1).to(attended.dtype)
        pooled = (attended * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2.0, dim=1)


def _token_ids(rows: int, seed: int) -> np.ndarray:
    """Rows of 2..LENGTH ids in 1..VOCAB-1, padded with 0 to LENGTH."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((rows, LENGTH), dtype=np.int64)
    for row, length in enumerate(rng.integers(2, LENGTH + 1, size=rows)):
        ids[row, :length] = rng.integers(1, VOCAB, size=length)
    return ids


@pytest.fixture(scope="module")
def encoder() -> torch.nn.Module:
    torch.manual_seed(0)
    return TinyEncoder().eval()


def test_int64_input_keeps_its_dtype_in_the_signature(encoder: torch.nn.Module) -> None:
    conversion = TorchConverter().convert(encoder, _token_ids(40, seed=0))
    (spec,) = conversion.signature.inputs
    assert (spec.name, spec.dtype, spec.shape) == ("input", "int64", (DYNAMIC, LENGTH))
    (output,) = conversion.signature.outputs
    assert (output.dtype, output.shape, output.role) == ("float32", (DYNAMIC, 16), Role.VALUE)
    assert conversion.task == Task.OTHER
    graph_input = conversion.onnx_model.graph.input[0]
    assert graph_input.type.tensor_type.elem_type == 7  # onnx.TensorProto.INT64
    assert graph_input.type.tensor_type.shape.dim[0].dim_param == "batch"


def test_registered_int64_model_predicts_like_the_original(
        encoder: torch.nn.Module, sqlite_registry: Registry) -> None:
    version = ferry.register(encoder, "tiny_encoder", sample=_token_ids(64, seed=0),
                             registry=sqlite_registry)
    assert version.conversion_check["passed"]
    assert version.signature.inputs[0].dtype == "int64"
    predictor = ferry.load(version.uri, registry=sqlite_registry)
    for rows in (1, 3, 57):
        held_out = _token_ids(rows, seed=rows)
        predicted = np.asarray(predictor.predict(held_out))
        with torch.no_grad():
            expected = encoder(torch.from_numpy(held_out)).numpy()
        assert predicted.shape == expected.shape == (rows, 16)
        assert np.min(np.sum(predicted * expected, axis=1)) > 0.9999
