"""The Spark engine on `local[2]` (the test run's one session): the same rows as the local
engine, from every input format, into every kind of target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from batch_data import register_classifier, run_rows, write, write_parts
from engine_checks import check_engine_agrees_with_local

from ferry.batch import batch


def test_spark_agrees_with_the_local_engine_row_by_row(spark: Any, tmp_path: Path) -> None:
    check_engine_agrees_with_local(tmp_path, "spark", workers=2)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_spark_reads_text_formats_with_the_checked_types(suffix: str, spark: Any,
                                                         tmp_path: Path) -> None:
    frame = register_classifier()
    data = write_parts(frame, tmp_path / "data", 2, suffix)
    local = run_rows(batch("churn", str(data), str(tmp_path / "local"), key="id"))

    run = batch("churn", str(data), key="id", engine="spark", workers=2)

    got = run_rows(run)
    assert run.output.endswith("warehouse.duckdb#churn") and run.rows == len(frame)
    np.testing.assert_array_equal(got["id"], local["id"])
    np.testing.assert_array_equal(got["prediction"], local["prediction"])
    np.testing.assert_array_equal(got["proba_1"], local["proba_1"])


def test_a_spark_rerun_replaces_its_own_rows(spark: Any, tmp_path: Path) -> None:
    frame = register_classifier()
    data = write(frame, tmp_path / "in.parquet")
    first = batch("churn", str(data), str(tmp_path / "out"), key="id", engine="spark")

    second = batch("churn", str(data), str(tmp_path / "out"), key="id", engine="spark")

    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"run-{second.id}"]
    assert first.id != second.id and len(run_rows(second)) == len(frame)
