"""Concurrent registration from separate processes, on SQLite and on PostgreSQL.

Each worker is a fresh interpreter (multiprocessing's "spawn" context), opens its own
`Registry` on the test's database, stores its artifacts first and then waits on a barrier,
so that the metadata writes of both processes start at the same moment.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ferry.registry import Registry, Runtime, VersionDraft
from ferry.signature import Role, Signature, Task, TensorSpec

SPAWN = multiprocessing.get_context("spawn")
WORKERS = 2
JOIN_TIMEOUT_S = 180
SIGNATURE = Signature(inputs=(TensorSpec("X", "float32", (-1, 4)),),
                      outputs=(TensorSpec("label", "int64", (-1,), Role.LABEL),))


@dataclass(frozen=True)
class Outcome:
    """What a worker did: the version numbers it got, and when its writes started and ended."""

    numbers: list[int]
    start: float
    end: float


# -- workers (module level, so that spawned processes can import them) -------------------------


def _draft(registry: Registry, payload: bytes) -> VersionDraft:
    return VersionDraft(framework="sklearn", framework_version="1.0",
                        task=Task.CLASSIFICATION, runtime=Runtime.NATIVE,
                        original_sha256=registry.artifacts.put(payload),
                        original_format="joblib", signature=SIGNATURE)


def _create_many(url: str, artifacts_url: str, worker: int, name: str, count: int,
                 barrier: Any) -> Outcome:
    registry = Registry(url, artifacts_url=artifacts_url, actor=f"worker-{worker}")
    try:
        drafts = [_draft(registry, f"worker-{worker}-{i}".encode()) for i in range(count)]
        registry.models()  # connected and migrated before the start line
        barrier.wait(timeout=JOIN_TIMEOUT_S)
        start = time.time()
        numbers = [registry.create_version(name, draft).version for draft in drafts]
        return Outcome(numbers, start, time.time())
    finally:
        registry.close()


def _create_first_versions(url: str, artifacts_url: str, worker: int, names: list[str],
                           barrier: Any) -> Outcome:
    """Open a registry nobody has migrated yet, then race on brand-new models, one a round."""
    registry = Registry(url, artifacts_url=artifacts_url, actor=f"worker-{worker}")
    try:
        drafts = [_draft(registry, f"worker-{worker}-{n}".encode()) for n in names]
        barrier.wait(timeout=JOIN_TIMEOUT_S)
        start, numbers = time.time(), []
        for name, draft in zip(names, drafts, strict=True):
            barrier.wait(timeout=JOIN_TIMEOUT_S)
            numbers.append(registry.create_version(name, draft).version)
        return Outcome(numbers, start, time.time())
    finally:
        registry.close()


def _register_many(url: str, artifacts_url: str, worker: int, name: str, count: int,
                   barrier: Any) -> Outcome:
    """Full `ferry.register` calls (conversion, check, artifacts, commit) in a loop."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import ferry

    X, y = load_iris(return_X_y=True, as_frame=True)
    models = [LogisticRegression(C=0.1 * (1 + worker * count + i), max_iter=1000).fit(X, y)
              for i in range(count)]
    registry = Registry(url, artifacts_url=artifacts_url, actor=f"worker-{worker}")
    try:
        registry.models()
        barrier.wait(timeout=JOIN_TIMEOUT_S)
        start = time.time()
        numbers = [ferry.register(m, name, sample=X, registry=registry).version for m in models]
        return Outcome(numbers, start, time.time())
    finally:
        registry.close()


def _run(target: Any, results: Any, worker: int, *args: Any) -> None:
    try:
        results.put((worker, "ok", target(*args[:2], worker, *args[2:])))
    except BaseException:
        results.put((worker, "error", traceback.format_exc()))
        raise


