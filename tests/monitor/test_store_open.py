"""Opening stores by URL, the embedded default under FERRY_HOME, the names shared with the
server, the merging of small chunks in the embedded store, and its migrations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from alembic import command
from alembic.config import Config
from monitor_data import MODEL, NOW, event, sampled
from sqlalchemy import Table, func, select

from ferry import sql as ferry_sql
from ferry.errors import InvalidInputError
from ferry.monitor.events import Outcome, TensorInfo
from ferry.monitor.store import (
    MemoryStore,
    SqlStore,
    default_url,
    events_from_table,
    open_store,
)
from ferry.monitor.store.compaction import COMPACT_FANIN, mergeable, tier
from ferry.monitor.store.engines import MIGRATIONS
from ferry.monitor.store.records import MICROSECOND
from ferry.monitor.store.schema import event_chunks, sample_chunks
from ferry.monitor.store.sql import small_chunks
from ferry.serve.outcomes import STATUS


def test_the_default_is_a_file_under_ferry_home(ferry_home: Path) -> None:
    with open_store(None) as store:
        store.append_events([event("a")])
    assert (ferry_home / "monitoring.db").is_file()

    with open_store(None) as again:  # another open sees what was written
        assert again.events(MODEL).num_rows == 1


def test_ferry_monitoring_url_chooses_the_store(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.setenv("FERRY_MONITORING_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert default_url() == f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("FERRY_MONITORING_URL", "memory://")
    assert isinstance(open_store(None), MemoryStore)


def test_each_scheme_opens_its_backend(tmp_path: Path) -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    with open_store(f"sqlite:///{tmp_path / 'm.db'}") as store:
        assert isinstance(store, SqlStore)


@pytest.mark.parametrize("url", ["clickhouse://localhost/db", "sqlite://", "::not a url"])
def test_a_url_no_backend_takes_is_refused(url: str) -> None:
    with pytest.raises(InvalidInputError, match="monitoring store"):
        open_store(url)


def test_every_outcome_the_store_keeps_has_a_status_on_both_transports() -> None:
    assert set(STATUS) == set(Outcome)


def test_chunks_merge_one_tier_at_a_time() -> None:
    assert [tier(rows) for rows in (1, 15, 16, 255, 256, 4096, 65_535)] == [0, 0, 1, 1, 2, 3, 3]
    small = [(i, 10) for i in range(COMPACT_FANIN - 1)] + [(100, 300)]
    assert mergeable(small) == []
    assert mergeable([*small, (101, 3)]) == [*range(COMPACT_FANIN - 1), 101]


def test_many_small_appends_are_merged_and_read_back_intact(tmp_path: Path) -> None:
    with SqlStore.embedded(f"sqlite:///{tmp_path / 'm.db'}") as store:
        for i in range(COMPACT_FANIN * 3):
            store.append_samples([sampled(f"r{i:03}", rows=3, ts=NOW)])
        store.attach_labels(MODEL, [("r000", 2, "yes")])
        with store.engine.connect() as connection:
            chunks = connection.scalar(select(func.count()).select_from(sample_chunks))

        table = store.samples(MODEL, 1)

    assert chunks == 3  # every 16 one-request chunks became one
    assert table.num_rows == 3 * COMPACT_FANIN * 3
    assert table["request_id"].to_pylist()[:4] == ["r000"] * 3 + ["r001"]
    assert table["row"].to_pylist()[:4] == [0, 1, 2, 0]
    np.testing.assert_array_equal(table["x"].to_numpy()[:3], [0.0, 1.0, 2.0])
    assert table["label"].to_pylist()[:3] == [None, None, "yes"]


def test_many_small_event_appends_are_merged_per_model(tmp_path: Path) -> None:
    with SqlStore.embedded(f"sqlite:///{tmp_path / 'm.db'}") as store:
        for i in range(COMPACT_FANIN * 2):
            store.append_events([event(f"e{i:03}", ts=NOW + i * MICROSECOND),
                                 event(f"w{i:03}", model="wine")])
        with store.engine.connect() as connection:
            chunks = connection.execute(select(event_chunks.c.model, func.count())
                                        .group_by(event_chunks.c.model)).all()

        ids = store.events(MODEL)["request_id"].to_pylist()

    assert sorted(chunks) == [(MODEL, 2), ("wine", 2)]  # 32 one-event chunks each became 2
    assert ids == [f"e{i:03}" for i in range(COMPACT_FANIN * 2)]


def test_events_stored_as_rows_by_the_first_schema_move_into_chunks(tmp_path: Path) -> None:
    """A monitoring.db written before events became chunks keeps its events."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = ferry_sql.sqlite_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.exec_driver_sql(
            "INSERT INTO monitor_events (ts_us, request_id, model, version, alias, protocol,"
            " status, error_type, latency_s, queue_s, compute_s, batch_size, request_bytes,"
            " response_bytes, inputs, outputs) VALUES"
            " (1000000, 'b', 'iris', 1, NULL, 'rest', 'ok', NULL, 0.5, 0.1, 0.2, 3, 10, 20,"
            " '[{\"name\":\"X\",\"datatype\":\"FP32\",\"shape\":[3,4]}]', '[]'),"
            " (0, 'a', 'iris', 2, 'prod', 'grpc', 'invalid_input', 'invalid_input', 0.25,"
            " 0, 0, 0, 5, 0, '[]', '[]'), (5, 'w', 'wine', 1, NULL, 'rest', 'ok', NULL,"
            " 1, 0, 0, 1, 1, 1, '[]', '[]')")
    engine.dispose()

    with open_store(url) as store:
        iris = events_from_table(store.events(MODEL))
        assert [e.request_id for e in events_from_table(store.events("wine"))] == ["w"]

    assert [(e.request_id, e.version, e.alias, e.latency_s) for e in iris] == \
        [("a", 2, "prod", 0.25), ("b", 1, None, 0.5)]
    assert iris[1].inputs == (TensorInfo("X", "FP32", (3, 4)),) and iris[1].outputs == ()


@pytest.mark.parametrize(("table", "key"), [(event_chunks, {"model": MODEL}),
                                            (sample_chunks, {"model": MODEL, "version": 1})])
def test_merging_reads_only_the_small_chunks(tmp_path: Path, table: Table,
                                             key: dict[str, object]) -> None:
    """The merge after every append finds the chunks it may merge through an index that
    ends with their row count, not by reading every chunk the model stored (one more per
    flush of a busy server), on a store made by the migrations."""
    with SqlStore.embedded(f"sqlite:///{tmp_path / 'm.db'}") as store:
        statement = small_chunks(table, key).compile(
            store.engine, compile_kwargs={"literal_binds": True})
        with store.engine.connect() as connection:
            plan = " ".join(row[-1] for row in
                            connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}"))

    assert "rows<?" in plan.replace(" ", ""), plan
