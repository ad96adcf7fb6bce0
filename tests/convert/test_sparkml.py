"""Spark ML pipelines registered, checked against Spark's own `transform`, loaded and served.

Every test shares the run's one SparkSession (the `spark` fixture, `tests/spark_session.py`);
models are small (a few trees, a few iterations) on scikit-learn's bundled data sets.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
from http_helpers import post_json
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

import ferry
from ferry.convert import converter_for, find_converter
from ferry.convert.base import SavedOriginal
from ferry.convert.sparkml import SparkMLConverter
from ferry.errors import SampleMismatchError, UnsupportedModelError
from ferry.registry import Registry, Runtime
from ferry.serve.server import RunningServer, serve_in_thread
from ferry.serve.settings import ServeSettings
from ferry.signature import Layout, Role, Task

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.filterwarnings(
    "ignore:PySpark does not yet fully support pandas:FutureWarning")

SITES = ("north", "south", "east")
NUMBERS = ["mean_radius", "mean_texture", "mean_perimeter", "mean_area", "mean_smoothness"]


def cancer() -> tuple[pd.DataFrame, np.ndarray]:
    """Five breast-cancer measurements and a text column that tells the label half the time
    (so that trees split on its index, by category); labels as text."""
    data = load_breast_cancer(as_frame=True)
    frame = data.data.iloc[:, :5].set_axis(NUMBERS, axis=1)
    rng = np.random.default_rng(0)
    telling = np.where(data.target == 1, SITES[0], SITES[2])
    frame["site"] = np.where(rng.random(len(frame)) < 0.5, telling, rng.choice(SITES, len(frame)))
    return frame, np.where(data.target == 1, "benign", "malignant")


def diabetes() -> tuple[pd.DataFrame, np.ndarray]:
    data = load_diabetes(as_frame=True)
    return data.data, data.target.to_numpy()


def iris() -> tuple[pd.DataFrame, np.ndarray]:
    data = load_iris(as_frame=True)
    return data.data.set_axis(["sl", "sw", "pl", "pw"], axis=1), data.target.to_numpy() * 1.0


def fit(spark: SparkSession, frame: pd.DataFrame, labels: np.ndarray,
        stages: list[Any]) -> PipelineModel:
    from pyspark.ml import Pipeline

    return Pipeline(stages=stages).fit(spark.createDataFrame(frame.assign(label=labels)))


def spark_columns(spark: SparkSession, model: PipelineModel, frame: pd.DataFrame,
                  *columns: str) -> list[np.ndarray]:
    """`columns` of Spark's own `transform`, row by row in the frame's order."""
    rows = frame.assign(row=np.arange(len(frame)))
    result = model.transform(spark.createDataFrame(rows)).select("row", *columns)
    ordered = result.toPandas().sort_values("row")
    return [np.stack([v.toArray() for v in ordered[c]]) if hasattr(ordered[c].iloc[0], "toArray")
            else ordered[c].to_numpy() for c in columns]


@pytest.fixture(scope="module")
def classifier(spark: SparkSession) -> tuple[PipelineModel, pd.DataFrame]:
    """StringIndexer on a text feature (unseen categories kept, as one more index) and on the
    label, VectorAssembler, StandardScaler, LogisticRegression."""
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import StandardScaler, StringIndexer, VectorAssembler

    frame, labels = cancer()
    model = fit(spark, frame, labels, [
        StringIndexer(inputCol="site", outputCol="site_index", handleInvalid="keep"),
        StringIndexer(inputCol="label", outputCol="label_index"),
        VectorAssembler(inputCols=[*NUMBERS, "site_index"], outputCol="raw"),
        StandardScaler(inputCol="raw", outputCol="features"),
        LogisticRegression(labelCol="label_index", maxIter=10)])
    return model, frame


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    root = tmp_path_factory.mktemp("sparkml")
    registry = Registry(f"sqlite:///{root / 'registry.db'}", artifacts_url=str(root / "art"))
    yield registry
    registry.close()


@pytest.fixture(scope="module")
def registered(classifier: Any, registry: Registry) -> ferry.ModelVersion:
    model, frame = classifier
    return ferry.register(model, "cancer", sample=frame, registry=registry)


def test_recognised_and_registered_by_name() -> None:
    assert isinstance(converter_for("sparkml"), SparkMLConverter)


def test_classifier_pipeline_is_checked_against_spark(
        spark: SparkSession, classifier: Any, registered: ferry.ModelVersion,
        registry: Registry) -> None:
    model, frame = classifier
    assert isinstance(find_converter(model), SparkMLConverter)
    check = registered.conversion_check
    assert check["passed"] and not check["forced"], check
    assert check["compared"]["sample"] == len(frame)
    assert (registered.framework, registered.runtime) == ("sparkml", Runtime.ONNX)
    signature = registered.signature
    assert signature.layout == Layout.COLUMNS
    assert [(i.name, i.dtype, i.shape) for i in signature.inputs] == [
        *((name, "float32", (-1, 1)) for name in NUMBERS), ("site", "string", (-1, 1))]
    assert signature.class_labels == tuple(model.stages[1].labels)
    assert [o.role for o in signature.outputs] == [Role.LABEL, Role.PROBABILITIES]

    predictor = ferry.load("cancer", registry=registry)
    rows = pd.concat([frame, frame.head(20).assign(site="west")], ignore_index=True)  # unseen
    index, probability = spark_columns(spark, model, rows, "prediction", "probability")
    labels = np.asarray(model.stages[1].labels)[index.astype(int)]
    assert list(predictor.predict(rows)) == list(labels)
    np.testing.assert_allclose(predictor.predict_proba(rows), probability, atol=1e-5)


def _random_forest() -> tuple[Any, ...]:
    """Trees that split the text column's index by category (Spark marks it nominal)."""
    from pyspark.ml.classification import RandomForestClassifier
    from pyspark.ml.feature import StringIndexer, VectorAssembler

    return (cancer, [StringIndexer(inputCol="site", outputCol="site_index"),
                     StringIndexer(inputCol="label", outputCol="label_index"),
                     VectorAssembler(inputCols=[*NUMBERS, "site_index"], outputCol="features"),
                     RandomForestClassifier(labelCol="label_index", numTrees=3, maxDepth=3,
                                            seed=3)])


