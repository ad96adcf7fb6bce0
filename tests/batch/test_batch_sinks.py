"""Every sink (Parquet folder, embedded warehouse, PostgreSQL) runs the shared checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sink_checks import SINK_CHECKS

from ferry.batch.sinks import ParquetSink, PostgresSink, Sink, WarehouseSink, open_sink
from ferry.errors import InvalidInputError


@pytest.fixture(params=["parquet", "warehouse", pytest.param("postgres",
                                                             marks=pytest.mark.postgres)])
def sink(request: pytest.FixtureRequest, tmp_path: Path) -> Sink:
    if request.param == "parquet":
        return ParquetSink(str(tmp_path / "out"))
    if request.param == "warehouse":
        return WarehouseSink(tmp_path / "w.duckdb", "churn", tmp_path / "staging")
    url = request.getfixturevalue("postgres_url").replace("postgresql:", "postgresql+psycopg:")
    return PostgresSink(f"{url}#scores", tmp_path / "staging")


@pytest.mark.parametrize("check", SINK_CHECKS, ids=lambda c: c.__name__)
def test_sink_conformance(sink: Sink, check: Callable[[Sink], None]) -> None:
    check(sink)


def test_targets_are_chosen_from_the_output(tmp_path: Path) -> None:
    assert isinstance(open_sink(None, "churn", tmp_path), WarehouseSink)
    assert isinstance(open_sink(f"{tmp_path}/mine.duckdb#t", "churn", tmp_path), WarehouseSink)
    assert isinstance(open_sink(str(tmp_path / "dir"), "churn", tmp_path), ParquetSink)
    sink = open_sink("postgresql+psycopg://me:pw@127.0.0.1:5/db#scores", "churn", tmp_path)
    assert isinstance(sink, PostgresSink)
    assert "pw" not in sink.description and sink.description.endswith("#scores")
    with pytest.raises(InvalidInputError, match="name the table"):
        open_sink("postgresql+psycopg://127.0.0.1/db", "churn", tmp_path)


def test_a_sink_reopened_from_its_description_reads_the_same_run(tmp_path: Path) -> None:
    from sink_checks import stage

    sink = open_sink(None, "churn", tmp_path)
    stage(sink, "r1", [range(3)])
    sink.publish("r1", sink.staging("r1"), [])
    again = open_sink(sink.description, "churn", tmp_path)
    assert again.read("r1").num_rows == 3


@pytest.mark.postgres
def test_a_batch_into_postgres_is_scored_row_for_row(postgres_url: str, tmp_path: Path) -> None:
    from batch_data import assert_scored, register_classifier, write

    from ferry.batch import batch

    frame = register_classifier()
    target = postgres_url.replace("postgresql:", "postgresql+psycopg:") + "#churn_scores"

    run = batch("churn", str(write(frame, tmp_path / "in.parquet")), target, key="id",
                keep=["city"])

    assert run.output.endswith("#churn_scores")
    assert_scored(run, frame)
