"""The checks every sink passes (like scikit-learn's `check_estimator`): staged rows stay
invisible, a publish shows a run whole and removes the runs it replaces, and no other."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from ferry.batch.sinks import Sink


def output_batch(run_id: str, keys: range, version: int = 1) -> pa.RecordBatch:
    rows = len(keys)
    return pa.RecordBatch.from_pydict({
        "id": pa.array(list(keys), pa.int64()),
        "prediction": pa.array([k % 2 for k in keys], pa.int64()),
        "proba_1": pa.array([0.25] * rows, pa.float32()),
        "model": ["churn"] * rows, "version": pa.array([version] * rows, pa.int32()),
        "run_id": [run_id] * rows,
        "scored_at": pa.array([datetime(2026, 12, 7, tzinfo=UTC)] * rows,
                              pa.timestamp("us", tz="UTC"))})


def stage(sink: Sink, run_id: str, parts: list[range]) -> None:
    staging = sink.staging(run_id)
    for index, keys in enumerate(parts):
        staging.write(index, [output_batch(run_id, keys)])


def check_staged_rows_are_invisible(sink: Sink) -> None:
    stage(sink, "run-a", [range(0, 10)])
    assert "run-a" not in sink.runs()
    assert sink.read("run-a").num_rows == 0


def check_publish_shows_the_whole_run(sink: Sink) -> None:
    stage(sink, "run-b", [range(0, 10), range(10, 25)])
    sink.publish("run-b", sink.staging("run-b"), [])
    table = sink.read("run-b")
    assert sorted(table.column("id").to_pylist()) == list(range(25))
    assert "run-b" in sink.runs()
    assert sink.staging("run-b").done() == set()


def check_publish_replaces_only_the_named_runs(sink: Sink) -> None:
    for run_id in ("old", "other"):
        stage(sink, run_id, [range(0, 5)])
        sink.publish(run_id, sink.staging(run_id), [])
    stage(sink, "new", [range(100, 103)])
    sink.publish("new", sink.staging("new"), ["old"])
    assert {"new", "other"} <= sink.runs()
    assert "old" not in sink.runs()
    assert sink.read("other").num_rows == 5
    assert sorted(sink.read("new").column("id").to_pylist()) == [100, 101, 102]


def check_an_empty_run_still_replaces(sink: Sink) -> None:
    stage(sink, "full", [range(0, 4)])
    sink.publish("full", sink.staging("full"), [])
    sink.staging("empty").write(0, [])
    sink.publish("empty", sink.staging("empty"), ["full"])
    assert "full" not in sink.runs()


SINK_CHECKS = [check_staged_rows_are_invisible, check_publish_shows_the_whole_run,
               check_publish_replaces_only_the_named_runs, check_an_empty_run_still_replaces]
