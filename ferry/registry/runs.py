"""Batch scoring runs, as the registry records them (`ferry runs URI` lists them).

A run is recorded `running` before its first row is scored and `completed` or `failed` when
it ends; a run killed on the way stays `running` until `--resume` picks it up. The record is
a mapped dataclass, so what the database holds is what callers get, detached from the
session.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, MappedAsDataclass, mapped_column
from sqlalchemy.types import TypeDecorator

from ferry.registry.schema import Base


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class UTCDateTime(TypeDecorator[datetime]):
    """A time stored with its zone and read back in UTC (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class BatchRun(MappedAsDataclass, Base):
    """One batch scoring run of one version: where it read, where it wrote, how it ended."""

    __tablename__ = "batch_runs"
    __table_args__ = (Index("ix_batch_runs_model", "model", "version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    input: Mapped[str] = mapped_column(Text, nullable=False)
    output: Mapped[str] = mapped_column(Text, nullable=False)
    """The target as given (a directory, a PostgreSQL URL with `#table`, or the warehouse);
    passwords are removed."""
    engine: Mapped[str] = mapped_column(String(32), nullable=False)
    workers: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True,
                                                         default=None)
    error: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default_factory=dict)
    """The key and kept columns, the output's table or folder, the number of parts."""

    @property
    def uri(self) -> str:
        return f"{self.model}:{self.version}"

    def time(self) -> datetime:
        """When the run's predictions were made (its start), in UTC."""
        return self.started_at if self.started_at.tzinfo else self.started_at.replace(tzinfo=UTC)

