"""Models and datasets for the batch tests: a registered classifier and a regressor, their
rows with an `id` key and a `city` column, written as Parquet, CSV or JSON lines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import Ridge

import ferry
from ferry.batch.sinks import open_sink
from ferry.registry import BatchRun

FEATURES = [f"x{i}" for i in range(6)]


def rows(count: int = 3000, seed: int = 0) -> pd.DataFrame:
    """`id`, `city` and six features."""
    x, _ = make_classification(count, n_features=len(FEATURES), random_state=seed)
    frame = pd.DataFrame(x, columns=FEATURES)
    frame.insert(0, "id", np.arange(count, dtype=np.int64) + seed * 1_000_000)
    frame["city"] = np.where(frame["x0"] > 0, "Lyon", "Oslo")
    return frame


def register_classifier(name: str = "churn", trees: int = 10, seed: int = 0) -> pd.DataFrame:
    """Registers a gradient-boosting classifier on `rows()` features; returns its rows."""
    x, y = make_classification(2000, n_features=len(FEATURES), random_state=seed)
    train = pd.DataFrame(x, columns=FEATURES)
    model = GradientBoostingClassifier(n_estimators=trees, random_state=seed).fit(train, y)
    ferry.register(model, name, sample=train.head(50))
    return rows()


def register_regressor(name: str = "price") -> None:
    x, y = make_regression(500, n_features=len(FEATURES), random_state=1)
    train = pd.DataFrame(x, columns=FEATURES)
    ferry.register(Ridge().fit(train, y), name, sample=train.head(50))


def write_parts(frame: pd.DataFrame, folder: Path, files: int, suffix: str = ".parquet") -> Path:
    """`frame` split over `files` files in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, len(frame), files + 1).astype(int)
    for index in range(files):
        part = frame.iloc[bounds[index]:bounds[index + 1]]
        write(part, folder / f"part-{index:03d}{suffix}")
    return folder


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path, index=False, row_group_size=1000)
    return path


def run_rows(run: BatchRun) -> pd.DataFrame:
    """The rows `run` published, in key order."""
    table = open_sink(run.output, run.model).read(run.id).to_pandas()
    return table.sort_values("id").reset_index(drop=True)


def assert_scored(run: BatchRun, frame: pd.DataFrame, uri: str = "churn") -> None:
    """`run` published one row per input row, equal to `ferry.load(uri)`'s predictions."""
    got = run_rows(run)
    expected = frame.sort_values("id").reset_index(drop=True)
    assert run.rows == len(frame) == len(got)
    np.testing.assert_array_equal(got["id"], expected["id"])
    predictor = ferry.load(uri)
    np.testing.assert_array_equal(got["prediction"], predictor.predict(expected[FEATURES]))
    if "proba_1" in got:
        np.testing.assert_allclose(got["proba_1"],
                                   predictor.predict_proba(expected[FEATURES])[:, 1], rtol=1e-6)
    assert set(got["run_id"]) == {run.id}
    assert set(got["version"]) == {run.version}
