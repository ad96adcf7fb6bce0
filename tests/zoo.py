"""One small trained model per supported family, on data scikit-learn ships.

Used by the end-to-end tests and by `bench/conversion_check.py`. Each case gives the model to
register, the keyword arguments for `ferry.register`, held-out rows, and the original's own
predictions on them (what `ferry.load(uri).predict` must match).

The HistGradientBoosting and LightGBM cases hold float32 data: those frameworks compare a
feature's double with a double threshold, while ferry's graphs take float32 (a float64 input
is cast at the edge). On float32 values the ONNX form decides exactly as the original; a
float64 value within half a float32 step of a threshold may not (see `ferry.convert.trees`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

SEED = 0


@dataclass
class Case:
    """A trained model ready to register, and what its predictions must be."""

    family: str
    model: Any
    held_out: Any
    expected: np.ndarray
    expected_proba: np.ndarray | None = None
    register_kwargs: dict[str, Any] = field(default_factory=dict)


def _split(x: Any, y: Any) -> tuple[Any, Any, Any, Any]:
    return train_test_split(x, y, test_size=0.3, random_state=SEED)  # type: ignore[no-any-return]


def _float32_split(x: pd.DataFrame, y: Any) -> tuple[Any, Any, Any, Any]:
    """A split of float32 data, as ferry serves it (see the module docstring)."""
    return _split(x.astype(np.float32), y)


def _classifier_case(family: str, model: Any, x_train: Any, x_test: Any,
                     **kwargs: Any) -> Case:
    return Case(family, model, x_test, model.predict(x_test), model.predict_proba(x_test),
                register_kwargs={"sample": x_train, **kwargs})


def churn_frame(rows: int, seed: int = SEED) -> tuple[pd.DataFrame, pd.Series]:
    """Numbers and strings, with missing values, like a customer table."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.integers(18, 80, rows).astype(float),
        "monthly_spend": rng.normal(50, 15, rows),
        "plan": rng.choice(["basic", "pro", "team"], rows),
        "region": rng.choice(["north", "south", "east"], rows),
    })
    frame.loc[::13, "monthly_spend"] = np.nan
    score = (frame.age > 45).astype(int) + (frame.plan == "basic") + rng.normal(0, 0.3, rows)
    return frame, pd.Series(np.where(score > 0.8, "churn", "stay"), name="churned")


def sklearn_pipeline() -> Case:
    frame, churned = churn_frame(800)
    target = churned.to_numpy()
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    model = Pipeline([
        ("preprocess", ColumnTransformer([
            ("numeric", numeric, ["age", "monthly_spend"]),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), ["plan", "region"])])),
        ("classify", LogisticRegression()),
    ])
    x_train, x_test, y_train, _ = _split(frame, target)
    return _classifier_case("sklearn pipeline", model.fit(x_train, y_train), x_train, x_test)


def random_forest_regressor() -> Case:
    x_train, x_test, y_train, _ = _split(*load_diabetes(return_X_y=True, as_frame=True))
    model = RandomForestRegressor(n_estimators=100, random_state=SEED).fit(x_train, y_train)
    return Case("sklearn RandomForestRegressor", model, x_test, model.predict(x_test),
                register_kwargs={"sample": x_train})


def hist_gradient_boosting() -> Case:
    x_train, x_test, y_train, _ = _float32_split(*load_breast_cancer(return_X_y=True,
                                                                      as_frame=True))
    model = HistGradientBoostingClassifier(max_iter=100, random_state=SEED)
    return _classifier_case("sklearn HistGradientBoostingClassifier",
                            model.fit(x_train, y_train), x_train, x_test)


def xgboost_classifier() -> Case:
    from xgboost import XGBClassifier

    x_train, x_test, y_train, _ = _split(*load_breast_cancer(return_X_y=True, as_frame=True))
    model = XGBClassifier(n_estimators=100, max_depth=4, n_jobs=1, random_state=SEED)
    return _classifier_case("XGBoost XGBClassifier", model.fit(x_train, y_train), x_train,
                            x_test)