def _in_processes(target: Any, *args: Any) -> dict[int, list[int]]:
    """Run `target(url, artifacts_url, worker, *rest, barrier)` in WORKERS spawned processes;
    return each worker's version numbers, or fail the test with the workers' tracebacks.

    Also checks that the workers' writes overlapped in time (each started before the other
    finished), so a pass means they really did run against each other."""
    barrier = SPAWN.Barrier(WORKERS)
    results = SPAWN.Queue()
    processes = [SPAWN.Process(target=_run, args=(target, results, w, *args, barrier))
                 for w in range(WORKERS)]
    for process in processes:
        process.start()
    outcomes: dict[int, tuple[str, Any]] = {}
    try:
        for _ in processes:
            worker, status, value = results.get(timeout=JOIN_TIMEOUT_S)
            outcomes[worker] = (status, value)
    except queue.Empty:
        pass
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()
    errors = [f"worker {w}:\n{v}" for w, (s, v) in outcomes.items() if s != "ok"]
    assert not errors, "\n".join(errors)
    assert len(outcomes) == WORKERS, f"only {sorted(outcomes)} reported back"
    assert [p.exitcode for p in processes] == [0] * WORKERS
    done: dict[int, Outcome] = {w: v for w, (_, v) in outcomes.items()}
    assert max(o.start for o in done.values()) < min(o.end for o in done.values()), (
        "the workers did not run at the same time")
    return {w: o.numbers for w, o in done.items()}


def _assert_consecutive(registry: Registry, name: str, per_worker: dict[int, list[int]],
                        total: int) -> None:
    everything = sorted(n for numbers in per_worker.values() for n in numbers)
    assert everything == list(range(1, total + 1)), "gaps or duplicates"
    for numbers in per_worker.values():
        assert numbers == sorted(numbers), "a worker's versions went backwards"
    versions = registry.versions(name)
    assert [v.version for v in versions] == list(range(1, total + 1))
    for worker, numbers in per_worker.items():
        assert {v.version for v in versions if v.created_by == f"worker-{worker}"} == set(
            numbers)
    registered = [e for e in registry.history(name) if e.event == "registered"]
    assert len(registered) == total
    assert Counter(e.version for e in registered) == Counter(range(1, total + 1))
    assert {(e.version, e.actor) for e in registered} == {
        (v.version, v.created_by) for v in versions}


# -- tests -------------------------------------------------------------------------------------


def test_two_processes_create_50_versions_each(registry: Registry) -> None:
    per_worker = _in_processes(_create_many, str(registry.url), str(registry.artifacts_url),
                               "shared", 50)

    _assert_consecutive(registry, "shared", per_worker, 100)
    assert [m.name for m in registry.models()] == ["shared"]
    assert registry.get("shared").version == 100
    by_number = {v.version: v for v in registry.versions("shared")}
    for worker, numbers in per_worker.items():
        for index, number in enumerate(numbers):  # each row holds its own worker's artifact
            expected = registry.artifacts.put(f"worker-{worker}-{index}".encode())
            assert by_number[number].original_sha256 == expected
    assert registry.gc(grace_s=0).removed == []


def test_two_processes_create_the_first_version_at_once(registry_url: str,
                                                        tmp_path: Path) -> None:
    names = [f"brand-new-{i}" for i in range(5)]
    artifacts = str(tmp_path / "artifacts")

    # nothing has opened (or migrated) this database yet: the workers race on that too
    per_worker = _in_processes(_create_first_versions, registry_url, artifacts, names)

    registry = Registry(registry_url, artifacts_url=artifacts)
    try:
        assert [m.name for m in registry.models()] == names
        for round_, name in enumerate(names):
            assert sorted(numbers[round_] for numbers in per_worker.values()) == [1, 2]
            _assert_consecutive(registry, name, {w: [ns[round_]] for w, ns in
                                                 per_worker.items()}, 2)
    finally:
        registry.close()


@pytest.mark.slow
def test_two_processes_register_real_models(registry: Registry) -> None:
    import ferry

    per_worker = _in_processes(_register_many, str(registry.url), str(registry.artifacts_url),
                               "iris", 3)

    _assert_consecutive(registry, "iris", per_worker, 6)
    versions = registry.versions("iris")
    assert len({v.onnx_sha256 for v in versions}) == 6
    assert len({v.sample_sha256 for v in versions}) == 1
    for version in versions:
        predictor = ferry.load(version.uri, registry=registry)
        assert predictor.version == version.version
    assert registry.gc(grace_s=0).removed == []
