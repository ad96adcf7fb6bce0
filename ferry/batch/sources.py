"""Where a batch reads: Parquet, CSV and JSON-lines files, folders and globs, local or at any
fsspec URL (`s3://...`), read as a stream of record batches and never whole.

A source is cut into parts, the unit a worker scores, a run stages and `--resume` skips:
a run of consecutive Parquet row groups of about `PART_ROWS` rows, or a whole CSV or JSON
file (their rows cannot be reached without reading what comes before them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from ferry.errors import BatchRunError, InvalidInputError, one_line

PART_ROWS = 131_072
"""Row groups are joined into parts of at least this many rows."""
BLOCK_BYTES = 4 << 20
"""CSV and JSON are parsed in blocks of this size."""
GLOB_CHARACTERS = "*?["


class Format(StrEnum):
    PARQUET = "parquet"
    CSV = "csv"
    JSON = "json"


SUFFIXES = {".parquet": Format.PARQUET, ".pq": Format.PARQUET, ".csv": Format.CSV,
            ".jsonl": Format.JSON, ".ndjson": Format.JSON, ".json": Format.JSON}


@dataclass(frozen=True)
class Part:
    """One unit of work: a file, and for Parquet some of its row groups."""

    index: int
    path: str
    row_groups: tuple[int, ...] | None = None
    rows: int | None = None


@dataclass(frozen=True)
class Source:
    """A resolved input: its files' format, filesystem and parts. Picklable, so workers and
    Spark executors open the files themselves."""

    url: str
    format: Format
    protocol: str
    storage_options: dict[str, Any]
    parts: tuple[Part, ...]

    @property
    def rows(self) -> int | None:
        """The number of rows, when the files' metadata tells it (Parquet)."""
        counts = [part.rows for part in self.parts]
        return None if any(c is None for c in counts) else sum(c or 0 for c in counts)

    def filesystem(self) -> fsspec.AbstractFileSystem:
        return fsspec.filesystem(self.protocol, **self.storage_options)

    def schema(self) -> pa.Schema:
        """The columns and types of the first file, read from its footer or first block."""
        part = self.parts[0]
        with self.filesystem().open(part.path, "rb") as file:
            if self.format == Format.PARQUET:
                return _guard(part.path, lambda: pq.read_schema(file))
            return _guard(part.path, lambda: _text_reader(self.format, file, None).schema)

    def read(self, part: Part, columns: list[str], batch_rows: int,
             schema: pa.Schema | None = None) -> Iterator[pa.RecordBatch]:
        """The part's rows, `columns` only, in batches of at most `batch_rows`; a file that
        cannot be read raises `BatchRunError` naming it."""
        with self.filesystem().open(part.path, "rb") as file:
            yield from _guarded_batches(part.path, self._batches(file, part, columns,
                                                                 batch_rows, schema))

    def _batches(self, file: Any, part: Part, columns: list[str], batch_rows: int,
                 schema: pa.Schema | None) -> Iterator[pa.RecordBatch]:
        if self.format == Format.PARQUET:
            parquet = pq.ParquetFile(file)
            yield from parquet.iter_batches(batch_size=batch_rows, columns=columns,
                                            row_groups=list(part.row_groups or ()))
            return
        for batch in _text_reader(self.format, file, schema, columns):
            yield from (batch.slice(start, batch_rows)
                        for start in range(0, batch.num_rows, batch_rows))


def open_source(url: str, storage_options: dict[str, Any] | None = None) -> Source:
    """The files `url` names (a file, a folder, or a glob), in name order, cut into parts."""
    options = storage_options or {}
    fs, path = fsspec.core.url_to_fs(url, **options)
    files = _files(fs, path, url)
    formats = {SUFFIXES[_suffix(f)] for f in files}
    if len(formats) > 1:
        raise InvalidInputError(f"--input {url} mixes {sorted(formats)} files: give one format")
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    fmt = formats.pop()
    return Source(url=_display(url, protocol), format=fmt, protocol=protocol,
                  storage_options=options, parts=_parts(fs, files, fmt))


def _files(fs: fsspec.AbstractFileSystem, path: str, url: str) -> list[str]:
    if any(c in path for c in GLOB_CHARACTERS):
        found = [p for p in fs.glob(path) if not fs.isdir(p)]
    elif fs.isdir(path):
        found = [p for p in fs.find(path) if not _hidden(p, path)]
    elif fs.exists(path):
        found = [path]
    else:
        raise InvalidInputError(f"--input {url}: no such file or folder")
    files = sorted(p for p in found if _suffix(p) in SUFFIXES)
    if not files:
        raise InvalidInputError(f"--input {url} holds no {', '.join(sorted(SUFFIXES))} files")
    return files


def _hidden(path: str, root: str) -> bool:
    """Files and folders whose names start with `.` or `_` (staging, `_SUCCESS`), as Spark
    and pyarrow skip them."""
    relative = path[len(root.rstrip("/")) + 1:]
    return any(name.startswith((".", "_")) for name in relative.split("/"))


def _suffix(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def _display(url: str, protocol: str) -> str:
    """The input as recorded on the run: an absolute path for local files."""
    if protocol in ("file", "local") and "://" not in url:
        return os.path.abspath(os.path.expanduser(url))
    return url


def _parts(fs: fsspec.AbstractFileSystem, files: list[str], fmt: Format) -> tuple[Part, ...]:
    parts: list[Part] = []
    for path in files:
        if fmt != Format.PARQUET:
            parts.append(Part(len(parts), path))
            continue
        for groups, rows in _row_group_runs(fs, path):
            parts.append(Part(len(parts), path, groups, rows))
    return tuple(parts)


def _row_group_runs(fs: fsspec.AbstractFileSystem,
                    path: str) -> Iterator[tuple[tuple[int, ...], int]]:
    with fs.open(path, "rb") as file:
        metadata = _guard(path, lambda: pq.read_metadata(file))
    groups: list[int] = []
    rows = 0
    for index in range(metadata.num_row_groups):
        groups.append(index)
        rows += metadata.row_group(index).num_rows
        if rows >= PART_ROWS:
            yield tuple(groups), rows
            groups, rows = [], 0
    if groups or metadata.num_row_groups == 0:
        yield tuple(groups), rows


def _text_reader(fmt: Format, file: Any, schema: pa.Schema | None,
                 columns: list[str] | None = None) -> Any:
    if fmt == Format.CSV:
        convert = pa_csv.ConvertOptions(
            column_types=None if schema is None else {f.name: f.type for f in schema},
            include_columns=columns)
        return pa_csv.open_csv(file, read_options=pa_csv.ReadOptions(block_size=BLOCK_BYTES),
                               convert_options=convert)
    parse = pa_json.ParseOptions(explicit_schema=schema)
    reader = pa_json.open_json(file, read_options=pa_json.ReadOptions(block_size=BLOCK_BYTES),
                               parse_options=parse)
    return reader if columns is None else (b.select(columns) for b in reader)


def _guard(path: str, read: Any) -> Any:
    try:
        return read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise BatchRunError(f"cannot read {path}: {one_line(exc)}") from exc


def _guarded_batches(path: str, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    while True:
        batch = _guard(path, lambda: next(batches, None))
        if batch is None:
            return
        yield batch
