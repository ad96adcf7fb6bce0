"""`ferry.optimizer` end to end on real models: candidates built, gated against the original,
timed, the winner registered and then used by `ferry.load` and `ferry serve`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from optimize_helpers import FAST
from sklearn.datasets import load_breast_cancer
from sklearn.neural_network import MLPClassifier
from typer.testing import CliRunner

import ferry
from ferry.cli import app
from ferry.optimizer import (
    BuiltCandidate,
    Candidate,
    Gate,
    OptimizeContext,
    Precision,
    SearchProgress,
    Threads,
    optimize,
)
from ferry.optimizer.candidates.onnxruntime import (
    OnnxRuntimeAsServed,
    OnnxRuntimeDynamicInt8,
    OnnxRuntimeOffline,
    built_on_ort,
)
from ferry.optimizer.search import Status
from ferry.registry import Registry
from ferry.runtime.onnx_runtime import OnnxPredictor
from ferry.serve.server import serve_in_thread


@pytest.fixture(scope="module")
def mlp_data() -> tuple[MLPClassifier, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    x = (x / x.max(axis=0)).astype(np.float32)
    return MLPClassifier((32,), max_iter=400, random_state=0).fit(x, y), x


@pytest.fixture
def registered(mlp_data: tuple[MLPClassifier, np.ndarray], sqlite_registry: Registry) -> str:
    model, x = mlp_data
    return ferry.register(model, "mlp", sample=x, registry=sqlite_registry).uri


class ScaledWeights(Candidate):
    """A broken optimization: every weight scaled by 1.5, so its answers change."""

    name = "scaled-weights"
    precision = Precision.EXACT
    description = "weights scaled (wrong on purpose)"

    def unavailable(self, context: OptimizeContext) -> str | None:
        return None

    def build(self, context: OptimizeContext, threads: Threads) -> BuiltCandidate:
        assert context.onnx is not None
        model = onnx.load_from_string(context.onnx)
        for tensor in model.graph.initializer:
            values = numpy_helper.to_array(tensor)
            if values.dtype == np.float32 and values.size > 1:
                tensor.CopyFrom(numpy_helper.from_array(values * 1.5, tensor.name))
        return built_on_ort(context, model.SerializeToString(), threads, rewritten=True)


def test_optimized_version_predicts_like_its_parent_and_is_recorded(
        registered: str, sqlite_registry: Registry, tmp_path: Path,
        mlp_data: tuple[MLPClassifier, np.ndarray]) -> None:
    result = optimize(registered, batch_sizes=(1, 16), threads=1, registry=sqlite_registry,
                      timing=FAST, candidates=[OnnxRuntimeAsServed(), OnnxRuntimeOffline()],
                      report=tmp_path / "report.md")

    assert result.version is not None and result.chosen is not None
    new = result.version
    assert new.parent_version == 1 and new.version == 2
    assert new.lineage["optimized_from"] == "mlp:1"
    assert new.runtime_settings["onnxruntime"]["intra_op_threads"] == 1
    assert new.conversion_check["equivalence_gate"]["passed"] is True
    assert set(result.chosen.timings) == {1, 16}
    assert result.baseline[1].median_s > 0 and result.chosen.timings[1].speedup is not None
    _, x = mlp_data
    parent, child = ferry.load("mlp:1", registry=sqlite_registry), \
        ferry.load(new.uri, registry=sqlite_registry)
    assert isinstance(child, OnnxPredictor) and child.settings.intra_op_threads == 1
    np.testing.assert_allclose(child.predict_proba(x), parent.predict_proba(x), atol=1e-5)
    assert (child.predict(x) == parent.predict(x)).all()
    text = (tmp_path / "report.md").read_text()
    assert "onnxruntime-offline" in text and "original (sklearn predict_proba)" in text
    assert (tmp_path / "report.png").stat().st_size > 1000
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["version"] == "mlp:2" and len(data["candidates"]) == 2


def test_candidate_breaking_equivalence_is_refused_and_reported(
        registered: str, sqlite_registry: Registry, tmp_path: Path) -> None:
    result = optimize(registered, threads=1, registry=sqlite_registry, timing=FAST,
                      candidates=[ScaledWeights(), OnnxRuntimeAsServed()],
                      report=tmp_path / "r.md")

    broken = next(c for c in result.candidates if c.name == "scaled-weights")
    assert broken.status == Status.FAILED_GATE
    assert broken.verdict is not None and not broken.verdict.passed
    assert "FAILS" in broken.reason
    assert result.chosen is not None and result.chosen.name == "onnxruntime"
    assert "FAIL gate" in (tmp_path / "r.md").read_text()


def test_only_failing_candidates_register_nothing(registered: str,
                                                   sqlite_registry: Registry) -> None:
    result = optimize(registered, threads=1, registry=sqlite_registry, timing=FAST,
                      candidates=[ScaledWeights()])

    assert result.chosen is None and result.version is None
    assert [v.version for v in sqlite_registry.versions("mlp")] == [1]


def test_lossy_gate_is_the_users_to_tighten(registered: str, sqlite_registry: Registry) -> None:
    default = optimize(registered, threads=1, registry=sqlite_registry, timing=FAST,
                       candidates=[OnnxRuntimeDynamicInt8()], register=False)
    strict = optimize(registered, threads=1, registry=sqlite_registry, timing=FAST,
                      candidates=[OnnxRuntimeDynamicInt8()], register=False,
                      gate=Gate(lossy_probability_p999=1e-7))
    lossless = optimize(registered, threads=1, registry=sqlite_registry, timing=FAST,
                        candidates=[OnnxRuntimeDynamicInt8()], register=False,
                        lossless_only=True)

    assert default.candidates[0].status == Status.PASSED
    assert default.candidates[0].precision == "lossy"
    assert strict.candidates[0].status == Status.FAILED_GATE
    assert "p99.9_abs_error" in strict.candidates[0].reason
    assert lossless.candidates[0].status == Status.SKIPPED


def test_validation_labels_bound_the_accuracy_drop(
        registered: str, sqlite_registry: Registry) -> None:
    x, y = load_breast_cancer(return_X_y=True)
    x = (x / x.max(axis=0)).astype(np.float32)
    result = optimize(registered, threads=1, registry=sqlite_registry, timing=FAST,
                      candidates=[OnnxRuntimeAsServed()], register=False, validation=(x, y))

    verdict = result.candidates[0].verdict
    assert verdict is not None and verdict.rows == len(x)
    drop = next(m for m in verdict.measures if m.metric == "accuracy_drop")
    assert drop.value == 0 and drop.passed


class Interrupting(SearchProgress):
    def __init__(self) -> None:
        self.steps = 0

    def advance(self, description: str) -> None:
        self.steps += 1
        if description.startswith("timing"):
            raise KeyboardInterrupt


def test_interrupted_search_leaves_the_registry_as_it_was(registered: str,
                                                          sqlite_registry: Registry) -> None:
    with pytest.raises(KeyboardInterrupt):
        optimize(registered, threads=1, registry=sqlite_registry, timing=FAST,
                 candidates=[OnnxRuntimeOffline()], progress=Interrupting())

    assert [v.version for v in sqlite_registry.versions("mlp")] == [1]


def test_served_optimized_version_runs_with_its_recorded_settings(
        registered: str, sqlite_registry: Registry) -> None:
    result = optimize(registered, threads=1, registry=sqlite_registry, timing=FAST,
                      candidates=[OnnxRuntimeOffline()])
    assert result.version is not None
    running = serve_in_thread([result.version.uri], registry=sqlite_registry, grpc_port=None)
    try:
        served = running.server.repository.get("mlp", "2")
        predictor = served.predictor
        assert isinstance(predictor, OnnxPredictor)
        assert predictor.settings.graph_optimization == "all"
        assert predictor.onnx_bytes == sqlite_registry.read_artifact(result.version, "onnx")
        assert predictor.onnx_bytes != sqlite_registry.read_artifact(
            sqlite_registry.get("mlp:1"), "onnx")
    finally:
        running.stop()


def test_cli_optimize_registers_and_reports(mlp_data: tuple[MLPClassifier, np.ndarray],
                                            tmp_path: Path) -> None:
    model, x = mlp_data
    ferry.register(model, "mlp", sample=x)  # the default registry, under this test's FERRY_HOME
    report = tmp_path / "out" / "mlp.md"

    result = CliRunner().invoke(app, ["optimize", "mlp", "--threads", "1", "--lossless-only",
                                      "--batch-size", "1", "--report", str(report), "--json"])

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["version"] == "mlp:2" and data["chosen"]
    assert all(c["precision"] == "exact" or c["status"] == "skipped"
               for c in data["candidates"])
    assert report.exists() and report.with_suffix(".png").exists()
    assert ferry.Registry().get("mlp:2").parent_version == 1


@pytest.mark.parametrize(("args", "message", "code"), [
    (["optimize", "mlp", "--batch-size", "one"], "--batch-size", 2),
    (["optimize", "mlp", "--batch-sizes", "1,0"], "--batch-size", 2),
    (["optimize", "mlp", "--tolerance", "nope=1"], "KEY=VALUE", 2),
    (["optimize", "mlp", "--tolerance", "rtol=big"], "not a number", 2),
    (["optimize", "mlp", "--threads", "0"], "--threads", 2),
    (["optimize", "absent"], "absent", 1),
])
def test_cli_optimize_mistakes_exit_2_failures_1_with_one_line(args: list[str], message: str,
                                                               code: int) -> None:
    result = CliRunner().invoke(app, args)

    assert result.exit_code == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_gate_on_logits_measures_cosine_agreement_and_accuracy() -> None:
    from ferry.optimizer.equivalence import judge
    from ferry.signature import Role, Task

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 10))
    truth = logits.argmax(axis=1)
    truth[:10] = (truth[:10] + 1) % 10  # the original gets 95 % right
    noisy = logits + rng.normal(scale=0.02, size=logits.shape)

    exact = judge({Role.VALUE: logits}, {Role.VALUE: logits.copy()}, Precision.EXACT,
                  Task.OTHER, Gate(), truth)
    lossy = judge({Role.VALUE: logits}, {Role.VALUE: noisy}, Precision.LOSSY, Task.OTHER,
                  Gate(), truth)
    shuffled = judge({Role.VALUE: logits}, {Role.VALUE: logits[::-1]}, Precision.LOSSY,
                     Task.OTHER, Gate(), truth)

    metrics = {m.metric: m for m in exact.measures}
    assert exact.passed and metrics["min_cosine"].value == pytest.approx(1.0)
    assert metrics["label_agreement"].value == 1.0 and metrics["accuracy_drop"].value == 0.0
    lossy_metrics = {m.metric: m for m in lossy.measures}
    assert lossy_metrics["min_cosine"].value > 0.99
    assert lossy_metrics["label_agreement"].value < 1.0
    assert not shuffled.passed
    assert {m.metric for m in shuffled.failures()} >= {"min_cosine", "label_agreement",
                                                       "accuracy_drop"}


@pytest.mark.parametrize("engine", ["tl2cgen", "openvino-int8"])
def test_optimized_tree_and_openvino_versions_are_served_over_http(
        engine: str, sqlite_registry: Registry) -> None:
    import tritonclient.http as triton_http
    from sklearn.ensemble import RandomForestClassifier

    from ferry.optimizer.candidates import candidates

    x, y = load_breast_cancer(return_X_y=True)
    x = (x / x.max(axis=0)).astype(np.float32)
    model = (RandomForestClassifier(20, max_depth=6, random_state=0) if engine == "tl2cgen"
             else MLPClassifier((32,), max_iter=400, random_state=0)).fit(x, y)
    ferry.register(model, "m", sample=x, registry=sqlite_registry)
    chosen = [c for c in candidates() if c.name == engine]
    result = optimize("m:1", threads=1, batch_sizes=(1,), registry=sqlite_registry,
                      timing=FAST, candidates=chosen)
    assert result.version is not None, result.candidates[0].reason
    assert result.version.runtime == ("tl2cgen" if engine == "tl2cgen" else "openvino")

    running = serve_in_thread(["m:2"], registry=sqlite_registry, grpc_port=None)
    try:
        client = triton_http.InferenceServerClient(running.http_url.removeprefix("http://"))
        tensor = triton_http.InferInput("X", list(x[:64].shape), "FP32")
        tensor.set_data_from_numpy(x[:64], binary_data=True)
        answer = client.infer("m", [tensor], model_version="2")
        served = answer.as_numpy("probabilities")
    finally:
        running.stop()
    parent = ferry.load("m:1", registry=sqlite_registry).predict_proba(x[:64])
    tolerance = 1e-5 if engine == "tl2cgen" else 0.1
    np.testing.assert_allclose(served, parent, atol=tolerance)
    assert (answer.as_numpy("label") == ferry.load("m:1", registry=sqlite_registry)
            .predict(x[:64])).mean() >= 0.95
