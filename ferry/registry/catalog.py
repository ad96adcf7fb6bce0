"""Every model at a glance: what a model list (the dashboard's models page) shows, read in
two queries however many models and versions there are."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from ferry.registry.entities import Status
from ferry.registry.schema import AliasRow, ModelRow, VersionRow


@dataclass(frozen=True)
class ModelSummary:
    """A model as a list shows it: its latest version's framework, runtime and status."""

    name: str
    description: str
    created_at: datetime
    created_by: str
    versions: int
    latest: int | None
    """The newest ready version (the newest of any status when none is ready)."""
    framework: str
    runtime: str
    status: str
    aliases: dict[str, int]
    artifact: str | None
    """sha256 of the latest version's served artifact: its ONNX form, else the original."""
    size: int | None = None

    def matches(self, text: str) -> bool:
        """Whether `text` (lower case) is in the name, aliases, framework, runtime or author."""
        fields = (self.name, self.framework, self.runtime, self.created_by, self.description,
                  *self.aliases)
        return any(text in value.lower() for value in fields)


def catalog(session: Session) -> list[ModelSummary]:
    """Every model with its version count, latest version and aliases, in two queries (not a
    few per model, as `Registry.models()` and `versions()` are)."""
    rows = session.execute(_catalog_query()).all()
    aliases: dict[int, dict[str, int]] = {}
    for model_id, alias, version in session.execute(
            select(AliasRow.model_id, AliasRow.alias, AliasRow.version).order_by(AliasRow.alias)):
        aliases.setdefault(model_id, {})[alias] = version
    return [_summary(row, aliases.get(row.id, {})) for row in rows]


def _catalog_query() -> Any:
    """Models joined with their version count and latest version's row."""
    ready = func.max(case((VersionRow.status == Status.READY, VersionRow.version)))
    counts = (select(VersionRow.model_id, func.count().label("n"),
                     func.coalesce(ready, func.max(VersionRow.version)).label("latest"))
              .group_by(VersionRow.model_id).subquery())
    return (select(ModelRow.id, ModelRow.name, ModelRow.description, ModelRow.created_at,
                   ModelRow.created_by, counts.c.n, counts.c.latest, VersionRow.framework,
                   VersionRow.runtime, VersionRow.status, VersionRow.onnx_sha256,
                   VersionRow.original_sha256)
            .outerjoin(counts, counts.c.model_id == ModelRow.id)
            .outerjoin(VersionRow, and_(VersionRow.model_id == ModelRow.id,
                                        VersionRow.version == counts.c.latest))
            .order_by(ModelRow.name))


def _summary(row: Any, aliases: dict[str, int]) -> ModelSummary:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return ModelSummary(name=row.name, description=row.description or "", created_at=created,
                        created_by=row.created_by or "", versions=row.n or 0,
                        latest=row.latest, framework=row.framework or "",
                        runtime=row.runtime or "", status=row.status or "",
                        aliases=aliases, artifact=row.onnx_sha256 or row.original_sha256)
