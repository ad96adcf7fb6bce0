"""A run's finished parts, kept where readers do not look until the run is published.

Each part is one Parquet file, `part-00007.parquet`, that appears only once complete: on a
local disk it is written under a temporary name and renamed; on object stores (S3) an
object appears only when its upload completes. `--resume` keeps the parts that exist.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from ferry.batch.outputs import STAMP_COLUMNS

PART_NAME = re.compile(r"part-(\d{5,})\.parquet$")


@dataclass(frozen=True)
class Staging:
    """The folder `path` on the filesystem `protocol` holding a run's finished parts."""

    protocol: str
    path: str
    storage_options: dict[str, Any]

    def filesystem(self) -> fsspec.AbstractFileSystem:
        return fsspec.filesystem(self.protocol, **self.storage_options)

    @property
    def local(self) -> bool:
        return self.protocol in ("file", "local")

    def part_path(self, index: int) -> str:
        return f"{self.path}/part-{index:05d}.parquet"

    def done(self) -> set[int]:
        """The parts already staged."""
        fs = self.filesystem()
        if not fs.exists(self.path):
            return set()
        names = (p.rsplit("/", 1)[-1] for p in fs.ls(self.path, detail=False))
        return {int(m.group(1)) for m in map(PART_NAME.match, names) if m}

    def files(self) -> list[str]:
        """The staged parts that hold rows, in part order."""
        fs = self.filesystem()
        paths = (self.part_path(i) for i in sorted(self.done()))
        return [p for p in paths if fs.size(p) > 0]

    def write(self, index: int, batches: Iterable[pa.RecordBatch]) -> int:
        """Write one part from `batches`; returns its rows. The part is visible only whole."""
        fs = self.filesystem()
        fs.makedirs(self.path, exist_ok=True)
        final = self.part_path(index)
        target = f"{final}.tmp" if self.local else final
        rows = 0
        with fs.open(target, "wb") as file:
            writer: pq.ParquetWriter | None = None
            for batch in batches:
                writer = writer or pq.ParquetWriter(
                    file, batch.schema, use_dictionary=dictionary_columns(batch.schema))
                writer.write_batch(batch)
                rows += batch.num_rows
            if writer is not None:
                writer.close()
        if rows == 0:
            fs.rm(target)
            _empty_part(fs, final)
        elif self.local:
            fs.mv(target, final)
        return rows

    def clear(self) -> None:
        """Drop everything staged (an engine that cannot resume by parts starts over)."""
        self.remove()

    def remove(self) -> None:
        fs = self.filesystem()
        if fs.exists(self.path):
            fs.rm(self.path, recursive=True)


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns worth a Parquet dictionary: text, and the run's constant stamp columns.
    Trying one on every column (pyarrow's default) costs more than the rest of the write on
    probability columns, which never fit one."""
    return [f.name for f in schema if f.name in STAMP_COLUMNS or pa.types.is_string(f.type)
            or pa.types.is_large_string(f.type) or pa.types.is_dictionary(f.type)]


def _empty_part(fs: fsspec.AbstractFileSystem, final: str) -> None:
    """A part that scored no rows still marks itself done: an empty file, skipped on read."""
    with fs.open(final, "wb"):
        pass


def staging_at(url: str) -> Staging:
    fs, path = fsspec.core.url_to_fs(url)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return Staging(protocol, path.rstrip("/"), {})
