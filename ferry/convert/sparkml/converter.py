"""`SparkMLConverter`: fitted pyspark.ml PipelineModels in ferry's converter interface."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import pandas as pd

from ferry.convert.base import Conversion, Converter, Sample, SavedOriginal, comes_from
from ferry.convert.sparkml import graph, patches
from ferry.convert.sparkml.original import FORMAT, load_folder, load_zip, save_zip, transformed
from ferry.convert.sparkml.stages import (
    Plan,
    input_columns,
    plan,
    raw_columns,
    refuse_unconvertible,
)
from ferry.errors import CorruptArtifactError, SampleMismatchError, UnsupportedModelError, one_line
from ferry.runtime.feeds import as_frame_or_array
from ferry.runtime.predictor import Outputs
from ferry.signature import DYNAMIC, Layout, Role, Signature, Task, TensorSpec, tensor_specs
from ferry.sparksession import active_or_local, require_onnxmltools, require_pyspark

if TYPE_CHECKING:
    from onnxmltools.convert.common.data_types import DataType
    from pyspark.ml import Transformer

SPARKML_OPSET = 15
"""The opset the graphs are written for (onnxmltools picks each operator's lowest version
up to it; ai.onnx.ml operators are at most version 2, which every current runtime runs)."""


class SparkMLConverter(Converter):
    framework = "sparkml"

    def matches(self, model: object) -> bool:
        """Any pyspark.ml object: a fitted PipelineModel converts, the others are refused
        saying what to register instead."""
        return comes_from(model, "pyspark") and type(model).__module__.startswith("pyspark.ml")

    def framework_version(self) -> str:
        require_pyspark()
        import pyspark

        return str(pyspark.__version__)

    def task(self, model: object) -> Task:
        return _plan(model).task

    def convert(self, model: object, sample: Sample | None) -> Conversion:
        steps = _plan(model)
        require_onnxmltools()
        refuse_unconvertible(steps)
        columns = input_columns(steps, _frame(sample))
        onnx_model = _converted(steps, columns)
        signature = _signature(steps, tensor_specs(onnx_model.graph.input),
                               tensor_specs(onnx_model.graph.output, _roles(steps)))
        return Conversion(onnx_model=onnx_model, signature=signature, task=steps.task)

    def reference(self, model: object, data: Sample) -> Outputs:
        steps = _plan(model)
        wanted = [c for c in (steps.prediction_col, steps.probability_col) if c]
        if not wanted:
            raise UnsupportedModelError(
                "the pipeline has no predictor stage: ferry registers pipelines that end in a"
                " classification, regression or clustering model")
        frame = _frame(data).drop(columns=steps.label_columns, errors="ignore")
        columns = transformed(steps.model, frame, wanted)
        return _outputs(steps, columns)

    def save(self, model: object, sample: Sample | None = None) -> SavedOriginal:
        return SavedOriginal(save_zip(_plan(model).model), FORMAT)

    def load(self, saved: SavedOriginal) -> object:
        if saved.format != FORMAT:
            raise CorruptArtifactError(
                f"a Spark ML original has format {FORMAT!r}, not {saved.format!r}")
        require_pyspark()
        return load_zip(saved.data)

    def read_file(self, path: Path) -> object:
        """A pipeline from the folder Spark saved it to (`PipelineModel.write().save()`)."""
        if not path.is_dir():
            raise UnsupportedModelError(
                f"sparkml reads the folder a pipeline was saved to, not a file like {path.name}")
        require_pyspark()
        return load_folder(path)

    def baseline_calls(self, model: object) -> dict[str, Callable[[Any], object]] | None:
        """Spark's `transform` of the rows (made a Spark DataFrame, the answers collected)."""
        return {"transform": lambda data: self.reference(model, data)}

    def native_signature(self, model: object, sample: Sample | None) -> Signature:
        steps = _plan(model)
        columns = input_columns(steps, _frame(sample))
        inputs = tuple(TensorSpec(name, "string" if text else "float32", (DYNAMIC, 1))
                       for name, text in columns)
        return _signature(steps, inputs, _native_outputs(steps))


def _plan(model: object) -> Plan:
    require_pyspark()
    return plan(model)


def _frame(data: Sample | None) -> pd.DataFrame:
    """Rows as named columns: Spark ML pipelines read their columns by name."""
    if data is None:
        raise SampleMismatchError(
            "a Spark ML pipeline reads named columns: pass sample= (a pandas DataFrame of"
            " rows like the training data, e.g. spark_frame.limit(1000).toPandas())")
    frame = as_frame_or_array(data)
    if not isinstance(frame, pd.DataFrame):
        raise SampleMismatchError(
            "a Spark ML pipeline reads named columns: pass a pandas DataFrame, a pyarrow"
            " Table or a dict of columns, not an array")
    return frame


