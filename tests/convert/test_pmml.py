"""PmmlConverter: PMML made with nyoka from scikit-learn models, read, converted and checked.

Each case trains a scikit-learn model, writes it as PMML with nyoka, reads it back, converts
it to ONNX and checks the ONNX outputs against sklearn-pmml-model's on held-out rows (the
conversion check), then the PMML model's outputs against the original scikit-learn model's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from nyoka import skl_to_pmml
from sklearn.base import BaseEstimator, is_classifier
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from ferry.convert import converter_for, find_converter
from ferry.convert.base import SavedOriginal
from ferry.convert.check import compare
from ferry.convert.pmml import PmmlConverter, PmmlDocument
from ferry.errors import (
    CorruptArtifactError,
    InvalidInputError,
    SampleMismatchError,
    UnsupportedModelError,
)
from ferry.runtime.onnx_runtime import OnnxPredictor
from ferry.runtime.predictor import Outputs
from ferry.signature import DYNAMIC, Layout, Role, Task

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning",
                                        "ignore::DeprecationWarning")


def _iris() -> tuple[pd.DataFrame, pd.Series]:
    data = load_iris(as_frame=True)
    return data.data, data.target.map(dict(enumerate(data.target_names)))


def _diabetes() -> tuple[pd.DataFrame, pd.Series]:
    """The unscaled features: decimals as recorded, as PMML from other tools carries them."""
    data = load_diabetes(as_frame=True, scaled=False)
    return data.data, data.target


def _cancer() -> tuple[pd.DataFrame, pd.Series]:
    data = load_breast_cancer(as_frame=True)
    return data.data, data.target


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], BaseEstimator]
    data: Callable[[], tuple[pd.DataFrame, pd.Series]]
    task: Task
    min_sklearn_agreement: float = 1.0
    """Share of held-out rows on which the PMML model must give the scikit-learn model's
    outputs. nyoka writes split values to float32's shortest digits (or seven significant
    ones), and scikit-learn sometimes splits within a float32 step of a value the data holds;
    PMML's `x <= 4.8` then sends 4.8 the other way than the model did."""


CASES = [
    Case("linear-regression", LinearRegression, _diabetes, Task.REGRESSION),
    Case("logistic-regression", lambda: LogisticRegression(max_iter=5000), _cancer,
         Task.CLASSIFICATION),
    Case("decision-tree-classifier", lambda: DecisionTreeClassifier(max_depth=5, random_state=0),
         _iris, Task.CLASSIFICATION),
    Case("decision-tree-regressor", lambda: DecisionTreeRegressor(max_depth=6, random_state=0),
         _diabetes, Task.REGRESSION),
    Case("random-forest-classifier",
         lambda: RandomForestClassifier(n_estimators=25, max_depth=6, random_state=0),
         _iris, Task.CLASSIFICATION),
    Case("random-forest-classifier-binary",
         lambda: RandomForestClassifier(n_estimators=25, random_state=0),
         _cancer, Task.CLASSIFICATION),
    Case("random-forest-regressor",
         lambda: RandomForestRegressor(n_estimators=25, max_depth=6, random_state=0),
         _diabetes, Task.REGRESSION, min_sklearn_agreement=0.9),
    Case("gradient-boosting-classifier",
         lambda: GradientBoostingClassifier(n_estimators=20, random_state=0),
         _iris, Task.CLASSIFICATION),
    Case("gradient-boosting-classifier-binary",
         lambda: GradientBoostingClassifier(n_estimators=20, random_state=0),
         _cancer, Task.CLASSIFICATION),
    Case("gradient-boosting-regressor",
         lambda: GradientBoostingRegressor(n_estimators=20, random_state=0),
         _diabetes, Task.REGRESSION),
]


@dataclass(frozen=True)
class Exported:
    """A scikit-learn model, its PMML file and its training and held-out rows."""

    model: Pipeline
    path: Path
    train: pd.DataFrame
    held_out: pd.DataFrame


def export(make: Callable[[], BaseEstimator], data: Callable[[], tuple[pd.DataFrame, pd.Series]],
           path: Path) -> Exported:
    X, y = data()
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.3, random_state=0)
    pipeline = Pipeline([("model", make())]).fit(X_train, y_train)
    skl_to_pmml(pipeline, list(X.columns), "target", str(path))
    return Exported(pipeline, path, X_train, X_test)


def sklearn_outputs(model: Any, rows: pd.DataFrame) -> Outputs:
    if is_classifier(model):
        return {Role.LABEL: model.predict(rows), Role.PROBABILITIES: model.predict_proba(rows)}
    return {Role.VALUE: model.predict(rows)}


