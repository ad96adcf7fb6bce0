"""Content-addressed artifact storage on any fsspec filesystem.

Artifacts live at `ROOT/sha256/ab/abcdef...`. A write goes to `ROOT/tmp/` first and is then
moved into place, so a reader never sees half an artifact; every read recomputes the sha256
and refuses bytes that do not match. `memory://` gives an in-process store for tests.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import fsspec
from fsspec.core import url_to_fs

from ferry.errors import CorruptArtifactError, MissingArtifactError

SHA_DIR = "sha256"
TMP_DIR = "tmp"


@dataclass(frozen=True)
class StoredArtifact:
    sha256: str
    size: int
    modified: float
    """Seconds since the epoch."""


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ArtifactStore:
    """Bytes by their sha256 under `url` (a folder path or any fsspec URL)."""

    def __init__(self, url: str):
        self.url = url
        self._fs: fsspec.AbstractFileSystem | None = None
        self._root = ""

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        if self._fs is None:
            self._fs, root = url_to_fs(self.url)
            self._root = root.rstrip("/")
        return self._fs

    @property
    def root(self) -> str:
        _ = self.fs
        return self._root

    def path(self, sha256: str) -> str:
        return f"{self.root}/{SHA_DIR}/{sha256[:2]}/{sha256}"

    def put(self, data: bytes) -> str:
        """Store `data` if it is not there yet; return its sha256."""
        sha256 = sha256_of(data)
        final = self.path(sha256)
        if self.fs.exists(final) and self._refresh(final):
            return sha256
        tmp = f"{self.root}/{TMP_DIR}/{uuid.uuid4().hex}"
        self.fs.makedirs(f"{self.root}/{TMP_DIR}", exist_ok=True)
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, final)
        return sha256

    def _refresh(self, path: str) -> bool:
        """Mark an artifact as just written, so `gc`'s grace period protects it again while a
        new registration that re-uses it commits. False where the filesystem cannot."""
        try:
            self.fs.touch(path, truncate=False)
        except (NotImplementedError, ValueError, OSError):
            return False
        return True

    def get(self, sha256: str, *, model: str | None = None, version: int | None = None) -> bytes:
        """The bytes stored under `sha256`, verified."""
        where = f" of {model}:{version}" if model else ""
        try:
            data: bytes = self.fs.cat_file(self.path(sha256))
        except FileNotFoundError as exc:
            raise MissingArtifactError(
                f"artifact {sha256[:12]}{where} is missing from {self.url}",
                model=model, version=version,
            ) from exc
        if sha256_of(data) != sha256:
            raise CorruptArtifactError(
                f"artifact {sha256[:12]}{where} is corrupt: its bytes no longer match the"
                f" checksum recorded at registration (in {self.url}); register the model again",
                model=model, version=version,
            )
        return data

    def exists(self, sha256: str) -> bool:
        return bool(self.fs.exists(self.path(sha256)))

    def stored(self) -> Iterator[StoredArtifact]:
        """Every artifact and every leftover temporary file (sha256 'tmp/...')."""
        for folder in (SHA_DIR, TMP_DIR):
            base = f"{self.root}/{folder}"
            if not self.fs.exists(base):
                continue
            for path, info in self.fs.find(base, detail=True).items():
                name = path.rstrip("/").rsplit("/", 1)[-1]
                key = name if folder == SHA_DIR else f"{TMP_DIR}/{name}"
                yield StoredArtifact(key, int(info.get("size") or 0), _modified(info))

    def delete(self, key: str) -> None:
        path = f"{self.root}/{key}" if key.startswith(f"{TMP_DIR}/") else self.path(key)
        self.fs.rm_file(path)


def _modified(info: dict[str, object]) -> float:
    for field in ("mtime", "LastModified", "created", "updated"):
        value = info.get(field)
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, datetime):
            return value.timestamp()
    return time.time()
