"""A Parquet dataset in a folder, local or at any fsspec URL.

    DIR/run-<run id>/part-00000.parquet ...   one folder per published run
    DIR/_staging/<run id>/...                 parts of runs not yet published

Readers of `DIR` as a dataset (pyarrow, Spark, pandas; DuckDB with `DIR/*/*.parquet`) skip
`_staging`, so a run's rows appear when its folder is renamed into place, and the runs it
replaces are removed right after.
"""

from __future__ import annotations

import fsspec
import pyarrow as pa
import pyarrow.dataset as ds

from ferry.batch.staging import Staging

RUN_PREFIX = "run-"
STAGING_FOLDER = "_staging"


class ParquetSink:
    def __init__(self, url: str):
        self.fs, path = fsspec.core.url_to_fs(url)
        protocol = self.fs.protocol
        self.protocol = protocol if isinstance(protocol, str) else protocol[0]
        self.path = path.rstrip("/")
        self.description = url if "://" in url else self.path

    def staging(self, run_id: str) -> Staging:
        return Staging(self.protocol, f"{self.path}/{STAGING_FOLDER}/{run_id}", {})

    def publish(self, run_id: str, staging: Staging, replaces: list[str]) -> None:
        final = self._run_folder(run_id)
        if self.fs.exists(final):
            self.fs.rm(final, recursive=True)
        self._move_folder(staging.path, final)
        for old in replaces:
            if old != run_id and self.fs.exists(self._run_folder(old)):
                self.fs.rm(self._run_folder(old), recursive=True)
        self._drop_empty_staging()

    def _move_folder(self, source: str, target: str) -> None:
        """One rename on a local disk; object stores have no folders to rename, so there
        each part is copied to its place, and the run's folder is complete once the last
        one lands (readers that must not see a partial run read through `ferry runs`)."""
        if self.protocol in ("file", "local"):
            self.fs.mv(source, target, recursive=True)
            return
        for path in self.fs.find(source):
            self.fs.mv(path, f"{target}/{path.rsplit('/', 1)[-1]}")
        if self.fs.exists(source):
            self.fs.rm(source, recursive=True)

    def _drop_empty_staging(self) -> None:
        folder = f"{self.path}/{STAGING_FOLDER}"
        if self.fs.exists(folder) and not self.fs.ls(folder, detail=False):
            self.fs.rm(folder, recursive=True)

    def read(self, run_id: str) -> pa.Table:
        if not self.fs.exists(self._run_folder(run_id)):
            return pa.table({})
        files = [f for f in self.fs.find(self._run_folder(run_id)) if self.fs.size(f) > 0]
        return ds.dataset(files, format="parquet", filesystem=self.fs).to_table()

    def runs(self) -> set[str]:
        if not self.fs.exists(self.path):
            return set()
        names = (p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.path, detail=False))
        return {n[len(RUN_PREFIX):] for n in names if n.startswith(RUN_PREFIX)}

    def _run_folder(self, run_id: str) -> str:
        return f"{self.path}/{RUN_PREFIX}{run_id}"
