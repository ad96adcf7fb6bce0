"""scikit-learn models through ferry.register and ferry.load, end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from zoo import churn_frame

import ferry
from ferry.errors import (
    ConversionCheckError,
    InvalidNameError,
    SampleMismatchError,
    UnsupportedModelError,
)
from ferry.registry import Registry
from ferry.signature import Layout, Task


def churn_pipeline() -> Pipeline:
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    preprocess = ColumnTransformer([
        ("numeric", numeric, ["age", "monthly_spend"]),
        ("categorical", OneHotEncoder(handle_unknown="ignore"), ["plan", "region"]),
    ])
    return Pipeline([("preprocess", preprocess), ("classify", LogisticRegression())])


def test_pipeline_with_column_transformer_round_trips(sqlite_registry: Registry) -> None:
    frame, target = churn_frame(800)
    train, held_out = frame.iloc[:600], frame.iloc[600:]
    model = churn_pipeline().fit(train, target.iloc[:600])

    version = ferry.register(model, "churn", sample=train, metrics={"accuracy": 0.9},
                             registry=sqlite_registry)
    predictor = ferry.load(version.uri, registry=sqlite_registry)

    assert version.uri == "churn:1"
    assert version.task == Task.CLASSIFICATION
    assert version.signature.layout == Layout.COLUMNS
    assert [i.name for i in version.signature.inputs] == list(frame.columns)
    assert version.signature.class_labels == ("churn", "stay")
    assert version.conversion_check["passed"] is True
    np.testing.assert_array_equal(predictor.predict(held_out), model.predict(held_out))
    np.testing.assert_allclose(predictor.predict_proba(held_out), model.predict_proba(held_out),
                               rtol=1e-3, atol=1e-5)


def test_string_column_unseen_at_training_is_handled_like_sklearn(
        sqlite_registry: Registry) -> None:
    frame, target = churn_frame(300)
    model = churn_pipeline().fit(frame, target)
    ferry.register(model, "churn", sample=frame, registry=sqlite_registry)
    unseen = frame.iloc[:5].assign(plan="enterprise")

    predictor = ferry.load("churn", registry=sqlite_registry)

    np.testing.assert_allclose(predictor.predict_proba(unseen), model.predict_proba(unseen),
                               atol=1e-5, rtol=1e-3)


def test_random_forest_regressor_round_trips(sqlite_registry: Registry) -> None:
    x, y = load_diabetes(return_X_y=True)
    model = RandomForestRegressor(n_estimators=40, random_state=0).fit(x[:350], y[:350])

    version = ferry.register(model, "diabetes", sample=x[:350], registry=sqlite_registry)
    predicted = ferry.load("diabetes:1", registry=sqlite_registry).predict(x[350:])

    assert version.task == Task.REGRESSION
    check = version.conversion_check["outputs"][0]
    assert check["role"] == "value" and check["passed"]
    assert predicted.shape == (len(x) - 350,)
    np.testing.assert_allclose(predicted, model.predict(x[350:]), rtol=1e-3, atol=1e-4)


def test_hist_gradient_boosting_classifier_round_trips(sqlite_registry: Registry) -> None:
    """On float32 data: HistGradientBoosting compares doubles, ferry serves float32 (a
    float64 value within half a float32 step of a threshold may go the other way)."""
    data = load_breast_cancer(as_frame=True)
    x, y = data.data.astype(np.float32), data.target
    model = HistGradientBoostingClassifier(max_iter=60, random_state=0).fit(x[:400], y[:400])

    version = ferry.register(model, "cancer", sample=x[:400], registry=sqlite_registry)
    predictor = ferry.load("cancer", registry=sqlite_registry)

    assert version.signature.feature_names == tuple(x.columns)
    np.testing.assert_array_equal(predictor.predict(x[400:]), model.predict(x[400:]))
    np.testing.assert_allclose(predictor.predict_proba(x[400:]), model.predict_proba(x[400:]),
                               atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("kind", ["numpy", "pandas", "arrow", "dict"])
def test_predict_accepts_numpy_pandas_arrow_and_dicts(sqlite_registry: Registry,
                                                      kind: str) -> None:
    data = load_iris(as_frame=True)
    model = LogisticRegression(max_iter=500).fit(data.data, data.target)
    ferry.register(model, "iris", sample=data.data, registry=sqlite_registry)
    rows = data.data.iloc[:7]
    inputs = {"numpy": rows.to_numpy(), "pandas": rows, "arrow": pa.Table.from_pandas(rows),
              "dict": {c: rows[c].to_numpy() for c in rows.columns}}[kind]

    predicted = ferry.load("iris", registry=sqlite_registry).predict(inputs)

    np.testing.assert_array_equal(predicted, model.predict(rows))


def test_registration_without_sample_checks_on_synthetic_rows(sqlite_registry: Registry) -> None:
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)

    version = ferry.register(model, "iris", registry=sqlite_registry)

    assert version.conversion_check["data"] == "synthetic"
    assert version.conversion_check["passed"] is True
    assert version.sample_sha256 is None


def test_sample_with_wrong_columns_is_refused_and_nothing_is_stored(
        sqlite_registry: Registry) -> None:
    frame, target = churn_frame(200)
    model = churn_pipeline().fit(frame, target)

    with pytest.raises(SampleMismatchError, match="columns"):
        ferry.register(model, "churn", sample=frame.drop(columns=["plan"]),
                       registry=sqlite_registry)
    assert sqlite_registry.models() == []


def test_conversion_outside_tolerance_is_refused_unless_forced(sqlite_registry: Registry) -> None:
    x, y = load_diabetes(return_X_y=True)
    model = RandomForestRegressor(n_estimators=5, random_state=0).fit(x, y)
    strict = ferry.Tolerance(rtol=0.0, atol=0.0)

    with pytest.raises(ConversionCheckError, match="value: max abs error"):
        ferry.register(model, "diabetes", sample=x * 1e3, tolerance=strict,
                       registry=sqlite_registry)
    assert sqlite_registry.models() == []

    forced = ferry.register(model, "diabetes", sample=x * 1e3, tolerance=strict, force=True,
                            registry=sqlite_registry)
    assert forced.forced is True
    assert forced.conversion_check["passed"] is False
    assert forced.conversion_check["forced"] is True


class Doubler:
    """A model no converter knows."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x).sum(axis=1) * 2


