"""`ferry.batch.stored` on its own: the index over one run's rows (keys as URLs send them,
probabilities, kept columns, odd key columns), and `StoredPredictions` choosing, caching and
refreshing runs against a registry stand-in; then once end to end, over a real batch run in
the DuckDB warehouse, which the lookups must leave free for the next writer."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

import ferry
from ferry.batch import batch
from ferry.batch.stored import MAX_KEYS, StoredPredictions, build_index, selector_of
from ferry.errors import AliasNotFoundError, InvalidInputError, NotFoundError
from ferry.registry import BatchRun, Registry, RunStatus
from ferry.uri import ModelURI

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def make_run(run_id: str, version: int = 1, key: str | None = "id", keep: tuple[str, ...] = (),
             minutes: int = 0, model: str = "m") -> BatchRun:
    return BatchRun(id=run_id, model=model, version=version, input="in.parquet",
                    output="/nowhere/warehouse.duckdb#m", engine="local", workers=1,
                    status=str(RunStatus.COMPLETED), started_at=T0 + timedelta(minutes=minutes),
                    created_by="tester", details={"key": key, "keep": list(keep)})


def rows(run: BatchRun, keys: list[Any], prediction: Any = None,
         **kept: list[Any]) -> pa.Table:
    """A run's output rows: key, kept columns, prediction and probabilities, the stamp."""
    n = len(keys)
    scores = np.linspace(0.1, 0.9, n)
    if prediction is None:
        prediction = ["yes" if s > 0.5 else "no" for s in scores]
    return pa.table({"id": keys, **kept, "prediction": prediction, "proba_no": 1 - scores,
                     "proba_yes": scores, "model": [run.model] * n,
                     "version": [run.version] * n, "run_id": [run.id] * n,
                     "scored_at": [run.time()] * n})


# -- the index over one run ----------------------------------------------------------------

def test_keys_as_urls_send_them_find_their_rows_in_request_order() -> None:
    run = make_run("r1", keep=("segment",))
    index = build_index(run, rows(run, [10, 20, 30], segment=["a", "b", "c"]))
    answer = index.lookup(["30", 10, "+20", 99, 30])
    assert [p["key"] for p in answer.predictions] == [30, 10, 20, 30]
    assert answer.missing == [99]
    first = answer.predictions[0]
    assert first == {"key": 30, "prediction": "yes", "kept": {"segment": "c"},
                     "probabilities": {"no": pytest.approx(0.1), "yes": pytest.approx(0.9)}}
    assert answer.to_dict()["run_id"] == "r1"
    assert dict(answer.run) == {"model": "m", "version": 1, "run_id": "r1",
                                "scored_at": "2026-01-05T12:00:00+00:00"}


def test_one_key() -> None:
    run = make_run("r1")
    index = build_index(run, rows(run, [1, 2]))
    assert index.get("2").predictions[0]["key"] == 2
    assert index.get("3").missing == [3]
    assert index.get(str(2**64 + 1)).missing == [2**64 + 1]


@pytest.mark.parametrize(("key", "field"), [("x", "key"), ("1.5", "key"), (True, "key"),
                                            ("", "key"), (None, "key")])
def test_a_key_that_is_not_an_integer_is_refused_naming_the_field(key: Any, field: str) -> None:
    run = make_run("r1")
    index = build_index(run, rows(run, [1, 2]))
    with pytest.raises(InvalidInputError, match=rf"^{field}: .*'id' holds integers"):
        index.get(key)
    with pytest.raises(InvalidInputError, match=r"^keys\[1\]: "):
        index.lookup([1, key])


def test_at_most_max_keys_a_lookup() -> None:
    run = make_run("r1")
    index = build_index(run, rows(run, [1, 2]))
    assert len(index.lookup([1] * MAX_KEYS).predictions) == MAX_KEYS
    with pytest.raises(InvalidInputError, match=f"at most {MAX_KEYS}"):
        index.lookup([1] * (MAX_KEYS + 1))


def test_string_keys() -> None:
    run = make_run("r1")
    index = build_index(run, rows(run, ["user-1", "17", "ü/ß"]))
    answer = index.lookup(["17", "ü/ß", "user-2"])
    assert [p["key"] for p in answer.predictions] == ["17", "ü/ß"]
    assert answer.missing == ["user-2"]
    with pytest.raises(InvalidInputError, match=r"keys\[0\]: 17 .*holds text"):
        index.lookup([17])


def test_float_keys() -> None:
    run = make_run("r1")
    index = build_index(run, rows(run, [0.5, 2.0]))
    assert [p["key"] for p in index.lookup(["2", 0.5, "2.0"]).predictions] == [2.0, 0.5, 2.0]
    with pytest.raises(InvalidInputError, match="holds numbers"):
        index.get("half")


def test_date_keys_are_looked_up_as_iso_text() -> None:
    run = make_run("r1")
    index = build_index(run, rows(run, [date(2026, 1, 1), date(2026, 1, 2)]))
    assert index.get("2026-01-02").predictions[0]["key"] == "2026-01-02"


