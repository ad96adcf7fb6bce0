"""Monitoring store benchmark: which embedded engine holds the server's events and samples.

    python bench/monitor/store_bench.py [--rows 1000000] [--batches 100] [--json OUT]
                                        [--skip-postgres]

Candidates: ferry's embedded store (SQLite in WAL mode, samples as Arrow IPC chunks),
DuckDB (one file, rows in tables), and Parquet part files (each flush written to a temporary
name and renamed) read with pyarrow and with DuckDB. Measures:
(a) sustained event appends in batches of 1000 (`--batches` of them, best of three rounds);
(b) reading `--rows` sampled rows x 20 columns (15 float, 5 string) of one model version and
    time range into a pyarrow Table, after writing them the way the capture flushes (500 rows a
    flush: 50 requests of 10 rows), with a second version's rows in the way;
(c) whether another process can read while a writer process appends, and what reading costs
    then; for DuckDB also the writer that opens and closes the file at every flush.
With PostgreSQL binaries present it also reads the same rows from ferry's PostgreSQL store
(Arrow chunks in BYTEA) and from a JSONB row per sampled row.

Prints a Markdown report headed by the command and the processor; `--json OUT` writes the
numbers too. Needs `pip install duckdb` for the DuckDB candidates (skipped without it).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ferry.monitor.events import InferenceEvent, SampledRows, TensorInfo  # noqa: E402
from ferry.monitor.store import SqlStore  # noqa: E402
from ferry.monitor.store.event_chunks import stored_events  # noqa: E402

EVENT_BATCH = 1000
FLUSH_REQUESTS = 50
ROWS_PER_REQUEST = 10
FLOATS, STRINGS = 15, 5
MODEL = "fraud"
START = datetime(2026, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=2)
CONCURRENT_S = 6.0
WORDS = np.array(["alpha", "beta", "gamma", "delta", "épsilon", "ζeta", "eta", "theta"])


# -- data -------------------------------------------------------------------------------------


def make_events(count: int, offset: int = 0) -> list[InferenceEvent]:
    tensors_in = (TensorInfo("features", "FP32", (1, 20)),)
    tensors_out = (TensorInfo("label", "INT64", (1,)), TensorInfo("probabilities", "FP32", (1, 2)))
    return [InferenceEvent(START + timedelta(milliseconds=offset + i), uuid.uuid4().hex, MODEL,
                           1, "production", "rest", "ok", None, 0.004, 0.001, 0.002, 1, 812, 97,
                           tensors_in, tensors_out) for i in range(count)]


def make_columns(rows: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    columns = {f"f{i}": rng.normal(size=rows) for i in range(FLOATS)}
    columns |= {f"s{i}": rng.choice(WORDS, size=rows).astype(object) for i in range(STRINGS)}
    return columns


def flushes(rows: int, version: int, seed: int) -> Iterator[list[SampledRows]]:
    """The rows as the capture would flush them: 50 requests of 10 rows per flush, spread
    evenly over two days."""
    columns = make_columns(rows, seed)
    requests = rows // ROWS_PER_REQUEST
    step = SPAN / max(requests, 1)
    for first in range(0, requests, FLUSH_REQUESTS):
        yield [_request(columns, index, version, START + index * step)
               for index in range(first, min(first + FLUSH_REQUESTS, requests))]


def _request(columns: dict[str, np.ndarray], index: int, version: int,
             ts: datetime) -> SampledRows:
    part = slice(index * ROWS_PER_REQUEST, (index + 1) * ROWS_PER_REQUEST)
    return SampledRows(ts, f"req-{version}-{index}", MODEL, version,
                       {name: values[part] for name, values in columns.items()})


def flush_table(flush: list[SampledRows]) -> pa.Table:
    """One flush as a flat Arrow table (what DuckDB and Parquet are given)."""
    parts = []
    for sample in flush:
        rows = ROWS_PER_REQUEST
        own = {"model": [MODEL] * rows, "version": [sample.version] * rows,
               "ts": pa.array([sample.ts] * rows, pa.timestamp("us", tz="UTC")),
               "request_id": [sample.request_id] * rows, "row": np.arange(rows)}
        parts.append(pa.table(own | dict(sample.columns)))
    return pa.concat_tables(parts)


def events_arrow(events: list[InferenceEvent]) -> pa.Table:
    return stored_events(events)


# -- (a) event appends -------------------------------------------------------------------------


def best_rate(append: Callable[[Any], None], batches: int,
              prepare: Callable[[list[InferenceEvent]], Any] = lambda events: events) -> float:
    """Events per second, best of three rounds of `batches` appends; every batch is new, later
    than the one before, with fresh random request ids, as the capture's are. `prepare`
    turns a batch into what `append` takes, untimed."""
    rounds = [[prepare(make_events(EVENT_BATCH, offset=(r * batches + b) * EVENT_BATCH))
               for b in range(batches)] for r in range(3)]
    rates = []
    for batches_of_round in rounds:
        start = time.perf_counter()
        for batch in batches_of_round:
            append(batch)
        rates.append(len(batches_of_round) * EVENT_BATCH / (time.perf_counter() - start))
    return max(rates)


def embedded_events(workdir: Path, batches: int, as_table: bool = False) -> float:
    """The embedded store, given `InferenceEvent` objects, or (`as_table`) the table of
    events the server's capture builds and appends."""
    store = SqlStore.embedded(f"sqlite:///{workdir / f'events-{as_table}.db'}")
    try:
        if as_table:
            return best_rate(store.append_event_table, batches, stored_events)
        return best_rate(store.append_events, batches)
    finally:
        store.close()


