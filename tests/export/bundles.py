"""Small registered models of every family, and their export bundles.

`family_bundles(root)` registers the five families in the current registry (`$FERRY_HOME`)
and exports each into `root/<family>`; it needs no pytest fixture, only FERRY_HOME set:

    bundles = family_bundles(tmp_path)       # {"sklearn": tmp_path / "sklearn", ...}

The models are small (a few trees, a few hundred rows) so that every family registers and
exports in a few seconds. `register_family` registers one family and returns the version and
the rows it was registered with (for tests that compare the bundle with `ferry.load`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import ferry
from ferry.registry import ModelVersion, Registry

SEED = 0
FAMILIES = ("sklearn", "xgboost", "lightgbm", "pytorch", "pmml")
"""The bundle folders `family_bundles` writes, one per family."""


@dataclass(frozen=True)
class Trained:
    """A model ready to register: what `ferry.register` takes, and its rows."""

    model: Any
    rows: Any
    register_kwargs: dict[str, Any]


def _churn_frame(rows: int = 300) -> tuple[pd.DataFrame, np.ndarray]:
    """Numbers and a string column, like a customer table."""
    rng = np.random.default_rng(SEED)
    frame = pd.DataFrame({
        "age": rng.integers(18, 80, rows).astype(float),
        "monthly_spend": rng.normal(50, 15, rows),
        "plan": rng.choice(["basic", "pro", "team"], rows),
    })
    score = (frame.age > 45).astype(int) + (frame.plan == "basic") + rng.normal(0, 0.3, rows)
    return frame, np.where(score > 0.8, "churn", "stay")


def sklearn_pipeline(_: Path) -> Trained:
    """A scikit-learn pipeline over a string column: one [batch, 1] input per column."""
    frame, target = _churn_frame()
    model = Pipeline([
        ("preprocess", ColumnTransformer([
            ("numeric", StandardScaler(), ["age", "monthly_spend"]),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), ["plan"])])),
        ("classify", LogisticRegression()),
    ]).fit(frame, target)
    return Trained(model, frame, {"sample": frame})


def _cancer(rows: int = 200) -> tuple[pd.DataFrame, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return x.iloc[:rows].astype(np.float32), y.to_numpy()[:rows]


def xgboost_classifier(_: Path) -> Trained:
    from xgboost import XGBClassifier

    x, y = _cancer()
    model = XGBClassifier(n_estimators=5, max_depth=3, n_jobs=1, random_state=SEED)
    return Trained(model.fit(x, y), x, {"sample": x})


def lightgbm_classifier(_: Path) -> Trained:
    from lightgbm import LGBMClassifier

    x, y = _cancer()
    model = LGBMClassifier(n_estimators=5, num_leaves=7, n_jobs=1, verbose=-1,
                           random_state=SEED)
    return Trained(model.fit(x, y), x, {"sample": x})


def torch_regressor(_: Path) -> Trained:
    """A small nn.Sequential regressor on the diabetes data (scaled, float32)."""
    import torch

    torch.manual_seed(SEED)
    x = load_diabetes(return_X_y=True)[0][:200].astype(np.float32)
    module = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.ReLU(),
                                 torch.nn.Linear(16, 1)).eval()
    return Trained(module, x, {"example_input": x})


def pmml_classifier(directory: Path) -> Trained:
    """A decision tree on iris written as PMML by nyoka, read back as a PMML document."""
    from nyoka import skl_to_pmml
    from sklearn.tree import DecisionTreeClassifier

    from ferry.convert.pmml import PmmlConverter

    data = load_iris(as_frame=True)
    x = data.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    pipeline = Pipeline([("model", DecisionTreeClassifier(max_depth=3, random_state=SEED))])
    pipeline.fit(x, data.target)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "iris.pmml"
    skl_to_pmml(pipeline, list(x.columns), "species", str(path))
    return Trained(PmmlConverter().read_file(path), x, {"sample": x})


TRAIN: dict[str, Callable[[Path], Trained]] = {
    "sklearn": sklearn_pipeline, "xgboost": xgboost_classifier,
    "lightgbm": lightgbm_classifier, "pytorch": torch_regressor, "pmml": pmml_classifier,
}
"""How each family's model is made; the PMML one writes its file under the given folder."""


def register_family(family: str, workdir: Path,
                    registry: Registry | None = None) -> tuple[ModelVersion, Trained]:
    """Register `family`'s model as `export-<family>` and return the version and model."""
    import warnings

    trained = TRAIN[family](workdir / "sources" / family)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        version = ferry.register(trained.model, f"export-{family}", registry=registry,
                                 **trained.register_kwargs)
    return version, trained


def family_bundles(root: Path) -> dict[str, Path]:
    """Register every family in the current registry and export each into `root/<family>`."""
    import tempfile

    from ferry.export import export_bundle

    registry = Registry()
    try:
        bundles = {}
        with tempfile.TemporaryDirectory(prefix="ferry-families-") as workdir:
            for family in FAMILIES:
                version, _ = register_family(family, Path(workdir), registry)
                export_bundle(version.uri, root / family, registry=registry)
                bundles[family] = root / family
        return bundles
    finally:
        registry.close()