def _gbt_regressor() -> tuple[Any, ...]:
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.regression import GBTRegressor

    return (diabetes, [VectorAssembler(inputCols=list(diabetes()[0].columns),
                                       outputCol="features"),
                       GBTRegressor(maxIter=3, maxDepth=3, seed=3)])


def _multinomial() -> tuple[Any, ...]:
    """Three classes, numbered 0..2 by the training data itself (no label indexer)."""
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler

    return (iris, [VectorAssembler(inputCols=["sl", "sw", "pl", "pw"], outputCol="features"),
                   LogisticRegression(maxIter=30)])


@pytest.mark.parametrize("case", [_random_forest, _gbt_regressor, _multinomial],
                         ids=["random-forest", "gbt-regressor", "multinomial"])
def test_trees_and_regression_match_spark(spark: SparkSession, case: Any) -> None:
    data, stages = case()
    frame, labels = data()
    model = fit(spark, frame, labels, stages)

    version = ferry.register(model, "spark", sample=frame)

    assert version.conversion_check["passed"], version.conversion_check
    if case is _random_forest:
        assert " in {" in model.stages[-1].toDebugString  # a split by category
    predicted = ferry.load("spark").predict(frame)
    (prediction,) = spark_columns(spark, model, frame, "prediction")
    if version.task == Task.REGRESSION:
        np.testing.assert_allclose(predicted, prediction, rtol=1e-4)
    elif isinstance(version.signature.class_labels[0], str):
        labels_of = np.asarray(version.signature.class_labels)
        assert list(predicted) == list(labels_of[prediction.astype(int)])
    else:
        assert version.signature.class_labels == (0, 1, 2)
        assert list(predicted) == list(prediction.astype(int))


def test_unconvertible_stage_is_named_and_force_serves_with_spark(spark: SparkSession) -> None:
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import HashingTF, Tokenizer

    words = np.random.default_rng(1).choice(["good", "bad", "fine", "poor"], (60, 3))
    frame = pd.DataFrame({"text": [" ".join(row) for row in words]})
    labels = np.array([1.0 if "good" in t else 0.0 for t in frame["text"]])
    model = fit(spark, frame, labels, [
        Tokenizer(inputCol="text", outputCol="words"),
        HashingTF(inputCol="words", outputCol="features", numFeatures=32),
        LogisticRegression(maxIter=10)])

    with pytest.raises(UnsupportedModelError,
                       match=r"stage 1 \(pyspark\.ml\.feature\.HashingTF\) has no ONNX"):
        ferry.register(model, "text", sample=frame)

    version = ferry.register(model, "text", sample=frame, force=True)
    assert version.runtime == Runtime.NATIVE
    (prediction,) = spark_columns(spark, model, frame, "prediction")
    assert list(ferry.load("text").predict(frame)) == list(prediction.astype(int))