def embedded_events_read(workdir: Path) -> dict[str, Any]:
    """Read back every event (a)'s embedded run appended, as `ferry traffic` would."""
    store = SqlStore.embedded(f"sqlite:///{workdir / 'events-False.db'}")
    try:
        seconds, count = timed(lambda: store.events(MODEL))
        return {"events": count, "read_s": seconds}
    finally:
        store.close()


def duckdb_events(workdir: Path, batches: int, reopen: bool) -> float:
    import duckdb

    path = str(workdir / f"events-{reopen}.duckdb")
    with duckdb.connect(path) as connection:
        _duckdb_events_table(connection)
    held = None if reopen else duckdb.connect(path)

    def append(events: list[InferenceEvent]) -> None:
        connection = held or duckdb.connect(path)
        _duckdb_append(connection, events)
        if held is None:
            connection.close()

    try:
        return best_rate(append, batches)
    finally:
        if held is not None:
            held.close()


def _duckdb_events_table(connection: Any) -> None:
    connection.register("empty", events_arrow(make_events(1)).slice(0, 0))
    connection.execute("CREATE TABLE events AS SELECT * FROM empty")
    connection.unregister("empty")


def parquet_events(workdir: Path, batches: int) -> float:
    folder = workdir / "events-parts"
    folder.mkdir()

    def append(events: list[InferenceEvent]) -> None:
        write_part(folder, events_arrow(events))

    return best_rate(append, batches)


def write_part(folder: Path, table: pa.Table) -> None:
    """One part file, whole or absent: written under a temporary name, then renamed."""
    name = uuid.uuid4().hex
    temporary = folder / f".{name}.tmp"
    pq.write_table(table, temporary)
    os.replace(temporary, folder / f"{name}.parquet")


# -- (b) reading a million sampled rows -------------------------------------------------------


def query_range() -> tuple[datetime, datetime]:
    return START, START + SPAN


def timed(read: Callable[[], pa.Table], repeats: int = 3) -> tuple[float, int]:
    """Best seconds of `repeats` reads, and the rows read."""
    best, rows = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        rows = read().num_rows
        best = min(best, time.perf_counter() - start)
    return best, rows


