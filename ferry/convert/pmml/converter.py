"""`PmmlConverter`: PMML documents in ferry's converter interface."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_classifier

from ferry.convert.base import (
    Conversion,
    Converter,
    Sample,
    SavedOriginal,
    class_labels,
    signature_from_sample,
)
from ferry.convert.pmml.document import PmmlDocument, feature_names
from ferry.convert.pmml.estimators import plain_estimator, to_onnx
from ferry.convert.pmml.reading import parse_pmml
from ferry.convert.sklearn import build_signature, estimator_outputs
from ferry.errors import (
    CorruptArtifactError,
    InvalidInputError,
    SampleMismatchError,
    UnsupportedModelError,
    one_line,
)
from ferry.runtime.feeds import as_frame_or_array
from ferry.runtime.predictor import Outputs
from ferry.signature import Layout, Signature, Task

FORMAT = "pmml"


class PmmlConverter(Converter):
    framework = "pmml"
    file_suffixes = (".pmml", ".xml")

    def matches(self, model: object) -> bool:
        return isinstance(model, PmmlDocument)

    def framework_version(self) -> str:
        return importlib.metadata.version("sklearn-pmml-model")

    def task(self, model: object) -> Task:
        estimator = _document(model).model
        return Task.CLASSIFICATION if is_classifier(estimator) else Task.REGRESSION

    def convert(self, model: object, sample: Sample | None) -> Conversion:
        document = _document(model)
        names = feature_names(document)
        if sample is not None:
            _rows(sample, names)
        onnx_model = to_onnx(plain_estimator(document.model), len(names))
        task = self.task(document)
        signature = build_signature(onnx_model, task, Layout.TENSOR, names,
                                    class_labels(document.model))
        return Conversion(onnx_model=onnx_model, signature=signature, task=task)

    def reference(self, model: object, data: Sample) -> Outputs:
        document = _document(model)
        rows = _rows(data, feature_names(document))
        return estimator_outputs(document.model, rows, self.task(document))

    def save(self, model: object, sample: Sample | None = None) -> SavedOriginal:
        return SavedOriginal(_document(model).text.encode("utf-8"), FORMAT)

    def load(self, saved: SavedOriginal) -> object:
        if saved.format != FORMAT:
            raise CorruptArtifactError(f"a PMML original has format {FORMAT!r}, not"
                                       f" {saved.format!r}")
        try:
            text = saved.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorruptArtifactError(f"the stored PMML original is not UTF-8: {exc}") from exc
        return parse_pmml(text, "the stored PMML original")

    def read_file(self, path: Path) -> object:
        if path.suffix.lower() not in self.file_suffixes:
            return super().read_file(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidInputError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"{path.name} is not UTF-8 text: {exc}") from exc
        return parse_pmml(text, path.name)

    def native_signature(self, model: object, sample: Sample | None) -> Signature:
        document = _document(model)
        columns = pd.DataFrame(columns=list(feature_names(document)))
        return signature_from_sample(columns, self.task(document), class_labels(document.model))


def _rows(data: Any, names: tuple[str, ...]) -> np.ndarray:
    """`data` as float64 rows whose columns are `names`, in order."""
    frame = as_frame_or_array(data)
    if isinstance(frame, pd.DataFrame):
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise SampleMismatchError(
                f"the data lacks the PMML fields {missing[:5]}"
                f"{' and more' if len(missing) > 5 else ''}: the model takes {list(names)[:10]}"
            )
        frame = frame[list(names)]
    array = np.asarray(frame)
    if array.ndim == 1:
        array = array[np.newaxis, :]
    if array.ndim != 2 or array.shape[1] != len(names):
        raise SampleMismatchError(
            f"the data has shape {list(array.shape)}; the PMML model takes {len(names)}"
            f" columns: {list(names)[:10]}"
        )
    try:
        return array.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise SampleMismatchError(f"the PMML model takes numbers: {one_line(exc)}") from exc


def _document(model: object) -> PmmlDocument:
    if not isinstance(model, PmmlDocument):
        raise UnsupportedModelError(f"{type(model).__name__} is not a PmmlDocument")
    return model
