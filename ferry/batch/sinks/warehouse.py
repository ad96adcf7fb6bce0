"""The embedded warehouse: a DuckDB file (by default `$FERRY_HOME/warehouse.duckdb`), one
table per model, no set-up.

Parts are staged as Parquet under `$FERRY_HOME/batch/staging/<run id>`; publishing inserts
them and deletes the replaced runs' rows in one DuckDB transaction, so readers see the old
rows or the new ones, never a mix. DuckDB lets one process write a file at a time: a writer
or reader that finds the file locked waits for it (up to `LOCK_WAIT_S`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa

from ferry.batch.staging import Staging
from ferry.errors import BatchRunError

LOCK_WAIT_S = 30.0
MEMORY_LIMIT = "512MB"
"""DuckDB spills to disk past this, so publishing 10M rows stays within bounded memory."""
T = TypeVar("T")


class WarehouseSink:
    def __init__(self, path: Path, table: str, staging_root: Path):
        self.path = path
        self.table = table
        self.staging_root = staging_root
        self.description = f"{path}#{table}"

    def staging(self, run_id: str) -> Staging:
        return Staging("file", str(self.staging_root / run_id), {})

    def publish(self, run_id: str, staging: Staging, replaces: list[str]) -> None:
        files = staging.files()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with_connection(self.path, False, lambda c: self._publish(c, run_id, files, replaces))
        staging.remove()

    def _publish(self, connection: duckdb.DuckDBPyConnection, run_id: str, files: list[str],
                 replaces: list[str]) -> None:
        connection.execute("BEGIN TRANSACTION")
        if files:
            self._prepare_table(connection, files)
        if self._exists(connection):
            connection.execute(f"DELETE FROM {self._name} WHERE run_id IN"
                               f" (SELECT unnest(?::VARCHAR[]))", [[run_id, *replaces]])
        if files:
            connection.execute(f"INSERT INTO {self._name} BY NAME SELECT * FROM read_parquet(?)",
                               [files])
        connection.execute("COMMIT")

    def _prepare_table(self, connection: duckdb.DuckDBPyConnection, files: list[str]) -> None:
        source = f"(SELECT * FROM read_parquet({_list(files)}) LIMIT 0)"
        if not self._exists(connection):
            connection.execute(f"CREATE TABLE {self._name} AS SELECT * FROM {source}")
            return
        have = {r[0] for r in connection.execute(f"DESCRIBE {self._name}").fetchall()}
        for name, kind, *_ in connection.execute(f"DESCRIBE {source}").fetchall():
            if name not in have:
                connection.execute(f"ALTER TABLE {self._name} ADD COLUMN {_quote(name)} {kind}")

    def read(self, run_id: str) -> pa.Table:
        def query(connection: duckdb.DuckDBPyConnection) -> pa.Table:
            if not self._exists(connection):
                return pa.table({})
            query = f"SELECT * FROM {self._name} WHERE run_id = $1"
            return connection.sql(query, params=[run_id]).to_arrow_table()
        if not self.path.exists():
            return pa.table({})
        return with_connection(self.path, True, query)

    def runs(self) -> set[str]:
        def query(connection: duckdb.DuckDBPyConnection) -> set[str]:
            if not self._exists(connection):
                return set()
            rows = connection.execute(f"SELECT DISTINCT run_id FROM {self._name}").fetchall()
            return {str(r[0]) for r in rows}
        if not self.path.exists():
            return set()
        return with_connection(self.path, True, query)

    @property
    def _name(self) -> str:
        return _quote(self.table)

    def _exists(self, connection: duckdb.DuckDBPyConnection) -> bool:
        found = connection.execute("SELECT count(*) FROM information_schema.tables"
                                   " WHERE table_name = ?", [self.table]).fetchall()
        return bool(found[0][0])


def with_connection(path: Path, read_only: bool,
                    use: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
    """`use` on a connection to `path`, waiting while another process holds the file."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            connection = duckdb.connect(str(path), read_only=read_only,
                                        config={"memory_limit": MEMORY_LIMIT})
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise BatchRunError(f"cannot open the warehouse {path}: {exc}") from exc
            time.sleep(0.1)
    try:
        return use(connection)
    finally:
        connection.close()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _list(files: list[str]) -> str:
    return "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