def lightgbm_regressor() -> Case:
    from lightgbm import LGBMRegressor

    x_train, x_test, y_train, _ = _float32_split(*load_diabetes(return_X_y=True, as_frame=True))
    model = LGBMRegressor(n_estimators=50, n_jobs=1, verbose=-1, random_state=SEED)
    model.fit(x_train, y_train)
    return Case("LightGBM LGBMRegressor", model, x_test, model.predict(x_test),
                register_kwargs={"sample": x_train})


def _train_torch(module: Any, x: np.ndarray, y: np.ndarray, epochs: int) -> Any:
    import torch

    torch.manual_seed(SEED)
    optimiser = torch.optim.Adam(module.parameters(), lr=1e-2)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    module.train()
    for _ in range(epochs):
        for start in range(0, len(x), 64):
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(module(inputs[start:start + 64]),
                                                     targets[start:start + 64])
            loss.backward()
            optimiser.step()
    return module.eval()


def _torch_case(family: str, module: Any, x: np.ndarray, y: np.ndarray, epochs: int) -> Case:
    import torch

    x_train, x_test, y_train, _ = _split(x, y)
    model = _train_torch(module, x_train, y_train, epochs)
    with torch.no_grad():
        expected = model(torch.from_numpy(x_test)).numpy()
    return Case(family, model, x_test, expected,
                register_kwargs={"example_input": x_train[:64]})


def torch_mlp() -> Case:
    import torch

    torch.manual_seed(SEED)
    data = load_breast_cancer()
    x = StandardScaler().fit_transform(data.data).astype(np.float32)
    module = torch.nn.Sequential(torch.nn.Linear(30, 64), torch.nn.ReLU(),
                                 torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                 torch.nn.Linear(32, 2))
    return _torch_case("PyTorch MLP", module, x, data.target.astype(np.int64), epochs=10)


def torch_cnn() -> Case:
    import torch

    torch.manual_seed(SEED)
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, np.newaxis, :, :]
    module = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(16 * 2 * 2, 10))
    return _torch_case("PyTorch CNN", module, x, digits.target.astype(np.int64), epochs=5)


def onnx_file(directory: Path) -> Case:
    from skl2onnx import to_onnx

    from ferry.convert.onnx_file import OnnxConverter

    x, y = load_iris(return_X_y=True)
    x_train, x_test, y_train, _ = _split(x.astype(np.float32), y)
    original = LogisticRegression(max_iter=500).fit(x_train, y_train)
    path = directory / "iris.onnx"
    path.write_bytes(to_onnx(original, x_train[:1], options={"zipmap": False})
                     .SerializeToString())
    model = OnnxConverter().read_file(path)
    return Case("ONNX file", model, x_test, original.predict(x_test),
                original.predict_proba(x_test), register_kwargs={"sample": x_train})


def pmml_file(directory: Path) -> Case:
    from nyoka import skl_to_pmml

    from ferry.convert.pmml import PmmlConverter

    data = load_iris(as_frame=True)
    x = data.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    x_train, x_test, y_train, _ = _split(x, data.target)
    original = RandomForestClassifier(n_estimators=20, max_depth=5, random_state=SEED)
    pipeline = Pipeline([("model", original)]).fit(x_train, y_train)
    path = directory / "iris.pmml"
    skl_to_pmml(pipeline, list(x.columns), "species", str(path))
    model = PmmlConverter().read_file(path)
    return Case("PMML file (random forest)", model, x_test, original.predict(x_test),
                original.predict_proba(x_test), register_kwargs={"sample": x_train})


IN_MEMORY: dict[str, Callable[[], Case]] = {
    "sklearn_pipeline": sklearn_pipeline,
    "random_forest_regressor": random_forest_regressor,
    "hist_gradient_boosting": hist_gradient_boosting,
    "xgboost_classifier": xgboost_classifier,
    "lightgbm_regressor": lightgbm_regressor,
    "torch_mlp": torch_mlp,
    "torch_cnn": torch_cnn,
}
FROM_FILES: dict[str, Callable[[Path], Case]] = {"onnx_file": onnx_file, "pmml_file": pmml_file}
