"""Typed settings, read from the environment in one place.

`FERRY_HOME` (default `~/.ferry`) holds the default SQLite registry and artifact folder;
`FERRY_REGISTRY_URL` points the metadata at any SQLAlchemy URL (PostgreSQL included);
`FERRY_ARTIFACTS_URL` points the artifacts at any fsspec URL (a folder, `s3://...`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = "~/.ferry"
DEFAULT_REGISTRY_FILE = "registry.db"
DEFAULT_ARTIFACTS_DIR = "artifacts"
DEFAULT_SQLITE_BUSY_TIMEOUT_S = 60.0
"""How long a SQLite writer waits for another process's transaction before failing."""
DEFAULT_GC_GRACE_S = 3600.0
"""Artifacts younger than this are never collected: a registration may still be writing them."""


@dataclass(frozen=True)
class Settings:
    """Where the registry keeps its metadata and artifacts."""

    home: Path
    registry_url: str
    artifacts_url: str

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("FERRY_HOME", DEFAULT_HOME)).expanduser()
        registry_url = env.get("FERRY_REGISTRY_URL") or f"sqlite:///{home / DEFAULT_REGISTRY_FILE}"
        artifacts_url = env.get("FERRY_ARTIFACTS_URL") or str(home / DEFAULT_ARTIFACTS_DIR)
        return cls(home=home, registry_url=registry_url, artifacts_url=artifacts_url)
