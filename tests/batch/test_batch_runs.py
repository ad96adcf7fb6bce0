"""Runs: recorded in the registry, visible only when complete, resumed after kill -9, and a
rerun replacing its own rows and nobody else's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from batch_data import assert_scored, register_classifier, rows, run_rows, write, write_parts
from engine_checks import check_engine_agrees_with_local

from ferry.batch import RunStatus, batch
from ferry.batch.sinks import open_sink
from ferry.registry import Registry

FERRY = [sys.executable, "-m", "ferry"]


def test_the_local_engine_with_workers_agrees_with_one(tmp_path: Path) -> None:
    check_engine_agrees_with_local(tmp_path, "local", workers=2)


def test_a_run_is_recorded_and_listed(tmp_path: Path) -> None:
    frame = register_classifier()
    data = write(frame, tmp_path / "in.parquet")

    run = batch("churn", str(data), key="id")

    listed = subprocess.run([*FERRY, "runs", "churn", "--json"], capture_output=True,
                            text=True, check=True)
    [record] = json.loads(listed.stdout)
    assert record["id"] == run.id and record["status"] == "completed"
    assert record["rows"] == len(frame) and record["input"] == str(data)
    assert record["output"].endswith("warehouse.duckdb#churn")
    assert record["duration_s"] > 0 and record["details"]["key"] == "id"


def test_a_rerun_replaces_its_own_rows_and_no_other_runs(tmp_path: Path) -> None:
    frame = register_classifier()
    register_classifier(trees=5, seed=1)
    first, other = write(frame, tmp_path / "a.parquet"), write(rows(seed=2), tmp_path / "b.parquet")
    old = batch("churn:1", str(first), key="id")
    kept = [batch("churn:1", str(other), key="id"), batch("churn:2", str(first), key="id")]

    new = batch("churn:1", str(first), key="id")

    sink = open_sink(new.output, "churn")
    assert old.id not in sink.runs()
    assert {new.id, *(run.id for run in kept)} <= sink.runs()
    assert_scored(new, frame, "churn:1")


def _start_cli_run(data: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*FERRY, "batch", "churn", "--input", str(data), "--key", "id",
                             *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_for_parts(staging_root: Path, count: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while len(list(staging_root.glob("*/part-*.parquet"))) < count:
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_leaves_nothing_visible_and_resume_completes(
        workers: int, tmp_path: Path, ferry_home: Path) -> None:
    frame = register_classifier(trees=60)
    big = pd.concat([frame.assign(id=frame["id"] + i * len(frame)) for i in range(20)])
    data = write_parts(big, tmp_path / "data", 30)
    process = _start_cli_run(data, "--workers", str(workers))
    _wait_for_parts(ferry_home / "batch" / "staging", 3, process)

    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    [killed] = Registry().runs("churn")
    assert killed.status == RunStatus.RUNNING
    assert killed.id not in open_sink(killed.output, "churn").runs()
    staged = len(list((ferry_home / "batch" / "staging" / killed.id).glob("part-*.parquet")))
    resumed = subprocess.run([*FERRY, "batch", "churn", "--input", str(data), "--key", "id",
                              "--resume", "--json"], capture_output=True, text=True, check=True)
    run = Registry().run(json.loads(resumed.stdout)["id"])
    assert run.id == killed.id and run.status == RunStatus.COMPLETED
    assert run.details["resumed"] == 1 and 3 <= staged < 30
    assert_scored(run, big)


def test_resume_with_nothing_to_resume_starts_a_new_run(tmp_path: Path) -> None:
    frame = register_classifier()
    data = write(frame, tmp_path / "in.parquet")
    first = batch("churn", str(data), key="id")

    second = batch("churn", str(data), key="id", resume=True)

    assert second.id != first.id and second.status == RunStatus.COMPLETED
    assert len(run_rows(second)) == len(frame)


def test_the_command_line_ends_with_a_summary(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ferry.cli import app

    frame = register_classifier()
    data = write(frame, tmp_path / "in.parquet")

    result = CliRunner().invoke(app, ["batch", "churn", "--input", str(data), "--key", "id"])

    assert result.exit_code == 0, result.output
    [run] = Registry().runs("churn")
    summary = " ".join(result.stdout.split())
    assert f"run {run.id}: scored {len(frame):,} rows with churn:1 in" in summary
    assert "rows/s) into" in summary and summary.endswith("warehouse.duckdb#churn")