def row_agreement(want: Outputs, got: Outputs) -> float:
    """The share of rows on which every output agrees (labels equal, numbers within 1e-3)."""
    agree = np.ones(len(next(iter(want.values()))), dtype=bool)
    for role, values in want.items():
        other = np.asarray(got[role])
        if role == Role.LABEL:
            agree &= np.asarray(values).astype(str) == other.astype(str)
        else:
            close = np.isclose(other.reshape(np.shape(values)), values, rtol=1e-3, atol=1e-4)
            agree &= close.reshape(len(agree), -1).all(axis=1)
    return float(agree.mean())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_pmml_converts_and_passes_the_check(case: Case, tmp_path: Path) -> None:
    exported = export(case.make, case.data, tmp_path / f"{case.name}.pmml")
    converter = PmmlConverter()
    document = converter.read_file(exported.path)
    assert isinstance(document, PmmlDocument)
    assert converter.matches(document)
    assert converter.task(document) == case.task

    conversion = converter.convert(document, exported.train)
    signature = conversion.signature
    assert conversion.task == case.task
    assert signature.layout == Layout.TENSOR
    assert signature.feature_names == tuple(exported.train.columns)
    assert [(i.name, i.dtype, i.shape) for i in signature.inputs] == [
        ("X", "float32", (DYNAMIC, exported.train.shape[1]))]
    if case.task == Task.CLASSIFICATION:
        classes = exported.model[-1].classes_
        assert signature.class_labels == tuple(classes.tolist())
        assert [o.role for o in signature.outputs] == [Role.LABEL, Role.PROBABILITIES]

    predictor = OnnxPredictor(conversion.onnx_model.SerializeToString(), signature,
                              conversion.task).load()
    reference = converter.reference(document, exported.held_out)
    check = compare(reference, predictor.outputs(exported.held_out), data="held-out")
    assert check.passed, [o.describe() for o in check.outputs]

    original = sklearn_outputs(exported.model, exported.held_out)
    assert row_agreement(original, reference) >= case.min_sklearn_agreement


def test_columns_are_picked_by_name_and_arrays_are_taken_in_field_order(tmp_path: Path) -> None:
    exported = export(LinearRegression, _diabetes, tmp_path / "linear.pmml")
    converter = PmmlConverter()
    document = converter.read_file(exported.path)
    conversion = converter.convert(document, exported.train.to_numpy())
    predictor = OnnxPredictor(conversion.onnx_model.SerializeToString(), conversion.signature,
                              conversion.task).load()
    shuffled = exported.held_out[list(reversed(exported.held_out.columns))].assign(extra=1.0)
    want = exported.model.predict(exported.held_out)
    np.testing.assert_allclose(converter.reference(document, shuffled)[Role.VALUE], want)
    np.testing.assert_allclose(converter.reference(document, exported.held_out.to_numpy())
                               [Role.VALUE], want)
    np.testing.assert_allclose(predictor.outputs(shuffled)[Role.VALUE], want, rtol=1e-5)


def test_sample_without_the_fields_is_refused(tmp_path: Path) -> None:
    exported = export(LinearRegression, _diabetes, tmp_path / "linear.pmml")
    converter = PmmlConverter()
    document = converter.read_file(exported.path)
    with pytest.raises(SampleMismatchError, match="lacks the PMML fields"):
        converter.convert(document, exported.train.drop(columns=["bmi"]))
    with pytest.raises(SampleMismatchError, match="takes 10 columns"):
        converter.reference(document, exported.train.to_numpy()[:, :4])


def test_save_load_and_native_signature(tmp_path: Path) -> None:
    exported = export(lambda: DecisionTreeClassifier(max_depth=3, random_state=0), _iris,
                      tmp_path / "tree.xml")
    converter = PmmlConverter()
    document = converter.read_file(exported.path)
    saved = converter.save(document)
    assert saved.format == "pmml"
    assert saved.data == exported.path.read_bytes()
    loaded = converter.load(saved)
    assert loaded == document
    assert isinstance(loaded, PmmlDocument)
    reloaded: Any = loaded.model
    np.testing.assert_array_equal(reloaded.predict(exported.held_out.to_numpy()),
                                  exported.model.predict(exported.held_out))
    native = converter.native_signature(document, None)
    assert native.feature_names == tuple(exported.train.columns)
    assert native.class_labels == ("setosa", "versicolor", "virginica")
    with pytest.raises(CorruptArtifactError):
        converter.load(SavedOriginal(b"\xff\xfe", "pmml"))


def test_registration_finds_the_pmml_converter(tmp_path: Path) -> None:
    exported = export(LinearRegression, _diabetes, tmp_path / "linear.pmml")
    document = converter_for("pmml").read_file(exported.path)
    assert find_converter(document).framework == "pmml"
    assert not PmmlConverter().matches(exported.model)


