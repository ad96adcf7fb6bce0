"""Opening stores by URL, the embedded default under FERRY_HOME, the names shared with the
server, and the merging of small sample chunks in the embedded store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from monitor_data import MODEL, NOW, event, sampled
from sqlalchemy import func, select

from ferry.errors import InvalidInputError
from ferry.monitor.events import Outcome
from ferry.monitor.store import MemoryStore, SqlStore, default_url, open_store
from ferry.monitor.store.compaction import COMPACT_FANIN, mergeable, tier
from ferry.monitor.store.schema import sample_chunks
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
