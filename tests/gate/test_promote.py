"""The gate end to end on registered versions: `ferry compare`, `ferry promote`, `ferry show`
and `ferry.testing`, on scikit-learn's breast cancer data with real models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

import ferry
from ferry.cli import app
from ferry.gate.checks import Kind, Verdict
from ferry.gate.compare import GateResult
from ferry.gate.performance import TimingSettings
from ferry.registry import Registry
from ferry.testing import assert_gate_passes

QUICK = TimingSettings(calls=150, rounds=5, server=True, server_seconds=0.5)


@pytest.fixture(scope="module")
def gate_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A FERRY_HOME holding `cancer` v1 (a logistic regression, aliased production), v2 (the
    same kind of model trained on other rows), v3 (a network of two 2048-wide layers: as good,
    far slower), and the hold-out rows as Parquet."""
    home = tmp_path_factory.mktemp("gate")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FERRY_HOME", str(home))
        patch.delenv("FERRY_REGISTRY_URL", raising=False)
        patch.delenv("FERRY_ARTIFACTS_URL", raising=False)
        _register_versions(home)
        yield home


def _register_versions(home: Path) -> None:
    frame = load_breast_cancer(as_frame=True).frame
    train, holdout = frame.iloc[:369], frame.iloc[369:]
    features, target = train.drop(columns=["target"]), train["target"]
    half = len(train) // 2
    models = [make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(
                  features.iloc[:half * 2 - 20], target.iloc[:half * 2 - 20]),
              make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=0.8)).fit(
                  features.iloc[20:], target.iloc[20:]),
              make_pipeline(StandardScaler(), MLPClassifier(
                  (2048, 2048), max_iter=8, random_state=0)).fit(features, target)]
    registry = Registry()
    for model in models:  # the network stops early on purpose (ConvergenceWarning)
        ferry.register(model, "cancer", sample=features.iloc[:100], registry=registry)
    registry.set_alias("cancer", "production", 1)
    holdout.to_parquet(home / "holdout.parquet")


@pytest.fixture
def env(gate_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FERRY_HOME", str(gate_home))
    monkeypatch.delenv("FERRY_REGISTRY_URL", raising=False)
    monkeypatch.delenv("FERRY_ARTIFACTS_URL", raising=False)
    return gate_home


def ferry_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), prog_name="ferry")
    return result.exit_code, result.stdout, result.stderr


def test_an_equal_model_passes_and_every_measurement_is_kept(env: Path) -> None:
    result = ferry.compare("cancer:2", "cancer@production", env / "holdout.parquet", "target",
                           timing=QUICK)

    assert result.passed, [c.to_dict() for c in result.failures()]
    kinds = {check.kind for check in result.checks}
    assert {Kind.QUALITY, Kind.NAIVE, Kind.SIGNATURE, Kind.LATENCY, Kind.THROUGHPUT,
            Kind.COST} <= kinds
    assert {c.name for c in result.checks} >= {"latency.server.p99_ms", "cost.serving_per_1000"}
    assert result.data["rows"] == 200 and len(result.data["fingerprint"]) == 64
    assert GateResult.from_dict(json.loads(result.to_json())).checks == result.checks


def test_as_good_but_much_slower_fails_on_latency_only(env: Path) -> None:
    result = ferry.compare("cancer:3", "cancer:1", env / "holdout.parquet", "target",
                           timing=QUICK)

    failed = {check.kind for check in result.failures()}
    assert not result.passed
    assert Kind.LATENCY in failed or Kind.THROUGHPUT in failed
    quality = [c for c in result.checks if c.kind is Kind.QUALITY]
    assert quality and all(c.verdict is not Verdict.FAILED for c in quality)


def test_compare_on_the_command_line_exits_0_or_1_and_writes_the_report(env: Path) -> None:
    code, out, err = ferry_cli("compare", "cancer:2", "cancer:1", "--data",
                               str(env / "holdout.parquet"), "--label", "target", "--no-timing",
                               "--json", "--report", str(env / "gate.html"))
    assert code == 0, err
    assert json.loads(out)["status"] == "passed"
    page = (env / "gate.html").read_text()
    assert "data:image/png;base64," in page and "cancer:2" in page

    code, out, _ = ferry_cli("compare", "cancer:2", "cancer:1", "--data",
                             str(env / "holdout.parquet"), "--label", "target", "--no-timing",
                             "--threshold", "accuracy=0.999")
    assert code == 1 and "quality.accuracy" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--label", "nope"], "no column 'nope'"),
    (["--label", "target", "--slice", "colour"], "no column 'colour'"),
    (["--label", "target", "--threshold", "accuracy"], "METRIC=NUMBER"),
    (["--label", "target", "--price-per-core-hour", "0"], "above 0"),
])
def test_usage_errors_exit_2_with_one_line(env: Path, args: list[str], message: str) -> None:
    code, _, err = ferry_cli("compare", "cancer:2", "cancer:1", "--data",
                             str(env / "holdout.parquet"), "--no-timing", *args)
    assert code == 2 and message in err and "Traceback" not in err


def test_data_that_does_not_fit_the_signature_is_a_usage_error(env: Path) -> None:
    frame = pd.read_parquet(env / "holdout.parquet").iloc[:, :5]
    frame["target"] = 1
    frame.to_parquet(env / "narrow.parquet")
    code, _, err = ferry_cli("compare", "cancer:2", "cancer:1", "--data",
                             str(env / "narrow.parquet"), "--label", "target", "--no-timing")
    assert code == 2 and "columns" in err