def test_original_reloads_from_the_registry_and_from_a_folder(
        spark: SparkSession, classifier: Any, registered: ferry.ModelVersion,
        registry: Registry, tmp_path: Path) -> None:
    model, frame = classifier
    converter = SparkMLConverter()
    saved = SavedOriginal(registry.read_artifact(registered, "original"),
                          registered.original_format)
    model.write().save(str(tmp_path / "pipeline"))

    reloaded = [converter.load(saved), converter.read_file(tmp_path / "pipeline")]

    assert saved.format == "sparkml-zip"
    want = converter.reference(model, frame)
    for original in reloaded:
        got = converter.reference(original, frame)
        assert list(got[Role.LABEL]) == list(want[Role.LABEL])
        np.testing.assert_array_equal(got[Role.PROBABILITIES], want[Role.PROBABILITIES])


@pytest.fixture(scope="module")
def server(registered: ferry.ModelVersion, registry: Registry) -> Iterator[RunningServer]:
    running = serve_in_thread([], registry=registry, grpc_port=None,
                              settings=ServeSettings(poll_interval_s=0.2))
    yield running
    running.stop()


def test_served_v2_infer_matches_spark(spark: SparkSession, classifier: Any,
                                       server: RunningServer) -> None:
    model, frame = classifier
    rows = frame.iloc[::57]
    inputs = [{"name": name, "shape": [len(rows), 1], "datatype": "FP32",
               "data": rows[name].astype(float).tolist()} for name in NUMBERS]
    inputs.append({"name": "site", "shape": [len(rows), 1], "datatype": "BYTES",
                   "data": rows["site"].tolist()})

    status, answer = post_json(server.http_url, "/v2/models/cancer/infer", {"inputs": inputs})

    assert status == 200, answer
    outputs = {o["name"]: o for o in answer["outputs"]}
    (index,) = spark_columns(spark, model, rows, "prediction")
    assert outputs["prediction"]["data"] == list(
        np.asarray(model.stages[1].labels)[index.astype(int)])



def test_refusals_say_what_to_do(spark: SparkSession, classifier: Any,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import OneHotEncoder, StringIndexer

    model, frame = classifier
    converter = SparkMLConverter()
    encoder = fit(spark, frame, np.zeros(len(frame)), [
        StringIndexer(inputCol="site", outputCol="site_index"),
        OneHotEncoder(inputCols=["site_index"], outputCols=["site_vector"])])  # Spark defaults
    with pytest.raises(UnsupportedModelError, match=r"stage 1 \(pyspark\.ml\.feature\."
                                                    r"OneHotEncoderModel\) does not convert"):
        converter.convert(encoder, frame)
    with pytest.raises(UnsupportedModelError, match="register the PipelineModel"):
        converter.convert(Pipeline(stages=list(model.stages)), frame)
    with pytest.raises(SampleMismatchError, match=r"lacks the columns \['site'\]"):
        converter.convert(model, frame.drop(columns="site"))
    with pytest.raises(SampleMismatchError, match="pass sample="):
        converter.convert(model, None)
    monkeypatch.setitem(sys.modules, "onnxmltools", None)
    with pytest.raises(UnsupportedModelError, match=r"needs onnxmltools: pip install 'ferry-ml"):
        converter.convert(model, frame)
    monkeypatch.setitem(sys.modules, "pyspark", None)
    with pytest.raises(UnsupportedModelError, match=r"pip install 'ferry-ml\[spark\]'"):
        converter.convert(model, frame)


def test_no_temporary_folders_left(spark: SparkSession, classifier: Any,
                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxmltools saves every tree to a folder it never removes; ferry saves them to
    temporary folders of its own, and leaves `tempfile.tempdir` alone."""
    import tempfile

    from pyspark.ml.classification import DecisionTreeClassifier
    from pyspark.ml.feature import VectorAssembler

    frame, labels = cancer()
    model = fit(spark, frame, (labels == "benign") * 1.0, [
        VectorAssembler(inputCols=NUMBERS, outputCol="features"),
        DecisionTreeClassifier(maxDepth=3)])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    SparkMLConverter().convert(model, frame)

    assert list(tmp_path.iterdir()) == []
    assert tempfile.tempdir == str(tmp_path)


def test_a_saved_pipeline_folder_registers_from_the_command_line_and_batch_scores(
        spark: SparkSession, classifier: Any, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ferry.batch.sinks import open_sink
    from ferry.cli import app

    model, frame = classifier
    model.write().save(str(tmp_path / "pipeline"))
    frame.to_parquet(tmp_path / "sample.parquet")

    result = CliRunner().invoke(app, ["register", str(tmp_path / "pipeline"), "--name",
                                      "cancer_cli", "--sample", str(tmp_path / "sample.parquet")])

    assert result.exit_code == 0, result.output
    run = ferry.batch("cancer_cli", str(tmp_path / "sample.parquet"), str(tmp_path / "out"))
    scored = open_sink(run.output, run.model).read(run.id).column("prediction").to_pylist()
    want = SparkMLConverter().reference(model, frame)[Role.LABEL]
    assert scored == list(want) and run.rows == len(frame)