def _counts_and_votes(text: str, majority: bool) -> str:
    """The same forest with leaf record counts (as JPMML and R write), optionally voting."""
    def counts(node: re.Match[str]) -> str:
        records = float(node.group(1))
        return re.sub(r'(<ScoreDistribution value="[^"]*" recordCount=")([^"]*)"',
                      lambda d: f'{d.group(1)}{float(d.group(2)) * records}"', node.group(0))
    text = re.sub(r'<Node id="\d+"(?: score="[^"]*")? recordCount="([^"]*)">'
                  r'\s*<SimplePredicate [^>]*/>(?:\s*<ScoreDistribution [^>]*/>)+', counts, text)
    return text.replace('"average"', '"majorityVote"') if majority else text


@pytest.mark.parametrize("majority", [False, True], ids=["average", "majority-vote"])
def test_forest_leaves_with_record_counts(tmp_path: Path, majority: bool) -> None:
    exported = export(lambda: RandomForestClassifier(n_estimators=15, random_state=0), _cancer,
                      tmp_path / "forest.pmml")
    text = _counts_and_votes(exported.path.read_text(), majority)
    assert text != exported.path.read_text()
    path = tmp_path / "counts.pmml"
    path.write_text(text)
    converter = PmmlConverter()
    document = converter.read_file(path)
    rows = exported.held_out
    reference = converter.reference(document, rows)
    forest = exported.model[-1]
    if majority:
        votes = np.mean([t.predict_proba(rows.to_numpy()).argmax(axis=1)[:, None]
                         == np.arange(2) for t in forest.estimators_], axis=0)
        np.testing.assert_allclose(reference[Role.PROBABILITIES], votes)
    else:
        np.testing.assert_allclose(reference[Role.PROBABILITIES], forest.predict_proba(rows))
    conversion = converter.convert(document, rows)
    outputs = OnnxPredictor(conversion.onnx_model.SerializeToString(), conversion.signature,
                            conversion.task).load().outputs(rows)
    assert compare(reference, outputs, data="held-out").passed


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_invalid_xml_is_refused_in_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.pmml", '<PMML version="4.4"><DataDictionary>')
    with pytest.raises(InvalidInputError, match=r"broken\.pmml is not well-formed XML") as raised:
        PmmlConverter().read_file(path)
    _one_line(raised)


def test_xml_that_is_not_pmml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not PMML"):
        PmmlConverter().read_file(_write(tmp_path, "other.xml", "<config><a/></config>"))
    with pytest.raises(InvalidInputError, match="no PMML model element"):
        PmmlConverter().read_file(_write(tmp_path, "empty.pmml", "<PMML><Header/></PMML>"))


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"cannot read absent\.pmml"):
        PmmlConverter().read_file(tmp_path / "absent.pmml")


def test_unsupported_model_element_is_refused_in_one_line(tmp_path: Path) -> None:
    export(SVC, _iris, tmp_path / "svm.pmml")
    with pytest.raises(UnsupportedModelError, match="SupportVectorMachineModel") as raised:
        PmmlConverter().read_file(tmp_path / "svm.pmml")
    _one_line(raised)


def test_one_vs_rest_logistic_regression_is_refused(tmp_path: Path) -> None:
    export(lambda: LogisticRegression(max_iter=1000), _iris, tmp_path / "ovr.pmml")
    with pytest.raises(UnsupportedModelError, match="one-vs-rest") as raised:
        PmmlConverter().read_file(tmp_path / "ovr.pmml")
    _one_line(raised)


def test_categorical_fields_are_refused(tmp_path: Path) -> None:
    exported = export(LinearRegression, _diabetes, tmp_path / "linear.pmml")
    text = exported.path.read_text().replace(
        '<DataField name="sex" optype="continuous" dataType="double"/>',
        '<DataField name="sex" optype="categorical" dataType="string">'
        '<Value value="1"/><Value value="2"/></DataField>')
    with pytest.raises(UnsupportedModelError, match="field 'sex' is categorical") as raised:
        PmmlConverter().read_file(_write(tmp_path, "categorical.pmml", text))
    _one_line(raised)


def test_regression_without_every_coefficient_is_refused(tmp_path: Path) -> None:
    exported = export(LinearRegression, _diabetes, tmp_path / "linear.pmml")
    text = re.sub(r'<NumericPredictor name="bmi"[^>]*/>', "", exported.path.read_text())
    with pytest.raises(UnsupportedModelError, match="coefficients for 9 of the 10"):
        PmmlConverter().read_file(_write(tmp_path, "partial.pmml", text))


def test_nonlinear_regression_terms_are_refused(tmp_path: Path) -> None:
    exported = export(LinearRegression, _diabetes, tmp_path / "linear.pmml")
    text = exported.path.read_text().replace('name="bmi" exponent="1"', 'name="bmi" exponent="2"')
    with pytest.raises(UnsupportedModelError, match="linear NumericPredictors only"):
        PmmlConverter().read_file(_write(tmp_path, "squared.pmml", text))
