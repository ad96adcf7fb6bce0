"""The conformance suite every monitoring store runs (memory, embedded, PostgreSQL): what goes
in comes back, filters, late labels, results, retention, and refusals that write nothing."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from monitor_data import MODEL, NOW, event, result, sampled

from ferry.errors import InvalidInputError
from ferry.monitor.events import SampledRows, TensorInfo
from ferry.monitor.store import (
    EVENTS_SCHEMA,
    Attached,
    MonitoringStore,
    Retention,
    events_from_table,
    open_store,
)
from ferry.monitor.store.event_chunks import stored_events

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def request_ids(table: pa.Table) -> list[str]:
    return [str(value) for value in table["request_id"].to_pylist()]


# -- events -----------------------------------------------------------------------------------


def test_events_come_back_whole(store: MonitoringStore) -> None:
    events = [
        event("a"),
        event("b-ünï", ts=NOW + HOUR, alias=None, protocol="grpc", status="invalid_input",
              error_type="invalid_input", batch_size=0, inputs=(), outputs=()),
        event("c", ts=NOW + 2 * HOUR, version=2, latency_s=12.5, request_bytes=2**40,
              inputs=(TensorInfo("text", "BYTES", (1,)), TensorInfo("ids", "INT64", (1, 7)))),
    ]
    store.append_events(events)

    table = store.events(MODEL)

    assert table.schema == EVENTS_SCHEMA
    assert events_from_table(table) == events


def test_events_filter_by_version_time_and_newest(store: MonitoringStore) -> None:
    store.append_events([event(f"v1-{i}", ts=NOW + i * HOUR) for i in range(5)])
    store.append_events([event("v2", ts=NOW + HOUR, version=2),
                         event("other", model="wine")])

    assert request_ids(store.events(MODEL, version=2)) == ["v2"]
    assert request_ids(store.events(MODEL, version=1, since=NOW + HOUR, until=NOW + 3 * HOUR)) \
        == ["v1-1", "v1-2"]  # since inclusive, until exclusive
    assert request_ids(store.events(MODEL, version=1, limit=2)) == ["v1-3", "v1-4"]
    assert store.events(MODEL, limit=0).num_rows == 0
    assert request_ids(store.events("wine")) == ["other"]
    assert store.events("unknown").schema == EVENTS_SCHEMA


def test_bad_events_are_refused_and_none_of_the_batch_written(store: MonitoringStore) -> None:
    naive = datetime(2026, 1, 1)
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        store.append_events([event("fine"), event("naive", ts=naive)])
    with pytest.raises(InvalidInputError, match="latency_s"):
        store.append_events([event("fine"), event("nan", latency_s=math.nan)])
    with pytest.raises(InvalidInputError, match="limit"):
        store.events(MODEL, limit=-1)
    with pytest.raises(InvalidInputError, match="since"):
        store.events(MODEL, since=naive)

    assert store.events(MODEL).num_rows == 0


def test_newest_events_are_found_across_many_appends_of_several_versions(
        store: MonitoringStore) -> None:
    """`limit` reads stored chunks newest first: the newest of version 1 must be found even
    when later appends hold only version 2, and out-of-order appends must not hide one."""
    for i in range(40):
        store.append_events([event(f"v1-{i}", ts=NOW + i * HOUR)])
    store.append_events([event("v1-late", ts=NOW + 41 * HOUR),
                         event("v1-early", ts=NOW + HOUR / 2)])
    for i in range(40):
        store.append_events([event(f"v2-{i}", ts=NOW + (50 + i) * HOUR, version=2)])

    assert request_ids(store.events(MODEL, version=1, limit=3)) == ["v1-38", "v1-39", "v1-late"]
    assert request_ids(store.events(MODEL, limit=2)) == ["v2-38", "v2-39"]
    assert request_ids(store.events(MODEL, version=1, until=NOW + 2 * HOUR, limit=2)) \
        == ["v1-early", "v1-1"]
    assert store.events(MODEL).num_rows == 82


def test_an_event_table_missing_a_column_or_a_value_is_refused(store: MonitoringStore) -> None:
    table = stored_events([event("a"), event("b")])
    with pytest.raises(InvalidInputError, match="lack the columns status"):
        store.append_event_table(table.drop_columns(["status"]))
    nulls = table.set_column(table.schema.get_field_index("request_id"), "request_id",
                             pa.array([None, "b"], pa.string()))
    with pytest.raises(InvalidInputError, match="request_id must not be null"):
        store.append_event_table(nulls)
    with pytest.raises(InvalidInputError, match="version"):
        store.append_event_table(table.set_column(3, "version", pa.array(["x", "y"])))

    store.append_event_table(table)
    assert request_ids(store.events(MODEL)) == ["a", "b"]


# -- samples ----------------------------------------------------------------------------------


def test_sampled_rows_keep_every_kind_of_value(store: MonitoringStore) -> None:
    columns: dict[str, Any] = {
        "width": np.array([1.5, math.nan, -0.0]),
        "colour": np.array(["réd", None, "青"], dtype=object),
        "count": np.array([1, 2, 3], dtype=np.int64),
        "small": np.array([1, 2, 3], dtype=np.int8),
        "flag": np.array([True, False, True]),
        "output:label": np.array(["a", "b", "c"]),
        "output:probabilities": np.array([[0.1, 0.9], [0.5, 0.5], [1.0, 0.0]], np.float32),
    }
    store.append_samples([SampledRows(NOW, "r-1", MODEL, 1, columns)])

    table = store.samples(MODEL, 1)

    assert table.column_names == ["ts", "request_id", "row", *columns, "label"]
    rows = table.to_pydict()
    assert rows["ts"] == [NOW] * 3 and rows["request_id"] == ["r-1"] * 3
    assert rows["row"] == [0, 1, 2]
    assert rows["width"][0] == 1.5 and math.isnan(rows["width"][1])  # NaN is not null
    assert table["width"].null_count == 0
    assert rows["colour"] == ["réd", None, "青"]
    assert table.schema.field("small").type == pa.int8()
    assert rows["count"] == [1, 2, 3] and rows["flag"] == [True, False, True]
    assert rows["output:label"] == ["a", "b", "c"]
    probabilities = table["output:probabilities"].combine_chunks().to_numpy_ndarray()
    np.testing.assert_array_equal(probabilities, columns["output:probabilities"])
    assert rows["label"] == [None, None, None]


def test_samples_filter_by_version_and_time(store: MonitoringStore) -> None:
    store.append_samples([sampled(f"t{i}", ts=NOW + i * HOUR) for i in range(4)])
    store.append_samples([sampled("v2", version=2), sampled("wine", model="wine")])

    window = store.samples(MODEL, 1, since=NOW + HOUR, until=NOW + 3 * HOUR)

    assert request_ids(window) == ["t1", "t1", "t2", "t2"]
    assert request_ids(store.samples(MODEL, 2)) == ["v2", "v2"]
    assert store.samples(MODEL, 3).column_names == ["ts", "request_id", "row", "label"]
    assert store.samples(MODEL, 3).num_rows == 0


def test_samples_come_back_in_time_order_across_appends(store: MonitoringStore) -> None:
    store.append_samples([sampled("late", ts=NOW + HOUR)])
    store.append_samples([sampled("early", ts=NOW)])

    assert request_ids(store.samples(MODEL, 1)) == ["early", "early", "late", "late"]


def test_requests_with_different_columns_share_one_table(store: MonitoringStore) -> None:
    store.append_samples([
        SampledRows(NOW, "a", MODEL, 1, {"x": np.array([1, 2]), "y": np.array(["p", "q"])}),
        SampledRows(NOW + HOUR, "b", MODEL, 1, {"x": np.array([0.5]), "z": np.array([True])}),
    ])

    rows = store.samples(MODEL, 1).to_pydict()

    assert rows["x"] == [1.0, 2.0, 0.5]  # integers met floats
    assert rows["y"] == ["p", "q", None] and rows["z"] == [None, None, True]


@pytest.mark.parametrize(("columns", "message"), [
    ({"label": np.array([1])}, "'label' takes a name the store keeps"),
    ({"x": np.array([1, 2]), "y": np.array([1])}, "equal lengths"),
    ({"x": np.float64(1.0)}, "must have a row axis"),
    ({"x": np.array([{"a": 1}, 2], dtype=object)}, "sampled column 'x'"),
])
def test_bad_samples_are_refused_and_none_of_the_batch_written(
        store: MonitoringStore, columns: dict[str, Any], message: str) -> None:
    bad = SampledRows(NOW, "bad", MODEL, 1, columns)

    with pytest.raises(InvalidInputError, match=message):
        store.append_samples([sampled("fine"), bad])

    assert store.samples(MODEL, 1).num_rows == 0


# -- labels -----------------------------------------------------------------------------------


def test_labels_attached_late_join_their_rows(store: MonitoringStore) -> None:
    store.append_samples([sampled("a", rows=3), sampled("b", rows=1, ts=NOW + HOUR)])

    labels = [("a", 0, 1), ("a", 2, 0), ("b", 0, 1), ("a", 7, 1)]
    matched = store.attach_labels(MODEL, labels).matched
    replaced = store.attach_labels(MODEL, [("a", 0, 0)]).matched

    assert (matched, replaced) == (3, 1)  # row 7 of "a" was not sampled: kept, matches nothing
    assert store.samples(MODEL, 1)["label"].to_pylist() == [0, None, 0, 1]
    assert store.samples(MODEL, 1, since=NOW + HOUR)["label"].to_pylist() == [1]


def test_a_block_of_several_requests_rows_takes_labels_on_its_rows(
        store: MonitoringStore) -> None:
    block = SampledRows(NOW, "", MODEL, 1, {"x": np.array([0.5, 1.5, 2.5])},
                        row_requests=["a", "b", "a"], row_numbers=[3, 0, 7])
    store.append_samples([block])

    matched = store.attach_labels(MODEL, [("a", 7, "yes"), ("a", 0, "no"), ("b", 0, "no")]).matched

    table = store.samples(MODEL, 1)
    assert matched == 2  # row 0 of "a" was not kept by the sampler
    assert list(zip(request_ids(table), table["row"].to_pylist(), strict=True)) == \
        [("a", 3), ("b", 0), ("a", 7)]
    assert table["label"].to_pylist() == [None, "no", "yes"]


def test_labels_of_any_json_kind(store: MonitoringStore) -> None:
    store.append_samples([sampled("a", rows=2)])

    store.attach_labels(MODEL, [("a", 0, "spam"), ("a", 1, "ham ✓")])

    assert store.samples(MODEL, 1)["label"].to_pylist() == ["spam", "ham ✓"]


def test_labels_of_requests_not_sampled_are_skipped_and_named(store: MonitoringStore) -> None:
    store.append_samples([sampled("known", rows=2), sampled("elsewhere", model="wine")])
    store.append_events([event("not-sampled")])

    attached = store.attach_labels(MODEL, [("known", 0, 1), ("ghost", 0, 1), ("elsewhere", 0, 1),
                                           ("not-sampled", 0, 1), ("known", 1, 0)])

    assert attached == Attached(labels=2, matched=2, skipped=3,
                                skipped_ids=("ghost", "elsewhere", "not-sampled"))
    assert store.samples(MODEL, 1)["label"].to_pylist() == [1, 0]


def test_when_no_label_names_a_sampled_request_they_are_refused_by_name(
        store: MonitoringStore) -> None:
    store.append_samples([sampled("known"), sampled("elsewhere", model="wine")])
    store.append_events([event("not-sampled")])

    with pytest.raises(InvalidInputError, match=r"'ghost'.*'elsewhere'.*'not-sampled'"):
        store.attach_labels(MODEL, [("ghost", 0, 1), ("elsewhere", 0, 1), ("not-sampled", 0, 1)])

    assert store.samples(MODEL, 1)["label"].to_pylist() == [None, None]


@pytest.mark.parametrize("row", [-1, 1.5, "0", True])
def test_a_row_that_is_not_an_index_is_refused(store: MonitoringStore, row: Any) -> None:
    store.append_samples([sampled("a")])

    with pytest.raises(InvalidInputError, match="row of request 'a'"):
        store.attach_labels(MODEL, [("a", 0, 1), ("a", row, 1)])

    assert store.samples(MODEL, 1)["label"].to_pylist() == [None, None]


# -- results ----------------------------------------------------------------------------------


def test_results_come_back_whole_and_filtered(store: MonitoringStore) -> None:
    written = [
        result(),
        result(ts=NOW + HOUR, column=None, kind="dataset", method="share", p_value=None,
               psi=None, verdict="ok", extra={}),
        result(ts=NOW + 2 * HOUR, version=2, statistic=math.nan, verdict="insufficient_data",
               rows=12),
    ]
    store.write_results(written)

    back = store.results(MODEL)

    assert back[:2] == written[:2]
    assert math.isnan(back[2].statistic) and back[2].verdict == "insufficient_data"
    assert [r.version for r in store.results(MODEL, version=2)] == [2]
    assert [r.ts for r in store.results(MODEL, since=NOW + HOUR)] == [NOW + HOUR, NOW + 2 * HOUR]
    assert store.results("wine") == []


def test_a_nan_p_value_reads_back_as_unknown(store: MonitoringStore) -> None:
    store.write_results([result(p_value=math.nan, psi=math.nan)])

    assert (store.results(MODEL)[0].p_value, store.results(MODEL)[0].psi) == (None, None)


# -- retention --------------------------------------------------------------------------------


def test_purge_keeps_each_kind_for_its_retention(store: MonitoringStore) -> None:
    store.append_events([event("old", ts=NOW - 15 * DAY), event("recent", ts=NOW - 13 * DAY)])
    store.append_samples([sampled("s-old", ts=NOW - 31 * DAY),
                          sampled("s-recent", ts=NOW - 29 * DAY)])
    store.attach_labels(MODEL, [("s-old", 0, 1), ("s-recent", 0, 1)])
    store.write_results([result(ts=NOW - 401 * DAY), result(ts=NOW - 399 * DAY)])

    removed = store.purge(now=NOW)

    assert removed == {"events": 1, "samples": 2, "labels": 1, "results": 1}
    assert request_ids(store.events(MODEL)) == ["recent"]
    assert store.samples(MODEL, 1).to_pydict()["label"] == [1, None]
    assert request_ids(store.samples(MODEL, 1)) == ["s-recent", "s-recent"]
    assert [r.ts for r in store.results(MODEL)] == [NOW - 399 * DAY]
    assert store.purge(now=NOW) == {"events": 0, "samples": 0, "labels": 0, "results": 0}


def test_retention_is_settable_and_trims_a_batch_across_the_cutoff(store_url: str) -> None:
    retention = Retention(events=HOUR, samples=2 * HOUR, results=3 * HOUR)
    with open_store(store_url, retention=retention) as store:
        # one append, so one stored chunk holds rows on both sides of the cutoff
        store.append_samples([sampled(f"s{i}", ts=NOW - i * HOUR) for i in range(4)])
        store.append_events([event("e0", ts=NOW), event("e2", ts=NOW - 2 * HOUR)])
        store.write_results([result(ts=NOW - 4 * HOUR)])

        removed = store.purge(now=NOW)

        assert removed == {"events": 1, "samples": 2, "labels": 0, "results": 1}
        assert request_ids(store.samples(MODEL, 1)) == ["s2", "s2", "s1", "s1", "s0", "s0"]


def test_retention_must_be_positive() -> None:
    with pytest.raises(InvalidInputError, match=r"retention\.samples"):
        Retention(samples=timedelta(0))