def test_null_keys_are_dropped_and_a_repeated_key_keeps_its_first_row() -> None:
    run = make_run("r1", keep=("n",))
    index = build_index(run, rows(run, [1, None, 2, 1], n=[0, 1, 2, 3]))
    assert index.rows == 2
    assert index.get(1).predictions[0]["kept"] == {"n": 0}


def test_kept_columns_with_nulls_and_dates_and_a_regressors_rows() -> None:
    run = make_run("r1", keep=("day", "note"))
    table = rows(run, [1, 2], day=[date(2026, 1, 1), None], note=["x", None],
                 prediction=[1.5, 2.5]).drop_columns(["proba_no", "proba_yes"])
    found = build_index(run, table).lookup([1, 2]).predictions
    assert found[0] == {"key": 1, "prediction": 1.5, "kept": {"day": "2026-01-01", "note": "x"}}
    assert found[1]["kept"] == {"day": None, "note": None}
    assert "probabilities" not in found[0]


def test_a_prediction_of_several_values_is_a_list() -> None:
    run = make_run("r1")
    values = pa.FixedSizeListArray.from_arrays(pa.array([1.0, 2.0, 3.0, 4.0]), 2)
    index = build_index(run, rows(run, [1, 2], prediction=values))
    assert index.get(2).predictions[0]["prediction"] == [3.0, 4.0]


def test_a_run_without_key_or_without_rows_cannot_be_looked_up() -> None:
    keyless = make_run("r1", key=None)
    with pytest.raises(NotFoundError, match="without --key"):
        build_index(keyless, rows(keyless, [1]))
    gone = make_run("r2")
    with pytest.raises(NotFoundError, match="no rows"):
        build_index(gone, pa.table({}))


def test_selector_of_text() -> None:
    assert selector_of(None) is None and selector_of("") is None
    assert selector_of("3") == 3
    assert selector_of("production") == "production"
    assert selector_of(None, "staging") == "staging"
    with pytest.raises(InvalidInputError, match="not both"):
        selector_of("3", "staging")
    with pytest.raises(InvalidInputError, match="versions are numbers"):
        selector_of("99999999999")


# -- choosing, caching and refreshing runs ---------------------------------------------------

@dataclass
class FakeRegistry:
    """The two calls `StoredPredictions` makes of a registry."""

    runs_by_id: dict[str, BatchRun] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    calls: int = 0

    def add(self, run: BatchRun) -> BatchRun:
        self.runs_by_id[run.id] = run
        return run

    def runs(self, name: str, version: int | None = None,
             status: RunStatus | None = None) -> list[BatchRun]:
        self.calls += 1
        if name != "m":
            raise NotFoundError(f"no model named {name!r}")
        found = [r for r in self.runs_by_id.values() if (version is None or r.version == version)
                 and (status is None or r.status == status)]
        return sorted(found, key=lambda r: r.started_at, reverse=True)

    def get(self, uri: ModelURI) -> Any:
        if uri.alias not in self.aliases:
            raise AliasNotFoundError(f"no alias {uri.alias!r}")
        return type("Version", (), {"version": self.aliases[uri.alias]})()


@dataclass
class Target:
    """Stands in for the sinks: the rows of each run, reads counted, and a gate that holds
    reads back while a test looks at what answers meanwhile."""

    tables: dict[str, pa.Table] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)
    fail: Exception | None = None

    def __post_init__(self) -> None:
        self.gate.set()

    def read(self, run: BatchRun) -> pa.Table:
        self.gate.wait(10)
        self.reads.append(run.id)
        if self.fail is not None:
            raise self.fail
        return self.tables[run.id]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Setup:
    registry: FakeRegistry
    target: Target
    clock: Clock
    stored: StoredPredictions

    def publish(self, run: BatchRun, keys: list[Any] | None = None) -> BatchRun:
        self.target.tables[run.id] = rows(run, keys or [1, 2, 3])
        return self.registry.add(run)


@pytest.fixture
def setup() -> Any:
    registry, target, clock = FakeRegistry(), Target(), Clock()
    stored = StoredPredictions(registry, refresh_s=2.0, read=target.read,  # type: ignore[arg-type]
                               clock=clock)
    yield Setup(registry, target, clock, stored)
    stored.close()


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = datetime.now() + timedelta(seconds=10)
    while not condition():
        assert datetime.now() < deadline, "never happened"
        threading.Event().wait(0.01)


def test_the_newest_completed_run_of_the_selector_answers(setup: Setup) -> None:
    setup.publish(make_run("v1-old", version=1, minutes=0))
    setup.publish(make_run("v1", version=1, minutes=1))
    setup.publish(make_run("v2", version=2, minutes=2))
    setup.registry.aliases["production"] = 1
    stored = setup.stored
    assert stored.lookup("m", [1]).stamp.run_id == "v2"
    assert stored.lookup("m", [1], 1).stamp.run_id == "v1"
    assert stored.lookup("m", [1], "production").stamp.run_id == "v1"
    assert setup.target.reads == ["v2", "v1"]  # one copy of v1's rows for two selectors


