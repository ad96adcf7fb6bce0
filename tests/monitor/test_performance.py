"""Live performance from late labels, compared with the registered metric, and staleness by
age (default and per-version bands) and by decay.

The sampled rows are the real model's inputs and outputs, named as the capture names them;
labels arrive through `ferry.feedback` into a real store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

import ferry
from ferry.errors import InvalidInputError
from ferry.monitor.columns import input_columns, output_columns
from ferry.monitor.events import SampledRows
from ferry.monitor.performance import DECAY_THRESHOLD, MIN_LABELLED_ROWS, live_performance
from ferry.monitor.staleness import Level, staleness
from ferry.monitor.store import MemoryStore
from ferry.registry import ModelVersion, Registry
from ferry.runtime.feeds import to_feeds

ROWS_PER_REQUEST = 10
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def capture(store: MemoryStore, version: ModelVersion, x: np.ndarray) -> np.ndarray:
    """Predict `x` with the registered version and sample every row as the server's capture
    would, ROWS_PER_REQUEST rows per request `r<i>`; the predictions."""
    predictor = ferry.load(version.uri)
    feeds = to_feeds(version.signature, x)
    outputs = predictor.run_feeds(feeds)
    columns = {**input_columns(version.signature, feeds),
               **output_columns(version.signature, outputs)}
    store.append_samples([
        SampledRows(NOW, f"r{start // ROWS_PER_REQUEST}", version.name, version.version,
                    {name: values[start:start + ROWS_PER_REQUEST]
                     for name, values in columns.items()})
        for start in range(0, len(x), ROWS_PER_REQUEST)])
    label_spec = next(spec for spec in version.signature.outputs
                      if spec.role in ("label", "value"))
    return np.asarray(outputs[label_spec.name]).reshape(len(x))


def send_labels(store: MemoryStore, version: ModelVersion, truth: np.ndarray) -> None:
    labels = [(f"r{i // ROWS_PER_REQUEST}", i % ROWS_PER_REQUEST, value.item())
              for i, value in enumerate(truth)]
    ferry.feedback(version.uri, labels, store=store)


def iris_data() -> tuple[np.ndarray, np.ndarray, LogisticRegression]:
    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    return x, y, LogisticRegression(max_iter=500).fit(x, y)


def test_late_labels_give_live_accuracy_against_the_registered_one() -> None:
    x, y, model = iris_data()
    version = ferry.register(model, "iris", sample=x, metrics={"accuracy": 0.96})
    store = MemoryStore()
    predicted = capture(store, version, x)
    assert live_performance(version, store.samples("iris", 1)) is None  # no labels yet

    send_labels(store, version, y)
    live = live_performance(version, store.samples("iris", 1))

    assert live is not None
    assert live["labelled_rows"] == len(x)
    assert live["metrics"]["accuracy"] == pytest.approx(accuracy_score(y, predicted))
    assert live["metrics"]["macro_f1"] == pytest.approx(f1_score(y, predicted, average="macro"))
    assert live["metrics"]["roc_auc"] == pytest.approx(
        roc_auc_score(y, model.predict_proba(x), multi_class="ovr"), abs=1e-4)
    assert live["registered"] == {"accuracy": 0.96}
    assert live["decay"]["accuracy"] == pytest.approx(accuracy_score(y, predicted) / 0.96 - 1)
    assert live["stale_performance"] is False


def test_labels_that_disagree_with_the_model_flag_stale_performance() -> None:
    x, y, model = iris_data()
    version = ferry.register(model, "iris", sample=x, metrics={"accuracy": 0.96, "f1": 0.96})
    store = MemoryStore()
    capture(store, version, x)
    send_labels(store, version, (y + 1) % 3)  # the world moved: every class shifted

    live = live_performance(version, store.samples("iris", 1))

    assert live is not None
    assert live["metrics"]["accuracy"] < 0.1
    assert live["worse"] == ["accuracy", "macro_f1"]  # `f1` registered, macro F1 compared
    assert live["decay"]["accuracy"] < -DECAY_THRESHOLD
    assert live["stale_performance"] is True


def test_a_few_labels_report_metrics_but_judge_nothing() -> None:
    x, y, model = iris_data()
    version = ferry.register(model, "iris", sample=x, metrics={"accuracy": 0.96})
    store = MemoryStore()
    capture(store, version, x)
    few = MIN_LABELLED_ROWS - 1
    ferry.feedback(version.uri, [(f"r{i // 10}", i % 10, int((y[i] + 1) % 3))
                                 for i in range(few)], store=store)

    live = live_performance(version, store.samples("iris", 1))

    assert live is not None and live["labelled_rows"] == few
    assert live["worse"] == ["accuracy"]
    assert live["enough_labels"] is False and live["stale_performance"] is False


def test_late_labels_give_live_rmse_and_mae_for_a_regressor() -> None:
    x, y = load_diabetes(return_X_y=True)
    x = x.astype(np.float32)
    model = Ridge(alpha=0.1).fit(x, y)
    train_rmse = float(np.sqrt(np.mean((model.predict(x) - y) ** 2)))
    version = ferry.register(model, "diabetes", sample=x, metrics={"rmse": train_rmse * 0.8})
    store = MemoryStore()
    predicted = capture(store, version, x[:200])
    send_labels(store, version, y[:200])

    live = live_performance(version, store.samples("diabetes", 1))

    assert live is not None and live["task"] == "regression"
    errors = predicted - y[:200]
    assert live["metrics"]["rmse"] == pytest.approx(np.sqrt(np.mean(errors ** 2)), rel=1e-5)
    assert live["metrics"]["mae"] == pytest.approx(np.mean(np.abs(errors)), rel=1e-5)
    assert live["decay"]["rmse"] < -DECAY_THRESHOLD  # a larger error is a decay
    assert live["worse"] == ["rmse"] and live["stale_performance"] is True


def test_a_regressor_refuses_labels_that_are_not_numbers() -> None:
    x, y = load_diabetes(return_X_y=True)
    version = ferry.register(Ridge().fit(x, y), "diabetes", sample=x.astype(np.float32))
    store = MemoryStore()
    capture(store, version, x[:10].astype(np.float32))
    with pytest.raises(InvalidInputError, match="finite number"):
        ferry.feedback(version.uri, [("r0", 0, "high")], store=store)
    with pytest.raises(InvalidInputError, match="finite number"):
        ferry.feedback(version.uri, {"labels": [{"id": "r0", "label": float("nan")}]},
                       store=store)


# -- staleness -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> ModelVersion:
    root = tmp_path_factory.mktemp("staleness")
    registry = Registry(f"sqlite:///{root / 'registry.db'}", artifacts_url=str(root / "art"))
    x, _, model = iris_data()
    return ferry.register(model, "iris", sample=x[:20], registry=registry)


@pytest.fixture
def version_with(registered: ModelVersion) -> Callable[..., ModelVersion]:
    """The registered version, created at NOW, with `tags`."""
    return lambda **tags: replace(registered, created_at=NOW, tags=tags)


@pytest.mark.parametrize(("days", "level"), [(0, Level.OK), (29.9, Level.OK), (30, Level.WARN),
                                             (89, Level.WARN), (90, Level.CRITICAL)])
def test_age_bands_by_default(version_with: Callable[..., ModelVersion], days: float,
                              level: Level) -> None:
    found = staleness(version_with(), now=NOW + timedelta(days=days))
    assert found.level == level
    assert found.age_days == pytest.approx(days)
    assert (found.warn_days, found.critical_days) == (30, 90)


def test_tags_set_the_bands_per_model_and_0_turns_one_off(
        version_with: Callable[..., ModelVersion]) -> None:
    x, _, model = iris_data()
    version = replace(ferry.register(model, "iris", sample=x[:20], tags={
        "staleness_warn_days": "7", "staleness_critical_days": 14}), created_at=NOW)
    assert staleness(version, now=NOW + timedelta(days=8)).level == Level.WARN
    assert staleness(version, now=NOW + timedelta(days=15)).level == Level.CRITICAL

    no_warning = version_with(staleness_warn_days=0)
    assert staleness(no_warning, now=NOW + timedelta(days=60)).level == Level.OK
    assert staleness(no_warning, now=NOW + timedelta(days=90)).level == Level.CRITICAL

    never = version_with(staleness_warn_days=0, staleness_critical_days=0)
    assert staleness(never, now=NOW + timedelta(days=3650)).to_dict()["level"] == "ok"


def test_a_tag_that_is_not_a_number_of_days_is_refused_by_name(
        version_with: Callable[..., ModelVersion]) -> None:
    with pytest.raises(InvalidInputError, match="staleness_warn_days"):
        staleness(version_with(staleness_warn_days="soon"), now=NOW)
    with pytest.raises(InvalidInputError, match="staleness_critical_days"):
        staleness(version_with(staleness_critical_days=-1), now=NOW)


def test_staleness_carries_the_performance_decay(
        version_with: Callable[..., ModelVersion]) -> None:
    performance = {"decay": {"accuracy": -0.2}, "stale_performance": True}
    found = staleness(version_with(), now=NOW + timedelta(days=1), performance=performance)
    assert found.level == Level.OK and found.stale_performance is True
    assert found.to_dict()["decay"] == {"accuracy": -0.2}
    assert staleness(version_with(), now=NOW).stale_performance is False


def test_staleness_defaults_to_the_current_time(registered: ModelVersion) -> None:
    age = (datetime.now(UTC) - registered.created_at) / timedelta(days=1)
    assert staleness(registered).age_days == pytest.approx(age, abs=0.01)