def _converted(steps: Plan, columns: list[tuple[str, bool]]) -> onnx.ModelProto:
    """The kept stages in ONNX, repaired and valid; a failure names the first stage that
    fails on its own."""
    try:
        return _valid(_repaired(_onnxmltools(steps.kept, columns), steps))
    except Exception as exc:  # onnxmltools raises anything: its converters are plain code
        where = _failing_stage(steps, columns)
        raise UnsupportedModelError(
            f"{where} does not convert with onnxmltools: {one_line(exc)}; register it with"
            " force=True to serve it natively with Spark") from exc


def _failing_stage(steps: Plan, columns: list[tuple[str, bool]]) -> str:
    """The first stage whose pipeline up to it does not convert (or gives an invalid graph)."""
    for count, stage in enumerate(steps.kept, start=1):
        read = set(raw_columns(steps.kept[:count]))
        try:
            onnx_model = _onnxmltools(steps.kept[:count], [c for c in columns if c[0] in read])
            graph.default_domain(onnx_model)
            _valid(onnx_model)
        except Exception:
            return steps.describe(stage)
    return "the pipeline"


def _onnxmltools(stages: Sequence[Transformer], columns: list[tuple[str, bool]]
                 ) -> onnx.ModelProto:
    from onnxmltools import convert_sparkml
    from pyspark.ml import PipelineModel

    with patches.conversion():
        return convert_sparkml(PipelineModel(stages=list(stages)), "sparkml_pipeline",
                               _initial_types(columns), spark_session=active_or_local(),
                               target_opset=SPARKML_OPSET)


def _valid(onnx_model: onnx.ModelProto) -> onnx.ModelProto:
    onnx.checker.check_model(onnx_model)
    return onnx_model


def _initial_types(columns: list[tuple[str, bool]]) -> list[tuple[str, DataType]]:
    from onnxmltools.convert.common.data_types import FloatTensorType, StringTensorType

    return [(name, StringTensorType([None, 1]) if text else FloatTensorType([None, 1]))
            for name, text in columns]


def _repaired(onnx_model: onnx.ModelProto, steps: Plan) -> onnx.ModelProto:
    """The graph with onnxmltools' known faults mended (`ferry.convert.sparkml.graph`)."""
    graph.default_domain(onnx_model)
    graph.cast_concat_inputs(onnx_model)
    for labels in steps.keep_unseen:
        graph.unseen_after_known(onnx_model, labels)
    prediction = steps.prediction_col
    if prediction is not None and type(steps.predictor).__name__ == "GBTRegressionModel":
        graph.margin_as_prediction(onnx_model, prediction)
    graph.softmax_probabilities(onnx_model)
    if steps.task == Task.CLASSIFICATION and prediction is not None:
        graph.int64_prediction(onnx_model, prediction)
        if steps.string_labels and steps.class_labels is not None:
            graph.index_to_label(onnx_model, prediction, [str(c) for c in steps.class_labels])
    graph.exact_tree_thresholds(onnx_model, steps.predictor)
    graph.dynamic_batch(onnx_model)
    return onnx_model


def _roles(steps: Plan) -> dict[str, Role]:
    if steps.prediction_col is None:
        return {}
    if steps.task != Task.CLASSIFICATION:
        return {steps.prediction_col: Role.VALUE}
    roles = {steps.prediction_col: Role.LABEL}
    if steps.probability_col is not None:
        roles[steps.probability_col] = Role.PROBABILITIES
    return roles


def _signature(steps: Plan, inputs: tuple[TensorSpec, ...],
               outputs: tuple[TensorSpec, ...]) -> Signature:
    return Signature(inputs=inputs, outputs=outputs, layout=Layout.COLUMNS,
                     feature_names=tuple(spec.name for spec in inputs),
                     class_labels=steps.class_labels)


def _native_outputs(steps: Plan) -> tuple[TensorSpec, ...]:
    """The outputs `reference` gives, as a version served by Spark reports them."""
    specs = []
    for name, role in _roles(steps).items():
        if role == Role.PROBABILITIES:
            count = len(steps.class_labels or ()) or DYNAMIC
            specs.append(TensorSpec(name, "float64", (DYNAMIC, count), role))
        else:
            dtype = "string" if steps.string_labels else (
                "int64" if role == Role.LABEL else "float64")
            specs.append(TensorSpec(name, dtype, (DYNAMIC,), role))
    return tuple(specs)


def _outputs(steps: Plan, columns: dict[str, np.ndarray]) -> Outputs:
    """Spark's prediction and probability columns by role; a predicted class index as its
    label (`class_labels[index]`), as the converted graph gives it."""
    assert steps.prediction_col is not None
    prediction = columns[steps.prediction_col]
    if steps.task != Task.CLASSIFICATION:
        return {Role.VALUE: prediction.astype(np.float64)}
    index = prediction.astype(np.int64)
    labels: Any = np.asarray(steps.class_labels, dtype=object)
    outputs: Outputs = {Role.LABEL: labels[index] if steps.string_labels else index}
    if steps.probability_col is not None:
        outputs[Role.PROBABILITIES] = columns[steps.probability_col].astype(np.float64)
    return outputs
