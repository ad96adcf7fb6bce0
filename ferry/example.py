"""The example behind `make run`: train a model on data scikit-learn ships, register it,
point `production` at it and predict with it.

Run with `python -m ferry.example`; `FERRY_HOME` decides where the registry lives.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from rich.console import Console
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import ferry
from ferry.registry import ModelVersion, Registry
from ferry.settings import Settings

EXAMPLE_NAME = "breast-cancer"
EXAMPLE_ALIAS = "production"
RANDOM_STATE = 0


def train() -> tuple[Pipeline, pd.DataFrame, pd.DataFrame, pd.Series]:
    data = load_breast_cancer(as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=RANDOM_STATE)
    model = Pipeline([("scale", StandardScaler()),
                      ("classify", LogisticRegression(max_iter=1000))])
    model.fit(x_train, y_train)
    return model, x_train, x_test, y_test


def prepare(registry: Registry) -> ModelVersion:
    """Register the example once; later runs reuse the version `production` points at."""
    if any(m.name == EXAMPLE_NAME for m in registry.models()):
        aliases = registry.aliases(EXAMPLE_NAME)
        if EXAMPLE_ALIAS in aliases:
            return registry.get(f"{EXAMPLE_NAME}@{EXAMPLE_ALIAS}")
    model, x_train, x_test, y_test = train()
    version = ferry.register(
        model, EXAMPLE_NAME, sample=x_train, registry=registry,
        metrics={"accuracy": float(model.score(x_test, y_test))},
        tags={"dataset": "sklearn.datasets.load_breast_cancer"},
        description="StandardScaler + LogisticRegression on the Wisconsin breast cancer data",
    )
    registry.set_alias(EXAMPLE_NAME, EXAMPLE_ALIAS, version.version)
    return version


def main() -> None:
    console = Console()
    registry = Registry()
    with console.status("training and registering the example model..."):
        version = prepare(registry)
    console.print(f"registry: {Settings.from_env().registry_url}")
    console.print(f"[bold]{version.name}:{version.version}[/] is {EXAMPLE_NAME}@{EXAMPLE_ALIAS}"
                  f" (accuracy {version.metrics.get('accuracy', float('nan')):.3f})")
    rows = load_breast_cancer(as_frame=True).data.iloc[:5]
    predictor = ferry.load(f"{EXAMPLE_NAME}@{EXAMPLE_ALIAS}", registry=registry)
    probabilities = predictor.predict_proba(rows)
    for label, proba in zip(predictor.predict(rows), probabilities, strict=True):
        console.print(f"  predicted class {label}  probabilities {np.round(proba, 4).tolist()}")
    console.print(f"inspect it: ferry show {EXAMPLE_NAME}@{EXAMPLE_ALIAS}")


if __name__ == "__main__":
    main()