def test_no_run_no_model_no_alias_are_not_found_and_not_held(setup: Setup) -> None:
    setup.publish(make_run("v1", version=1))
    with pytest.raises(NotFoundError, match="version 2 of 'm' has no completed batch run"):
        setup.stored.lookup("m", [1], 2)
    with pytest.raises(NotFoundError, match="no model named 'other'"):
        setup.stored.lookup("other", [1])
    with pytest.raises(NotFoundError, match="no alias"):
        setup.stored.lookup("m", [1], "staging")
    assert setup.stored._slots == {}


@pytest.mark.parametrize(("model", "selector"), [("../m", None), ("m", 0), ("m", True),
                                                 ("m", "3"), ("m", "bad alias")])
def test_names_and_selectors_that_cannot_be_are_refused(setup: Setup, model: str,
                                                        selector: Any) -> None:
    with pytest.raises(InvalidInputError):
        setup.stored.lookup(model, [1], selector)
    assert setup.registry.calls == 0


def test_a_newer_run_is_loaded_in_the_background_while_the_old_one_answers(setup: Setup) -> None:
    setup.publish(make_run("r1", minutes=0))
    stored = setup.stored
    assert stored.lookup("m", [1]).stamp.run_id == "r1"
    setup.publish(make_run("r2", minutes=1), keys=[1, 2, 3, 4])
    setup.clock.now = 1.9
    assert stored.lookup("m", [4]).missing == [4]  # not due: the registry is not asked
    assert setup.registry.calls == 1
    setup.target.gate.clear()
    setup.clock.now = 2.0
    assert stored.cached("m").stamp.run_id == "r1"  # type: ignore[union-attr]
    wait_for(lambda: setup.registry.calls == 2)
    assert stored.lookup("m", [4]).stamp.run_id == "r1"  # r2 still loading: r1 answers
    setup.target.gate.set()
    wait_for(lambda: stored.cached("m").stamp.run_id == "r2")  # type: ignore[union-attr]
    assert stored.lookup("m", [4]).predictions[0]["key"] == 4
    assert setup.target.reads == ["r1", "r2"]


def test_a_check_that_fails_keeps_the_index_and_a_vanished_run_drops_it(setup: Setup) -> None:
    setup.publish(make_run("r1", minutes=0))
    stored = setup.stored
    stored.lookup("m", [1])
    setup.publish(make_run("r2", minutes=1))
    setup.target.fail = OSError("the warehouse is locked")
    setup.clock.now = 5.0
    stored.cached("m")
    wait_for(lambda: setup.target.reads == ["r1", "r2"] and not stored._slots[("m", None)].pending)
    assert stored.lookup("m", [1]).stamp.run_id == "r1"
    setup.registry.runs_by_id.clear()
    setup.clock.now = 10.0
    stored.cached("m")
    wait_for(lambda: stored.cached("m") is None)
    with pytest.raises(NotFoundError):
        stored.lookup("m", [1])


def test_callers_at_once_share_the_first_load(setup: Setup) -> None:
    setup.publish(make_run("r1"))
    setup.target.gate.clear()
    futures = [setup.stored.load("m") for _ in range(5)]
    setup.target.gate.set()
    assert {f.result().stamp.run_id for f in futures} == {"r1"}
    assert setup.target.reads == ["r1"]


# -- end to end: a real batch run in the warehouse -------------------------------------------

def test_a_batch_run_in_the_warehouse_is_looked_up_and_the_file_left_free(
        sqlite_registry: Registry, ferry_home: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(400, 3)), columns=["a", "b", "c"])
    target = np.where(frame.a + frame.b > 0, "yes", "no")
    ferry.register(LogisticRegression().fit(frame, target), "lr", sample=frame.head(50),
                   registry=sqlite_registry)
    frame.insert(0, "id", np.arange(1000, 1400))
    frame.to_parquet(tmp_path / "in.parquet")
    run = batch("lr", str(tmp_path / "in.parquet"), key="id", keep=["c"],
                registry=sqlite_registry)
    stored = StoredPredictions(sqlite_registry, refresh_s=0.05)
    try:
        answer = stored.lookup("lr", ["1017", 1399, 5])
        assert answer.stamp.run_id == run.id and answer.missing == [5]
        expected = ferry.load("lr:1", registry=sqlite_registry).predict(
            frame.iloc[[17, 399]][["a", "b", "c"]])
        assert [p["prediction"] for p in answer.predictions] == expected.tolist()
        assert answer.predictions[0]["kept"] == {"c": pytest.approx(frame.c[17])}
        duckdb.connect(str(ferry_home / "warehouse.duckdb")).close()  # no reader holds it
        again = batch("lr", str(tmp_path / "in.parquet"), key="id", registry=sqlite_registry)
        wait_for(lambda: stored.index("lr").stamp.run_id == again.id)
        assert stored.lookup("lr", [1017]).predictions[0]["kept"] == {}
    finally:
        stored.close()