class SumRegressor(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """A scikit-learn-style estimator that skl2onnx has no converter for."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> SumRegressor:
        self.n_features_in_ = x.shape[1]
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x).sum(axis=1)


def test_estimator_without_converter_is_refused_then_served_natively_when_forced(
        sqlite_registry: Registry) -> None:
    x = np.arange(12.0).reshape(4, 3)
    model = SumRegressor().fit(x, x[:, 0])

    with pytest.raises(UnsupportedModelError, match="force=True"):
        ferry.register(model, "summer", sample=x, registry=sqlite_registry)
    assert sqlite_registry.models() == []

    version = ferry.register(model, "summer", sample=x, force=True, registry=sqlite_registry)
    predicted = ferry.load("summer", registry=sqlite_registry).predict(x + 1)

    assert version.runtime == "native"
    assert version.onnx_sha256 is None
    assert version.conversion_check["forced"] is True
    np.testing.assert_allclose(predicted, (x + 1).sum(axis=1))


def test_unknown_model_type_names_the_frameworks(sqlite_registry: Registry) -> None:
    with pytest.raises(UnsupportedModelError, match="no converter recognises"):
        ferry.register(Doubler(), "double", sample=np.ones((3, 2)), registry=sqlite_registry)


@pytest.mark.parametrize("name", ["../x", "", "a b", "bad\x07name", "x" * 200])
def test_invalid_names_are_refused(sqlite_registry: Registry, name: str) -> None:
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=300).fit(x, y)

    with pytest.raises(InvalidNameError):
        ferry.register(model, name, sample=x, registry=sqlite_registry)


def test_sample_is_stored_and_reads_back(sqlite_registry: Registry) -> None:
    frame, target = churn_frame(120)
    model = churn_pipeline().fit(frame, target)
    ferry.register(model, "churn", sample=frame, registry=sqlite_registry)

    stored = ferry.load_sample("churn:1", registry=sqlite_registry)

    assert isinstance(stored, pd.DataFrame)
    pd.testing.assert_frame_equal(stored, frame.reset_index(drop=True))


def test_lineage_and_parent_are_recorded(sqlite_registry: Registry) -> None:
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=300).fit(x, y)
    first = ferry.register(model, "iris", sample=x, registry=sqlite_registry)
    lineage = ferry.Lineage(training_data=x, run_id="run-42",
                            data_start=pd.Timestamp("2026-01-01").to_pydatetime(),
                            data_end=pd.Timestamp("2026-02-01").to_pydatetime())

    second = ferry.register(model, "iris", sample=x, lineage=lineage,
                            parent_version=first.version, params={"C": 1.0},
                            registry=sqlite_registry)

    assert second.parent_version == 1
    assert second.lineage["run_id"] == "run-42"
    assert second.lineage["data_rows"] == 150
    assert len(second.lineage["data_fingerprint"]) == 64
    assert second.lineage["data_start"].startswith("2026-01-01")
    assert second.params == {"C": 1.0}
    # same bytes, same content address: the second version shares the first one's artifacts
    assert second.original_sha256 == first.original_sha256


def test_classifier_of_bool_labels_passes_its_check(sqlite_registry: Registry) -> None:
    x, y = load_breast_cancer(return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(x, y.astype(bool))

    version = ferry.register(model, "bools", sample=x[:200], registry=sqlite_registry)

    labels = next(o for o in version.conversion_check["outputs"] if o["role"] == "label")
    assert version.conversion_check["passed"] and labels["label_agreement"] == 1.0
