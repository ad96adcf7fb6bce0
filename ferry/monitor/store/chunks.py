"""Arrow IPC chunks: how the stores keep many rows as one value.

Sampled rows and request events are both kept this way: rows ordered by their `ts` column,
at most `CHUNK_ROWS` to a chunk, written as one zstd-compressed Arrow IPC stream. Reading a
million rows then decodes a few dozen blobs instead of passing millions of values through a
database driver, and appending a flush's rows is one insert (bench/monitor/RESULTS.md).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from ferry.monitor.store.records import TIMESTAMP

CHUNK_ROWS = 65_536
"""The most rows one stored chunk holds: big enough that reading a million rows decodes a
few dozen chunks, small enough that rewriting one (purge, merge) is quick."""
IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")
"""Zstandard frames: smaller than LZ4 or none and read as fast (bench/monitor/RESULTS.md)."""


def split(table: pa.Table) -> list[pa.Table]:
    return [table.slice(start, CHUNK_ROWS) for start in range(0, table.num_rows, CHUNK_ROWS)]


def ts_span(table: pa.Table) -> tuple[int, int]:
    """The first and last microsecond of a chunk's rows."""
    span = pc.min_max(table["ts"].cast(pa.int64()))
    return int(span["min"].as_py()), int(span["max"].as_py())


def to_ipc(table: pa.Table) -> bytes:
    """One record batch: a table concatenated from many requests' rows would otherwise keep
    a batch per request, and each costs a header and a compressed frame per column."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=IPC_OPTIONS) as writer:
        writer.write_table(table.combine_chunks())
    return bytes(sink.getvalue())


def from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def in_range(table: pa.Table, since_us: int | None, until_us: int | None) -> pa.Table:
    """The rows with `since_us <= ts < until_us` (either bound may be open); the table
    itself when every row is in range, which is the usual case and saves a copy."""
    if not table.num_rows:
        return table
    first, last = ts_span(table)
    low = since_us if since_us is not None and since_us > first else None
    high = until_us if until_us is not None and until_us <= last else None
    if low is None and high is None:
        return table
    ts = pc.field("ts")
    condition = pc.scalar(True)
    if low is not None:
        condition &= ts >= pa.scalar(low, pa.int64()).cast(TIMESTAMP)
    if high is not None:
        condition &= ts < pa.scalar(high, pa.int64()).cast(TIMESTAMP)
    return table.filter(condition)


def by_time(table: pa.Table) -> pa.Table:
    """Sorted by `ts`, keeping the stored order of equal times (a request's rows in order);
    chunks are stored sorted, so this is usually only the check."""
    micros = table["ts"].cast(pa.int64()).combine_chunks()
    if len(micros) < 2 or pc.all(pc.less_equal(micros[:-1], micros[1:])).as_py():
        return table
    return table.take(pc.sort_indices(micros))
