"""What a fitted Spark ML pipeline does, read off its stages: the final predictor, the stages
that only handle the label, the raw columns it reads, and the first stage onnxmltools cannot
convert. Nothing here runs Spark; pyspark and onnxmltools are imported when called.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from ferry.errors import SampleMismatchError, UnsupportedModelError
from ferry.signature import Task

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel, Transformer

STRING_STAGES = ("StringIndexerModel",)
"""Stages that read their input columns as strings (Spark casts numbers to text for them)."""


@dataclass(frozen=True)
class Plan:
    """A pipeline as ferry converts it: the fitted pipeline, its stages (nested pipelines
    flattened), those onnxmltools converts (`kept`: all but the label's), the final predictor
    (None for a pipeline of transformers), and the class labels in index order."""

    model: PipelineModel
    stages: tuple[Transformer, ...]
    kept: tuple[Transformer, ...]
    predictor: Transformer | None
    task: Task
    class_labels: tuple[Any, ...] | None

    def describe(self, stage: Transformer) -> str:
        """`stage 2 (pyspark.ml.feature.HashingTF)`: its place among the stages, its class."""
        index = next(i for i, s in enumerate(self.stages) if s is stage)
        return f"stage {index} ({_class_path(stage)})"

    @property
    def prediction_col(self) -> str | None:
        return _param(self.predictor, "predictionCol")

    @property
    def probability_col(self) -> str | None:
        """The class probabilities' column (None: the predictor gives none)."""
        if self.task != Task.CLASSIFICATION:
            return None
        return _param(self.predictor, "probabilityCol")

    @property
    def label_columns(self) -> list[str]:
        """The columns only the left-out label stages read (the training label): Spark
        skips those stages when the columns are absent, as they are when predicting."""
        kept = {id(stage) for stage in self.kept}
        read = {c for stage in self.kept for c in _inputs(stage)}
        return [c for stage in self.stages if id(stage) not in kept
                for c in _inputs(stage) if c not in read]

    @property
    def keep_unseen(self) -> list[list[str]]:
        """The labels of each column a kept StringIndexer indexes with `handleInvalid="keep"`
        (unseen categories get the index after them)."""
        from pyspark.ml.feature import StringIndexerModel

        return [[str(label) for label in labels] for stage in self.kept
                if isinstance(stage, StringIndexerModel) and stage.getHandleInvalid() == "keep"
                for labels in stage.labelsArray]

    @property
    def string_labels(self) -> bool:
        labels = self.class_labels or ()
        return bool(labels) and isinstance(labels[0], str)


def _param(stage: Transformer | None, name: str) -> str | None:
    """The value of the stage's param `name`, None when it has none."""
    found = [] if stage is None else _first_defined(stage, (name,))
    return found[0] if found else None


def pipeline_model(model: object) -> PipelineModel:
    """`model` as a fitted PipelineModel; an unfitted Pipeline or a lone stage is refused."""
    from pyspark.ml import Pipeline, PipelineModel

    if isinstance(model, PipelineModel):
        return model
    if isinstance(model, Pipeline):
        raise UnsupportedModelError(
            "a pyspark.ml Pipeline is not fitted: register the PipelineModel that"
            " Pipeline.fit(training_frame) returns")
    raise UnsupportedModelError(
        f"ferry registers fitted pyspark.ml PipelineModels, not a {_class_path(model)}:"
        f" wrap it with PipelineModel(stages=[...]) after the stages that build its columns")


def plan(model: object) -> Plan:
    """The conversion plan of a fitted pipeline (nested pipelines flattened)."""
    fitted = pipeline_model(model)
    stages = tuple(flatten(fitted))
    predictor = _predictor(stages)
    task = _task(predictor)
    dropped = _label_stages(stages, predictor)
    kept = tuple(s for s in stages if id(s) not in {id(d) for d in dropped})
    return Plan(fitted, stages, kept, predictor, task, _class_labels(predictor, task, dropped))


def flatten(model: PipelineModel) -> list[Transformer]:
    from pyspark.ml import PipelineModel

    found: list[Transformer] = []
    for stage in model.stages:
        found += flatten(stage) if isinstance(stage, PipelineModel) else [stage]
    return found


def _predictor(stages: tuple[Transformer, ...]) -> Transformer | None:
    """The last stage that writes a prediction (a classification, regression or clustering
    model)."""
    return next((s for s in reversed(stages) if s.hasParam("predictionCol")), None)


def _task(predictor: Transformer | None) -> Task:
    """Classification for classifiers, regression for `pyspark.ml.regression`'s models
    (isotonic and survival regression included), other for the rest (clustering)."""
    from pyspark.ml.classification import ClassificationModel, OneVsRestModel

    if isinstance(predictor, ClassificationModel | OneVsRestModel):
        return Task.CLASSIFICATION
    regression = type(predictor).__module__ == "pyspark.ml.regression"
    return Task.REGRESSION if regression else Task.OTHER


def _label_stages(stages: tuple[Transformer, ...],
                  predictor: Transformer | None) -> list[Transformer]:
    """Stages that only serve the label: the StringIndexer that indexed the training label
    (Spark skips it when the column is absent, as it is when predicting) and an IndexToString
    turning the predicted index back into a label (the converted graph does that itself)."""
    from pyspark.ml.feature import IndexToString, StringIndexerModel

    if predictor is None or not predictor.hasParam("labelCol"):
        return []
    label, prediction = _param(predictor, "labelCol"), _param(predictor, "predictionCol")
    found: list[Transformer] = []
    for stage in stages:
        if isinstance(stage, StringIndexerModel) and label in _outputs(stage):
            found.append(_single_label_indexer(stage, label))
        elif isinstance(stage, IndexToString) and stage.getInputCol() == prediction:
            found.append(stage)
    return found


def _single_label_indexer(stage: Transformer, label: str) -> Transformer:
    if len(_outputs(stage)) > 1:
        raise UnsupportedModelError(
            f"a StringIndexer indexes the label {label!r} together with feature columns"
            f" ({', '.join(_outputs(stage))}): index the label with its own StringIndexer")
    return stage


def _outputs(stage: Transformer) -> list[str]:
    """The columns a stage writes (`outputCol(s)`, a model's prediction columns)."""
    found = _first_defined(stage, ("outputCols", "outputCol"))
    for name in ("predictionCol", "probabilityCol", "rawPredictionCol"):
        found += _first_defined(stage, (name,))
    return found


def _inputs(stage: Transformer) -> list[str]:
    """The columns a stage reads when transforming (`inputCol(s)`, a model's `featuresCol`)."""
    return _first_defined(stage, ("inputCols", "inputCol", "featuresCol"))


def _first_defined(stage: Transformer, names: tuple[str, ...]) -> list[str]:
    """The value of the first of the params `names` that the stage has a value for."""
    for name in names:
        if stage.hasParam(name) and stage.isDefined(name):
            value = stage.getOrDefault(name)
            return [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return []


def _class_labels(predictor: Transformer | None, task: Task,
                  dropped: list[Transformer]) -> tuple[Any, ...] | None:
    """The label of each predicted index: an IndexToString's or the label indexer's labels
    when they name every class, else the indices `0..k-1` (Spark's own labels)."""
    if task != Task.CLASSIFICATION or predictor is None:
        return None
    count = _num_classes(predictor)
    for stage in reversed(dropped):  # an IndexToString comes after the label indexer
        labels = _labels(stage)
        if len(labels) == count:
            return tuple(labels)
    return tuple(range(count))


def _num_classes(predictor: Transformer) -> int:
    from pyspark.ml.classification import ClassificationModel, OneVsRestModel

    if isinstance(predictor, OneVsRestModel):
        return len(predictor.models)
    assert isinstance(predictor, ClassificationModel)
    return int(predictor.numClasses)


def _labels(stage: Transformer) -> list[str]:
    from pyspark.ml.feature import IndexToString, StringIndexerModel

    if isinstance(stage, IndexToString):
        return [str(x) for x in stage.getLabels()] if stage.isDefined("labels") else []
    assert isinstance(stage, StringIndexerModel)
    return [str(x) for x in stage.labelsArray[0]]


def refuse_unconvertible(plan: Plan) -> None:
    """Raise naming the first stage onnxmltools has no converter for, before converting."""
    supported = supported_stages()
    for stage in plan.kept:
        if _class_path(stage) not in supported:
            raise UnsupportedModelError(
                f"{plan.describe(stage)} has no ONNX converter in onnxmltools;"
                f" supported: {', '.join(sorted(p.rpartition('.')[2] for p in supported))};"
                " register it with force=True to serve it natively with Spark")


def supported_stages() -> set[str]:
    """The class paths (`pyspark.ml.feature.VectorAssembler`, ...) onnxmltools converts."""
    import onnxmltools.convert.sparkml.operator_converters  # noqa: F401  (registers them)
    from onnxmltools.convert.common._registration import get_converter
    from onnxmltools.convert.sparkml.ops_names import sparkml_operator_name_map

    found = set()
    for name in sparkml_operator_name_map.values():
        try:
            get_converter(name)
        except ValueError:
            continue
        found.add(name)
    return found


def _class_path(stage: object) -> str:
    """As onnxmltools names stages: the public module (`pyspark.ml.feature`) and class."""
    module = type(stage).__module__
    return f"{module}.{type(stage).__name__}"


def raw_columns(stages: Sequence[Transformer]) -> list[str]:
    """The columns the stages read that no earlier stage writes, in stage order."""
    written: set[str] = set()
    raw: list[str] = []
    for stage in stages:
        raw += [c for c in _inputs(stage) if c not in written and c not in raw]
        written.update(_outputs(stage))
    return raw


def string_columns(plan: Plan) -> set[str]:
    """Columns a stage reads as strings, whatever their type in the data."""
    return {column for stage in plan.kept if type(stage).__name__ in STRING_STAGES
            for column in _inputs(stage)}


def input_columns(plan: Plan, sample: pd.DataFrame) -> list[tuple[str, bool]]:
    """(column, is text) for every raw column the pipeline reads, in the sample's order."""
    needed = raw_columns(plan.kept)
    missing = [c for c in needed if c not in sample.columns]
    if missing:
        raise SampleMismatchError(
            f"the sample lacks the columns {missing} that the pipeline reads: pass rows"
            f" like the training data (it reads {needed})")
    text = string_columns(plan)
    return [(str(c), str(c) in text or not pd.api.types.is_numeric_dtype(sample[c]))
            for c in sample.columns if c in needed]
