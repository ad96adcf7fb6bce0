"""Triton's example models as ONNX graphs, and helpers that register them with ferry.

Triton's example clients (the `src/python/examples` folder of triton-inference-server/client)
call a handful of tiny models by name. These are the same models built with `onnx.helper`
(opset 17, batch axis dynamic), so the clients and our own tritonclient tests can run
against `ferry serve` unchanged:

- `simple`, `simple_int8`, `simple_uint8`, `simple_fp32`: INPUT0, INPUT1 of [-1, 16] ->
  OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 (same type);
- `simple_string`: the same on BYTES holding decimal integers (answers in decimal text);
- `simple_identity`: INPUT0 BYTES [-1, -1] -> OUTPUT0, unchanged;
- `custom_identity_int32`: INPUT0 INT32 [-1, -1] -> OUTPUT0, unchanged.

Run as a script, it registers them into a registry: `python tests/serve/triton_models.py
HOME [--extra N]` (ferry's `FERRY_HOME` layout); `--extra N` adds N more add/sub models
(`simple_extra_1`, ...), for clients that expect more models in the repository index.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

import ferry
from ferry.registry import ModelVersion, Registry

OPSET = 17
IR_VERSION = 10
WIDTH = 16
BATCH = "batch"

Sample = dict[str, np.ndarray] | np.ndarray
"""One array per input by name; a single-input model's sample is its array."""


@dataclass(frozen=True)
class ExampleModel:
    """One of Triton's example models: its name, ONNX graph and a sample of its inputs."""

    name: str
    graph: onnx.ModelProto
    sample: Sample

    def register(self, registry: Registry) -> ModelVersion:
        return ferry.register(self.graph, self.name, sample=self.sample, registry=registry)


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION)
    onnx.checker.check_model(model, full_check=True)
    return model


def _tensor(name: str, elem_type: int, dims: list[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, dims)


def add_sub_graph(name: str, elem_type: int) -> onnx.ModelProto:
    """INPUT0, INPUT1 [batch, 16] -> OUTPUT0 = sum, OUTPUT1 = difference, all `elem_type`."""
    dims: list[int | str] = [BATCH, WIDTH]
    return _model(helper.make_graph(
        [helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
         helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"])],
        name,
        [_tensor("INPUT0", elem_type, dims), _tensor("INPUT1", elem_type, dims)],
        [_tensor("OUTPUT0", elem_type, dims), _tensor("OUTPUT1", elem_type, dims)]))


def string_add_sub_graph(name: str = "simple_string") -> onnx.ModelProto:
    """`add_sub_graph` on strings of decimal integers: parsed to INT32, answered as text."""
    dims: list[int | str] = [BATCH, WIDTH]
    int32, text = TensorProto.INT32, TensorProto.STRING
    return _model(helper.make_graph(
        [helper.make_node("Cast", ["INPUT0"], ["A"], to=int32),
         helper.make_node("Cast", ["INPUT1"], ["B"], to=int32),
         helper.make_node("Add", ["A", "B"], ["SUM"]),
         helper.make_node("Sub", ["A", "B"], ["DIFFERENCE"]),
         helper.make_node("Cast", ["SUM"], ["OUTPUT0"], to=text),
         helper.make_node("Cast", ["DIFFERENCE"], ["OUTPUT1"], to=text)],
        name,
        [_tensor("INPUT0", text, dims), _tensor("INPUT1", text, dims)],
        [_tensor("OUTPUT0", text, dims), _tensor("OUTPUT1", text, dims)]))


def identity_graph(name: str, elem_type: int) -> onnx.ModelProto:
    """INPUT0 [batch, width] -> OUTPUT0, unchanged."""
    dims: list[int | str] = [BATCH, "width"]
    return _model(helper.make_graph(
        [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])], name,
        [_tensor("INPUT0", elem_type, dims)], [_tensor("OUTPUT0", elem_type, dims)]))


def pair_sample(dtype: type[np.generic]) -> dict[str, np.ndarray]:
    """Two rows of INPUT0 = 0..15 and INPUT1 = ones, in `dtype`."""
    first = np.tile(np.arange(WIDTH), (2, 1))
    return {"INPUT0": first.astype(dtype), "INPUT1": np.ones((2, WIDTH), dtype=dtype)}


def text_sample() -> dict[str, np.ndarray]:
    return {name: values.astype(str).astype(object)
            for name, values in pair_sample(np.int32).items()}


def _add_sub(name: str, elem_type: int, dtype: type[np.generic]) -> ExampleModel:
    return ExampleModel(name, add_sub_graph(name, elem_type), pair_sample(dtype))


def _identity(name: str, elem_type: int, sample: np.ndarray) -> ExampleModel:
    return ExampleModel(name, identity_graph(name, elem_type), sample)


BUILDERS: dict[str, Callable[[], ExampleModel]] = {
    "simple": lambda: _add_sub("simple", TensorProto.INT32, np.int32),
    "simple_int8": lambda: _add_sub("simple_int8", TensorProto.INT8, np.int8),
    "simple_uint8": lambda: _add_sub("simple_uint8", TensorProto.UINT8, np.uint8),
    "simple_fp32": lambda: _add_sub("simple_fp32", TensorProto.FLOAT, np.float32),
    "simple_string": lambda: ExampleModel("simple_string", string_add_sub_graph(),
                                          text_sample()),
    "simple_identity": lambda: _identity("simple_identity", TensorProto.STRING,
                                         text_sample()["INPUT0"]),
    "custom_identity_int32": lambda: _identity("custom_identity_int32", TensorProto.INT32,
                                               pair_sample(np.int32)["INPUT0"]),
}
"""The seven models of the examples' repository, by name."""


def example_model(name: str) -> ExampleModel:
    """One example model by name; `simple_extra_N` is another INT32 add/sub model."""
    if name.startswith("simple_extra_"):
        return _add_sub(name, TensorProto.INT32, np.int32)
    return BUILDERS[name]()


def register_examples(registry: Registry,
                      names: Iterable[str] = tuple(BUILDERS)) -> list[ModelVersion]:
    """Register the named example models (default: all seven) as version 1 of each."""
    return [example_model(name).register(registry) for name in names]


def _main() -> None:
    parser = argparse.ArgumentParser(description="Register Triton's example models.")
    parser.add_argument("home", type=Path, help="registry home (FERRY_HOME layout)")
    parser.add_argument("--extra", type=int, default=0, help="more add/sub models to add")
    arguments = parser.parse_args()
    arguments.home.mkdir(parents=True, exist_ok=True)
    os.environ["FERRY_HOME"] = str(arguments.home)
    registry = Registry()
    extras = [f"simple_extra_{index}" for index in range(1, arguments.extra + 1)]
    for version in register_examples(registry, [*BUILDERS, *extras]):
        print(f"registered {version.name}:{version.version}")


if __name__ == "__main__":
    _main()