def test_a_refused_promotion_leaves_the_alias_and_an_override_is_recorded(env: Path) -> None:
    registry = Registry()
    code, out, _ = ferry_cli("promote", "cancer", "production", "3", "--data",
                             str(env / "holdout.parquet"), "--label", "target", "--json")
    assert code == 1 and json.loads(out)["moved"] is False
    assert registry.aliases("cancer")["production"] == 1

    code, out, err = ferry_cli("promote", "cancer", "production", "3", "--override")
    assert code == 2 and "reason" in err

    code, out, _ = ferry_cli("promote", "cancer", "production", "3", "--override", "--reason",
                             "needed for the holiday traffic", "--no-timing", "--json")
    assert code == 0 and json.loads(out)["moved"] is True
    event = registry.history("cancer")[-1]
    assert (event.event, event.from_version, event.to_version) == ("alias_moved", 1, 3)
    assert event.details["override"] is True
    assert event.details["reason"] == "needed for the holiday traffic"
    registry.set_alias("cancer", "production", 1)


def test_an_honest_improvement_is_promoted_and_show_displays_the_gate(env: Path) -> None:
    registry = Registry()
    code, out, err = ferry_cli("promote", "cancer", "production", "2", "--data",
                               str(env / "holdout.parquet"), "--label", "target", "--no-timing")
    assert code == 0, (out, err)
    assert registry.aliases("cancer")["production"] == 2
    event = registry.history("cancer")[-1]
    assert event.details["gate"] == "passed" and event.details["report"] is not None

    code, out, _ = ferry_cli("show", "cancer:2")
    assert "gate: passed against cancer:1" in out
    code, out, _ = ferry_cli("show", "cancer:2", "--json")
    reports = json.loads(out)["reports"]
    assert reports[-1]["kind"] == "gate" and reports[-1]["status"] == "passed"
    stored = json.loads(registry.read_report(registry.reports("cancer", 2, "gate")[-1]))
    assert stored["candidate"] == "cancer:2" and stored["checks"]
    registry.set_alias("cancer", "production", 1)


def test_the_pytest_helper_raises_with_the_failed_checks(env: Path) -> None:
    assert_gate_passes("cancer:2", "cancer:1", env / "holdout.parquet", "target", timing=None)
    with pytest.raises(AssertionError, match=r"quality\.accuracy: candidate"):
        assert_gate_passes("cancer:2", "cancer:1", env / "holdout.parquet", "target",
                           timing=None, thresholds={"accuracy": _floor(0.999)})


def _floor(value: float) -> object:
    from ferry.gate.conditions import MetricThreshold

    return MetricThreshold(threshold=value, greater_is_better=True)


def test_the_test_suite_runs_robustness_staleness_and_stress_and_is_kept(env: Path) -> None:
    code, out, err = ferry_cli("test", "cancer:1", "--data", str(env / "holdout.parquet"),
                               "--label", "target", "--latency-target-ms", "200",
                               "--cases", str(env / "cases"), "--json")

    assert code == 0, (out, err)
    result = json.loads(out)
    names = {check["name"] for check in result["checks"]}
    assert any(name.startswith("robustness.scale+1%.") for name in names)
    assert {"staleness.age_days", "stress.max_req_s"} <= names
    stress = next(c for c in result["checks"] if c["name"] == "stress.max_req_s")
    assert stress["candidate"] > 0 and stress["detail"]["steps"]
    code, out, _ = ferry_cli("show", "cancer:1")
    assert "test: passed" in out


def test_the_test_suite_refuses_what_it_cannot_run(env: Path) -> None:
    code, _, err = ferry_cli("test", "cancer:1")
    assert code == 2 and "--data" in err
    code, _, err = ferry_cli("test", "cancer:1", "--no-robustness", "--latency-target-ms", "0")
    assert code == 2 and "above 0" in err


def test_staleness_compares_live_labelled_traffic_with_the_registered_metric(
        env: Path) -> None:
    """Captured rows of the last day with labels that disagree with every prediction: the
    live accuracy (0) is far below the registered one (0.95) and the test fails."""
    from datetime import UTC, datetime

    import numpy as np

    from ferry.gate.checks import Verdict
    from ferry.gate.suite import staleness_checks
    from ferry.monitor.events import SampledRows
    from ferry.monitor.store import open_store

    registry = Registry()
    version = registry.get("cancer:1")
    output = next(s.name for s in version.signature.outputs if s.role == "label")
    predicted = np.ones(40, dtype=np.int64)
    with open_store(None) as store:
        store.append_samples([SampledRows(datetime.now(UTC), "live-1", "cancer", 1,
                                          {f"output:{output}": predicted})])
        store.attach_labels("cancer", [("live-1", row, 0) for row in range(40)])

    checks = {c.name: c for c in staleness_checks(
        replace(version, metrics={"accuracy": 0.95}))}

    assert checks["staleness.age_days"].verdict is Verdict.PASSED
    live = checks["staleness.live_accuracy"]
    assert (live.candidate, live.baseline, live.verdict) == (0.0, 0.95, Verdict.FAILED)
