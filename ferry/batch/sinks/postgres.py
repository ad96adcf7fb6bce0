"""A PostgreSQL table: `postgresql+psycopg://user@host:port/db#table`.

Parts are staged as Parquet under `$FERRY_HOME/batch/staging/<run id>`; publishing creates
the table (or adds new columns), deletes the replaced runs' rows and copies the new ones in
one transaction, streamed part by part with `COPY`. A password given in the URL is used but
never recorded; to read a run back later give it through `PGPASSWORD` or `~/.pgpass`.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from sqlalchemy.engine import make_url

from ferry.batch.staging import Staging
from ferry.errors import BatchRunError, InvalidInputError, one_line


def _sql_type(kind: pa.DataType) -> str:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    checks = [(pa.types.is_boolean, "BOOLEAN"), (pa.types.is_integer, "BIGINT"),
              (pa.types.is_float32, "REAL"), (pa.types.is_floating, "DOUBLE PRECISION"),
              (pa.types.is_timestamp, "TIMESTAMPTZ"), (pa.types.is_string, "TEXT"),
              (pa.types.is_large_string, "TEXT"), (pa.types.is_date, "DATE")]
    for check, name in checks:
        if check(kind):
            return name
    raise InvalidInputError(f"a PostgreSQL target takes scalar columns; {kind} is not:"
                            " write to a Parquet folder or the warehouse instead")


class PostgresSink:
    def __init__(self, url: str, staging_root: Path):
        address, _, table = url.partition("#")
        if not table:
            raise InvalidInputError(f"--output {url.split('#')[0]}: name the table after '#'"
                                    " (postgresql+psycopg://host/db#predictions)")
        parsed = make_url(address)
        self.conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        self.table = table
        self.staging_root = staging_root
        self.description = parsed.render_as_string(hide_password=True).replace(":***", "")
        self.description += f"#{table}"

    def staging(self, run_id: str) -> Staging:
        return Staging("file", str(self.staging_root / run_id), {})

    def publish(self, run_id: str, staging: Staging, replaces: list[str]) -> None:
        files = staging.files()
        with self._connect() as connection, connection.transaction():
            if files:
                self._prepare_table(connection, pq.read_schema(files[0]))
            if self._exists(connection):
                connection.execute(f"DELETE FROM {self._name} WHERE run_id = ANY(%s)",
                                   [[run_id, *replaces]])
            for file in files:
                self._copy(connection, pq.ParquetFile(file))
        staging.remove()

    def _prepare_table(self, connection: Any, schema: pa.Schema) -> None:
        columns = ", ".join(f"{_quote(f.name)} {_sql_type(f.type)}" for f in schema)
        connection.execute(f"CREATE TABLE IF NOT EXISTS {self._name} ({columns})")
        for field in schema:
            connection.execute(f"ALTER TABLE {self._name} ADD COLUMN IF NOT EXISTS"
                               f" {_quote(field.name)} {_sql_type(field.type)}")
        connection.execute(f"CREATE INDEX IF NOT EXISTS {_quote(self.table + '_run_id')}"
                           f" ON {self._name} (run_id)")

    def _copy(self, connection: Any, parquet: pq.ParquetFile) -> None:
        names = ", ".join(_quote(n) for n in parquet.schema_arrow.names)
        statement = f"COPY {self._name} ({names}) FROM STDIN (FORMAT csv)"
        with connection.cursor().copy(statement) as copy:
            for batch in parquet.iter_batches(batch_size=65_536):
                buffer = io.BytesIO()
                pa_csv.write_csv(batch, buffer, pa_csv.WriteOptions(include_header=False))
                copy.write(buffer.getvalue())

    def read(self, run_id: str) -> pa.Table:
        with self._connect() as connection:
            if not self._exists(connection):
                return pa.table({})
            cursor = connection.execute(f"SELECT * FROM {self._name} WHERE run_id = %s",
                                        [run_id])
            names = [d.name for d in cursor.description or ()]
            return pa.Table.from_pylist([dict(zip(names, row, strict=True))
                                         for row in cursor.fetchall()])

    def runs(self) -> set[str]:
        with self._connect() as connection:
            if not self._exists(connection):
                return set()
            rows = connection.execute(f"SELECT DISTINCT run_id FROM {self._name}").fetchall()
            return {str(r[0]) for r in rows}

    @property
    def _name(self) -> str:
        return _quote(self.table)

    def _exists(self, connection: Any) -> bool:
        row = connection.execute("SELECT to_regclass(%s)", [self._name]).fetchone()
        return bool(row and row[0])

    def _connect(self) -> Any:
        try:
            import psycopg
        except ImportError as exc:
            raise InvalidInputError("a PostgreSQL target needs psycopg:"
                                    " pip install 'ferry-ml[postgres]'") from exc
        try:
            return psycopg.connect(self.conninfo)
        except psycopg.Error as exc:
            raise BatchRunError(f"cannot connect to {self.description}: {one_line(exc)}") from exc


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