def fill_store(store: SqlStore, rows: int) -> float:
    """Write the sampled rows of version 2 (the one read) and a tenth as many of version 1;
    rows per second written."""
    start = time.perf_counter()
    for flush in flushes(rows // 10, version=1, seed=1):
        store.append_samples(flush)
    for flush in flushes(rows, version=2, seed=2):
        store.append_samples(flush)
    return (rows + rows // 10) / (time.perf_counter() - start)


def embedded_samples(workdir: Path, rows: int) -> dict[str, Any]:
    path = workdir / "samples.db"
    store = SqlStore.embedded(f"sqlite:///{path}")
    try:
        written = fill_store(store, rows)
        since, until = query_range()
        seconds, count = timed(lambda: store.samples(MODEL, 2, since, until))
        return {"write_rows_per_s": written, "read_s": seconds, "rows": count,
                "file_mb": path.stat().st_size / 1e6}
    finally:
        store.close()


def duckdb_samples(workdir: Path, rows: int) -> dict[str, Any]:
    import duckdb

    path = workdir / "samples.duckdb"
    connection = duckdb.connect(str(path))
    start = time.perf_counter()
    for version, count, seed in ((1, rows // 10, 1), (2, rows, 2)):
        for flush in flushes(count, version, seed):
            _duckdb_insert(connection, flush_table(flush))
    written = (rows + rows // 10) / (time.perf_counter() - start)
    since, until = query_range()
    sql = ("SELECT * EXCLUDE (model, version) FROM samples WHERE model = ? AND version = 2 "
           "AND ts >= ? AND ts < ? ORDER BY ts")
    seconds, count = timed(lambda: connection.sql(sql, params=[MODEL, since, until])
                           .to_arrow_table())
    connection.close()
    return {"write_rows_per_s": written, "read_s": seconds, "rows": count,
            "file_mb": path.stat().st_size / 1e6}


def _duckdb_insert(connection: Any, flush: pa.Table) -> None:
    connection.register("flush", flush)
    exists = connection.execute("SELECT count(*) FROM information_schema.tables "
                                "WHERE table_name = 'samples'").fetchone()[0]
    verb = "INSERT INTO samples" if exists else "CREATE TABLE samples AS"
    connection.execute(f"{verb} SELECT * FROM flush")
    connection.unregister("flush")


def parquet_samples(workdir: Path, rows: int) -> dict[str, Any]:
    folder = workdir / "sample-parts"
    folder.mkdir()
    start = time.perf_counter()
    for version, count, seed in ((1, rows // 10, 1), (2, rows, 2)):
        for flush in flushes(count, version, seed):
            write_part(folder, flush_table(flush))
    written = (rows + rows // 10) / (time.perf_counter() - start)
    since, until = query_range()
    arrow_s, count = timed(lambda: _dataset_read(folder, since, until))
    duck_s, _ = timed(lambda: _duckdb_parquet_read(folder, since, until))
    return {"write_rows_per_s": written, "read_s": arrow_s, "duckdb_read_s": duck_s,
            "rows": count, "files": len(list(folder.glob("*.parquet")))}


def _dataset_read(folder: Path, since: datetime, until: datetime) -> pa.Table:
    dataset = ds.dataset(folder, format="parquet")
    condition = ((ds.field("model") == MODEL) & (ds.field("version") == 2)
                 & (ds.field("ts") >= pa.scalar(since, pa.timestamp("us", tz="UTC")))
                 & (ds.field("ts") < pa.scalar(until, pa.timestamp("us", tz="UTC"))))
    return dataset.to_table(filter=condition).sort_by("ts")


def _duckdb_parquet_read(folder: Path, since: datetime, until: datetime) -> pa.Table:
    import duckdb

    sql = (f"SELECT * FROM read_parquet('{folder}/*.parquet') WHERE model = ? AND version = 2 "
           "AND ts >= ? AND ts < ? ORDER BY ts")
    with duckdb.connect() as connection:
        return connection.sql(sql, params=[MODEL, since, until]).to_arrow_table()


# -- (c) a reader in another process while a writer appends ------------------------------------


def writer_process(kind: str, target: str, seconds: float) -> None:
    """Append fresh event batches to `target` for `seconds`; print as JSON the events per
    second of time spent appending, and the appends that failed."""
    append, close = _writer(kind, target)
    print("ready", flush=True)
    done, failures, appending = 0, 0, 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        batch = make_events(EVENT_BATCH, offset=done)
        start = time.perf_counter()
        try:
            append(batch)
            done += len(batch)
        except Exception:
            failures += 1
            time.sleep(0.01)
        appending += time.perf_counter() - start
    close()
    print(json.dumps({"events_per_s": done / appending, "failed_flushes": failures}))


def _writer(kind: str, target: str) -> tuple[Callable[[list[InferenceEvent]], None],
                                            Callable[[], None]]:
    if kind == "embedded":
        store = SqlStore.embedded(target)
        return store.append_events, store.close
    import duckdb

    if kind == "duckdb-held":
        connection = duckdb.connect(target)
        return lambda events: _duckdb_append(connection, events), connection.close

    def reopen(events: list[InferenceEvent]) -> None:
        with duckdb.connect(target) as connection:
            _duckdb_append(connection, events)

    return reopen, lambda: None


def _duckdb_append(connection: Any, events: list[InferenceEvent]) -> None:
    connection.register("batch", events_arrow(events))
    connection.execute("INSERT INTO events SELECT * FROM batch")
    connection.unregister("batch")


@dataclass(frozen=True)
class Writer:
    process: subprocess.Popen[str]
    reading_until: float
    """Read until then: the writer is still appending (it stops `CONCURRENT_S` after ready)."""

    def outcome(self) -> dict[str, Any]:
        self.process.wait(timeout=120)
        return dict(json.loads(self.process.stdout.read() if self.process.stdout else "{}"))


@contextmanager
def writer(kind: str, target: str) -> Iterator[Writer]:
    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'bench' / 'monitor')!r}); "
            f"import store_bench; store_bench.writer_process({kind!r}, {target!r}, "
            f"{CONCURRENT_S})")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    try:
        yield Writer(process, time.monotonic() + CONCURRENT_S - 0.5)
    finally:
        if process.poll() is None:
            process.wait(timeout=120)


def concurrent_embedded(workdir: Path, rows: int) -> dict[str, Any]:
    """Read the million rows (and the latest events) while another process appends events."""
    target = f"sqlite:///{workdir / 'samples.db'}"
    reader = SqlStore.embedded(target)
    since, until = query_range()
    reads, failures = [], 0
    with writer("embedded", target) as running:
        while time.monotonic() < running.reading_until:
            try:
                start = time.perf_counter()
                reader.samples(MODEL, 2, since, until)
                reader.events(MODEL, limit=1000)
                reads.append(time.perf_counter() - start)
            except Exception:
                failures += 1
        outcome = running.outcome()
    reader.close()
    return {"reads": len(reads), "failed_reads": failures,
            "median_read_s": float(np.median(reads)) if reads else None, **outcome}


def concurrent_duckdb(workdir: Path, kind: str) -> dict[str, Any]:
    import duckdb

    path = workdir / f"{kind}.duckdb"
    with duckdb.connect(str(path)) as connection:
        _duckdb_events_table(connection)
    reads, errors = 0, []
    with writer(kind, str(path)) as running:
        while time.monotonic() < running.reading_until:
            try:
                with duckdb.connect(str(path), read_only=True) as connection:
                    connection.execute("SELECT count(*) FROM events").fetchall()
                reads += 1
            except Exception as exc:
                errors.append(str(exc).splitlines()[0][:160])
                time.sleep(0.01)
        outcome = running.outcome()
    return {"reads": reads, "failed_reads": len(errors),
            "first_error": errors[0] if errors else None, **outcome}


# -- PostgreSQL: Arrow chunks in BYTEA against a JSONB row per sampled row ----------------------


def postgres_samples(rows: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from postgres_server import start_server

    try:
        server = start_server()
    except (RuntimeError, OSError) as exc:
        return {"skipped": str(exc)}
    try:
        store = SqlStore.postgres(server.url)
        written = fill_store(store, rows)
        since, until = query_range()
        seconds, count = timed(lambda: store.samples(MODEL, 2, since, until))
        store.close()
        jsonb_s = _jsonb_read(server.url.replace("postgresql+psycopg", "postgresql"), rows)
        return {"write_rows_per_s": written, "read_s": seconds, "rows": count,
                "jsonb_read_s": jsonb_s}
    finally:
        server.stop()


def _jsonb_read(url: str, rows: int) -> float:
    """Load the same rows as JSONB (COPY) and read them back into Arrow by the fastest path:
    the JSON text through Arrow's JSON reader."""
    import psycopg
    import pyarrow.json as pa_json

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TABLE jsonb_samples (model text, version int, "
                           "ts timestamptz, data jsonb)")
        with connection.cursor().copy(
                "COPY jsonb_samples (model, version, ts, data) FROM STDIN") as copy:
            for flush in flushes(rows, version=2, seed=2):
                for sample in flush:
                    for line in _json_rows(sample):
                        copy.write_row((MODEL, 2, sample.ts, line))

        def read() -> pa.Table:
            texts = connection.execute(
                "SELECT data::text FROM jsonb_samples WHERE model = %s AND version = 2 "
                "AND ts >= %s AND ts < %s ORDER BY ts", (MODEL, *query_range())).fetchall()
            body = "\n".join(text for (text,) in texts).encode()
            return pa_json.read_json(pa.BufferReader(body))

        return timed(read)[0]


def _json_rows(sample: SampledRows) -> Iterator[str]:
    names = list(sample.columns)
    for index in range(ROWS_PER_REQUEST):
        yield json.dumps({name: _plain(sample.columns[name][index]) for name in names})


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# -- report ------------------------------------------------------------------------------------


def processor() -> dict[str, str]:
    fields: dict[str, str] = {}
    with suppress(OSError, subprocess.SubprocessError):
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    flags = set(fields.get("Flags", "").split())
    return {"model_name": fields.get("Model name", platform.processor()),
            "family": fields.get("CPU family", "?"), "model": fields.get("Model", "?"),
            "flags": " ".join(flag for flag in ("avx2", "avx512f", "avx512_vnni")
                              if flag in flags),
            "cpus": str(os.cpu_count())}


def has_duckdb() -> bool:
    try:
        import duckdb  # noqa: F401
    except ImportError:
        return False
    return True


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    duck = has_duckdb()
    report: dict[str, Any] = {"processor": processor(), "rows": args.rows}
    report["events_per_s"] = {
        "embedded (SQLite WAL), event objects": embedded_events(workdir, args.batches),
        "embedded (SQLite WAL), the capture's event tables": embedded_events(
            workdir, args.batches, True),
        "parquet parts": parquet_events(workdir, args.batches),
        **({"duckdb (held open)": duckdb_events(workdir, args.batches, reopen=False),
            "duckdb (open/close per flush)": duckdb_events(workdir, args.batches, reopen=True)}
           if duck else {}),
    }
    report["events_read"] = embedded_events_read(workdir)
    report["samples"] = {"embedded (SQLite WAL, Arrow chunks)": embedded_samples(workdir,
                                                                               args.rows),
                         "parquet parts": parquet_samples(workdir, args.rows)}
    if duck:
        report["samples"]["duckdb"] = duckdb_samples(workdir, args.rows)
    report["concurrent"] = {"embedded": concurrent_embedded(workdir, args.rows)}
    if duck:
        for kind in ("duckdb-held", "duckdb-reopen"):
            report["concurrent"][kind] = concurrent_duckdb(workdir, kind)
    if not args.skip_postgres:
        report["postgres"] = postgres_samples(args.rows)
    return report


def markdown(report: dict[str, Any], command: str) -> str:
    cpu = report["processor"]
    lines = [f"`{command}`", "",
             f"CPU: {cpu['model_name']} (family {cpu['family']}, model {cpu['model']}, "
             f"{cpu['flags']}), {cpu['cpus']} logical CPUs", "",
             "| (a) events appended, batches of 1000 | events/s |", "|---|---:|"]
    lines += [f"| {name} | {rate:,.0f} |" for name, rate in report["events_per_s"].items()]
    lines += ["", f"Events read back from the embedded store: {_fmt(report['events_read'])}"]
    lines += ["", f"| (b) {report['rows']:,} sampled rows x 20 columns | details |", "|---|---|"]
    lines += [f"| {name} | {_fmt(result)} |" for name, result in report["samples"].items()]
    lines += ["", "| (c) reader process while a writer process appends | details |", "|---|---|"]
    lines += [f"| {name} | {_fmt(result)} |" for name, result in report["concurrent"].items()]
    if "postgres" in report:
        lines += ["", f"PostgreSQL: {_fmt(report['postgres'])}"]
    return "\n".join(lines)


def _fmt(result: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value:,.3g}" if isinstance(value, float) else f"{key} {value}"
                     for key, value in result.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ferry-monitor-bench-") as workdir:
        report = run(args, Path(workdir))
    command = shlex.join(["python", "bench/monitor/store_bench.py", *sys.argv[1:]])
    print(markdown(report, command))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    multiprocessing.set_start_method("spawn", force=True)
    main()
