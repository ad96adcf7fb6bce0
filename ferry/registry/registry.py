"""The model registry: models, versions, aliases and their history, plus the artifact store.

Metadata lives in a SQL database (SQLite by default, PostgreSQL with
`FERRY_REGISTRY_URL`), artifacts in a content-addressed store (`FERRY_ARTIFACTS_URL`).
A version's artifacts are written before its row is committed, so a registration that dies
half-way leaves only unreferenced artifacts, which `gc()` removes.
"""

from __future__ import annotations

import getpass
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ferry.errors import (
    AliasNotFoundError,
    InvalidInputError,
    ModelNotFoundError,
    NotFoundError,
    VersionNotFoundError,
)
from ferry.registry.artifacts import ArtifactStore
from ferry.registry.catalog import ModelSummary, catalog
from ferry.registry.database import open_engine, transaction
from ferry.registry.entities import (
    Event,
    ModelVersion,
    RegisteredModel,
    Report,
    ReportDraft,
    Status,
    VersionDraft,
    extra_artifacts,
)
from ferry.registry.runs import BatchRun, RunStatus
from ferry.registry.schema import AliasRow, EventRow, ModelRow, ReportRow, VersionRow
from ferry.settings import DEFAULT_GC_GRACE_S, Settings
from ferry.signature import Signature, Task
from ferry.uri import ModelURI, validate_alias, validate_name


@dataclass(frozen=True)
class GcReport:
    removed: list[str]
    freed_bytes: int
    kept: int


class Registry:
    """Versioned models. `Registry()` reads `FERRY_*` settings; pass `url` to override."""

    def __init__(self, url: str | None = None, *, artifacts_url: str | None = None,
                 actor: str | None = None):
        self.url = url
        self.artifacts_url = artifacts_url
        self.actor = actor
        self._engine: Engine | None = None
        self._artifacts: ArtifactStore | None = None

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = open_engine(self.url or Settings.from_env().registry_url)
        return self._engine

    @property
    def artifacts(self) -> ArtifactStore:
        if self._artifacts is None:
            self._artifacts = ArtifactStore(
                self.artifacts_url or Settings.from_env().artifacts_url
            )
        return self._artifacts

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _who(self) -> str:
        return self.actor or os.environ.get("FERRY_USER") or _login()

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Session]:
        """One transaction; reads (`write=False`) never wait for a writer on SQLite."""
        with transaction(self.engine, write=write) as session:
            yield session

    # -- models -----------------------------------------------------------------------------

    def models(self) -> list[RegisteredModel]:
        with self._transaction(write=False) as session:
            rows = session.scalars(select(ModelRow).order_by(ModelRow.name)).all()
            return [self._model_entity(session, row) for row in rows]

    def catalog(self) -> list[ModelSummary]:
        """Every model with its version count, latest version and aliases (`catalog`)."""
        with self._transaction(write=False) as session:
            return catalog(session)

    def model(self, name: str) -> RegisteredModel:
        with self._transaction(write=False) as session:
            return self._model_entity(session, _model_row(session, name))

    def update_model(self, name: str, *, description: str | None = None,
                     tags: dict[str, Any] | None = None) -> RegisteredModel:
        with self._transaction(write=True) as session:
            row = _model_row(session, name)
            if description is not None:
                row.description = description
            if tags is not None:
                row.tags = {**(row.tags or {}), **tags}
            return self._model_entity(session, row)

    def delete_model(self, name: str) -> None:
        """Remove a model and every version; its history stays."""
        with self._transaction(write=True) as session:
            row = _model_row(session, name, lock=True)
            session.execute(delete(AliasRow).where(AliasRow.model_id == row.id))
            session.execute(delete(ReportRow).where(ReportRow.model_id == row.id))
            session.execute(delete(VersionRow).where(VersionRow.model_id == row.id))
            session.delete(row)
            self._log(session, name, "model_deleted")

    # -- versions ---------------------------------------------------------------------------

    def create_version(self, name: str, draft: VersionDraft) -> ModelVersion:
        """Record a new version whose artifacts are already stored; numbers are consecutive."""
        validate_name(name)
        with self._transaction(write=True) as session:
            model = _lock_or_create_model(session, name, self._who())
            missing = [sha for sha in draft.artifacts() if not self.artifacts.exists(sha)]
            if missing:
                raise InvalidInputError(f"artifacts {missing} are not stored: put them first")
            number = model.next_version
            model.next_version = number + 1
            row = _version_row(model.id, number, draft, self._who())
            session.add(row)
            self._log(session, name, "registered", version=number,
                      details={"framework": draft.framework, "runtime": draft.runtime,
                               "parent_version": draft.parent_version, "forced": draft.forced})
            session.flush()
            return _version_entity(name, row, ())

    def versions(self, name: str) -> list[ModelVersion]:
        with self._transaction(write=False) as session:
            model = _model_row(session, name)
            aliases = _aliases_by_version(session, model.id)
            rows = session.scalars(select(VersionRow).where(VersionRow.model_id == model.id)
                                   .order_by(VersionRow.version)).all()
            return [_version_entity(name, r, aliases.get(r.version, ())) for r in rows]

    def get(self, uri: str | ModelURI) -> ModelVersion:
        """The version a URI names: `name` (latest ready), `name:3` or `name@alias`."""
        parsed = ModelURI.parse(uri) if isinstance(uri, str) else uri
        with self._transaction(write=False) as session:
            model = _model_row(session, parsed.name)
            number = _resolve_number(session, model, parsed)
            row = _find_version(session, model, number)
            return _version_entity(model.name, row,
                                   _aliases_by_version(session, model.id).get(number, ()))

    def archive(self, name: str, version: int) -> ModelVersion:
        """Mark a version archived: kept, but no longer the latest or an alias target."""
        with self._transaction(write=True) as session:
            model = _model_row(session, name, lock=True)
            row = _find_version(session, model, version)
            if row.status != Status.ARCHIVED:
                _refuse_if_aliased(session, model, version, "archive")
                row.status = Status.ARCHIVED
                self._log(session, name, "archived", version=version)
            return _version_entity(name, row, ())

    def set_profile(self, name: str, version: int, profile: bytes) -> ModelVersion:
        """Replace the version's reference profile (drift is measured against it); the
        artifact is written before the row points at it, and history records the change."""
        sha = self.artifacts.put(profile)
        with self._transaction(write=True) as session:
            model = _model_row(session, name, lock=True)
            row = _find_version(session, model, version)
            previous, row.profile_sha256 = row.profile_sha256, sha
            self._log(session, name, "reference_set", version=version,
                      details={"from": previous, "to": sha})
            return _version_entity(name, row, _aliases_by_version(session, model.id).get(
                version, ()))

    def delete_version(self, name: str, version: int) -> None:
        """Remove a version's record; its artifacts go at the next `gc()`."""
        with self._transaction(write=True) as session:
            model = _model_row(session, name, lock=True)
            row = _find_version(session, model, version)
            _refuse_if_aliased(session, model, version, "delete")
            session.execute(delete(ReportRow).where(ReportRow.model_id == model.id,
                                                    ReportRow.version == version))
            session.delete(row)
            self._log(session, name, "deleted", version=version)

    # -- aliases ----------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int,
                  details: dict[str, Any] | None = None) -> Event | None:
        """Point `alias` at `version`; moving it back is a rollback, and history shows it
        (with `details`, e.g. the gate's result and an override's reason). Returns the
        history event, or None when the alias already pointed there."""
        validate_alias(alias)
        with self._transaction(write=True) as session:
            model = _model_row(session, name, lock=True)
            target = _find_version(session, model, version)
            if target.status != Status.READY:
                raise InvalidInputError(
                    f"{name}:{version} is {target.status}: only ready versions take aliases",
                    model=name, version=version)
            row = session.get(AliasRow, (model.id, alias))
            previous = None if row is None else row.version
            if previous == version:
                return None
            now = _now()
            if row is None:
                session.add(AliasRow(model_id=model.id, alias=alias, version=version,
                                     updated_at=now, updated_by=self._who()))
            else:
                row.version, row.updated_at, row.updated_by = version, now, self._who()
            kind = "alias_set" if previous is None else "alias_moved"
            return self._log(session, name, kind, version=version, alias=alias,
                             from_version=previous, to_version=version,
                             details=dict(details or {}))

    def remove_alias(self, name: str, alias: str) -> Event:
        validate_alias(alias)
        with self._transaction(write=True) as session:
            model = _model_row(session, name, lock=True)
            row = session.get(AliasRow, (model.id, alias))
            if row is None:
                raise AliasNotFoundError(
                    f"model {name!r} has no alias {alias!r}{_known_aliases(session, model)}",
                    model=name)
            session.delete(row)
            return self._log(session, name, "alias_removed", version=row.version, alias=alias,
                             from_version=row.version)

    def aliases(self, name: str) -> dict[str, int]:
        with self._transaction(write=False) as session:
            model = _model_row(session, name)
            return _alias_map(session, model.id)

    # -- reports ----------------------------------------------------------------------------

    def add_report(self, name: str, version: int, draft: ReportDraft) -> Report:
        """Keep a gate or test result with `version`: the report artifact is written before
        the row points at it, and history records it."""
        sha = self.artifacts.put(draft.content)
        with self._transaction(write=True) as session:
            model = _model_row(session, name, lock=True)
            _find_version(session, model, version)
            row = ReportRow(model_id=model.id, version=version, kind=draft.kind,
                            status=draft.status, baseline_version=draft.baseline_version,
                            sha256=sha, summary=draft.summary, created_at=_now(),
                            created_by=self._who())
            session.add(row)
            session.flush()
            self._log(session, name, f"{draft.kind}_{draft.status}", version=version,
                      details={"report": row.id, "baseline_version": draft.baseline_version})
            return _report_entity(name, row)

    def reports(self, name: str, version: int | None = None,
                kind: str | None = None) -> list[Report]:
        """A model's reports, oldest first; of one version and kind when given."""
        with self._transaction(write=False) as session:
            model = _model_row(session, name)
            query = select(ReportRow).where(ReportRow.model_id == model.id)
            if version is not None:
                query = query.where(ReportRow.version == version)
            if kind is not None:
                query = query.where(ReportRow.kind == kind)
            rows = session.scalars(query.order_by(ReportRow.id)).all()
            return [_report_entity(name, row) for row in rows]

    def read_report(self, report: Report) -> bytes:
        return self.artifacts.get(report.sha256, model=report.model, version=report.version)

    # -- batch runs -------------------------------------------------------------------------

    def add_run(self, run: BatchRun) -> BatchRun:
        """Record a batch run as it starts (or again as it resumes)."""
        with self._transaction(write=True) as session:
            _find_version(session, _model_row(session, run.model), run.version)
            return session.merge(run)

    def finish_run(self, run_id: str, status: RunStatus, *, rows: int, duration_s: float,
                   error: str | None = None) -> BatchRun:
        """Mark a run completed or failed, with its rows and the seconds it worked."""
        with self._transaction(write=True) as session:
            run = _run_row(session, run_id)
            run.status, run.rows, run.error = str(status), rows, error
            run.finished_at, run.duration_s = _now(), duration_s
            return run

    def runs(self, name: str, version: int | None = None,
             status: RunStatus | None = None) -> list[BatchRun]:
        """A model's batch runs, newest first; of one version or status when given."""
        with self._transaction(write=False) as session:
            _model_row(session, name)
            query = select(BatchRun).where(BatchRun.model == name)
            if version is not None:
                query = query.where(BatchRun.version == version)
            if status is not None:
                query = query.where(BatchRun.status == str(status))
            return list(session.scalars(query.order_by(BatchRun.started_at.desc(),
                                                       BatchRun.id.desc())).all())

    def run(self, run_id: str) -> BatchRun:
        with self._transaction(write=False) as session:
            return _run_row(session, run_id)

    # -- history and artifacts --------------------------------------------------------------

    def history(self, name: str) -> list[Event]:
        validate_name(name)
        with self._transaction(write=False) as session:
            rows = session.scalars(select(EventRow).where(EventRow.model == name)
                                   .order_by(EventRow.id)).all()
            if not rows:
                _model_row(session, name)
            return [_event_entity(r) for r in rows]

    def read_artifact(self, version: ModelVersion, kind: str) -> bytes:
        """`kind` is `original`, `onnx`, `sample` or one of the runtime's own artifacts
        (named in `runtime_settings`); the checksum is verified."""
        sha = {"original": version.original_sha256, "onnx": version.onnx_sha256,
               "sample": version.sample_sha256, "profile": version.profile_sha256,
               **extra_artifacts(version.runtime_settings)}.get(kind)
        if sha is None:
            raise InvalidInputError(f"{version.uri} has no {kind} artifact",
                                    model=version.name, version=version.version)
        return self.artifacts.get(sha, model=version.name, version=version.version)

    def gc(self, grace_s: float = DEFAULT_GC_GRACE_S) -> GcReport:
        """Remove artifacts no version references, older than `grace_s` seconds."""
        started = time.time()
        with self._transaction(write=False) as session:
            referenced: set[str] = set()
            for *columns, settings in session.execute(select(
                    VersionRow.original_sha256, VersionRow.onnx_sha256,
                    VersionRow.sample_sha256, VersionRow.profile_sha256,
                    VersionRow.runtime_settings)):
                referenced.update(c for c in columns if c)
                referenced.update(extra_artifacts(settings or {}).values())
            referenced.update(session.scalars(select(ReportRow.sha256)))
        cutoff, removed, freed, kept = started - grace_s, [], 0, 0
        for stored in list(self.artifacts.stored()):
            if stored.sha256 in referenced or stored.modified > cutoff:
                kept += 1
                continue
            self.artifacts.delete(stored.sha256)
            removed.append(stored.sha256)
            freed += stored.size
        return GcReport(removed=removed, freed_bytes=freed, kept=kept)

    # -- helpers that need the actor --------------------------------------------------------

    def _log(self, session: Session, model: str, kind: str, **fields: Any) -> Event:
        row = EventRow(model=model, event=kind, actor=self._who(), at=_now(),
                       details=fields.pop("details", {}), **fields)
        session.add(row)
        session.flush()
        return _event_entity(row)

    def _model_entity(self, session: Session, row: ModelRow) -> RegisteredModel:
        latest = session.scalar(select(func.max(VersionRow.version))
                                .where(VersionRow.model_id == row.id,
                                       VersionRow.status == Status.READY))
        return RegisteredModel(name=row.name, description=row.description or "",
                               tags=row.tags or {}, created_at=_utc(row.created_at),
                               created_by=row.created_by or "", latest_version=latest,
                               aliases=_alias_map(session, row.id))


# -- module helpers (pure functions over a session) -------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _model_row(session: Session, name: str, *, lock: bool = False) -> ModelRow:
    validate_name(name)
    statement = select(ModelRow).where(ModelRow.name == name)
    if lock and session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    row = session.scalars(statement).one_or_none()
    if row is None:
        raise ModelNotFoundError(f"no model named {name!r}: `ferry models` lists them",
                                 model=name)
    return row


def _lock_or_create_model(session: Session, name: str, actor: str) -> ModelRow:
    dialect = session.get_bind().dialect.name
    used = session.scalar(select(func.max(EventRow.version)).where(EventRow.model == name))
    values = {"name": name, "description": "", "tags": {}, "next_version": (used or 0) + 1,
              "created_at": _now(), "created_by": actor}
    if dialect in ("postgresql", "sqlite"):
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        inserted = session.execute(insert(ModelRow).values(**values)
                                   .on_conflict_do_nothing(index_elements=["name"])
                                   .returning(ModelRow.id)).first()
        created = inserted is not None
    else:
        created = session.scalars(select(ModelRow).where(ModelRow.name == name)
                                  ).one_or_none() is None
        if created:
            session.add(ModelRow(**values))
            session.flush()
    if created:
        session.add(EventRow(model=name, event="model_created", actor=actor, at=_now(),
                             details={}))
    return _model_row(session, name, lock=True)


def _version_row(model_id: int, number: int, draft: VersionDraft, actor: str) -> VersionRow:
    return VersionRow(
        model_id=model_id, version=number, status=Status.READY, description=draft.description,
        framework=draft.framework, framework_version=draft.framework_version,
        task=str(draft.task), runtime=draft.runtime, runtime_settings=draft.runtime_settings,
        original_sha256=draft.original_sha256, original_format=draft.original_format,
        onnx_sha256=draft.onnx_sha256, sample_sha256=draft.sample_sha256,
        profile_sha256=draft.profile_sha256, signature=draft.signature.to_dict(),
        metrics=draft.metrics, params=draft.params, tags=draft.tags, lineage=draft.lineage,
        parent_version=draft.parent_version,
        conversion_check=draft.conversion_check, forced=draft.forced,
        created_at=_now(), created_by=actor,
    )


def _version_entity(name: str, row: VersionRow, aliases: tuple[str, ...]) -> ModelVersion:
    return ModelVersion(
        name=name, version=row.version, status=row.status, description=row.description or "",
        framework=row.framework, framework_version=row.framework_version or "",
        task=Task(row.task), runtime=row.runtime, runtime_settings=row.runtime_settings or {},
        original_sha256=row.original_sha256, original_format=row.original_format,
        onnx_sha256=row.onnx_sha256, sample_sha256=row.sample_sha256,
        signature=Signature.from_dict(row.signature), metrics=row.metrics or {},
        params=row.params or {}, tags=row.tags or {}, lineage=row.lineage or {},
        parent_version=row.parent_version, conversion_check=row.conversion_check or {},
        forced=bool(row.forced), created_at=_utc(row.created_at),
        created_by=row.created_by or "", aliases=aliases, profile_sha256=row.profile_sha256,
    )


def _run_row(session: Session, run_id: str) -> BatchRun:
    run = session.get(BatchRun, run_id)
    if run is None:
        raise NotFoundError(f"no batch run {run_id!r}: `ferry runs MODEL` lists them")
    return run


def _report_entity(name: str, row: ReportRow) -> Report:
    return Report(id=row.id, model=name, version=row.version, kind=row.kind, status=row.status,
                  baseline_version=row.baseline_version, sha256=row.sha256,
                  summary=row.summary or {}, created_at=_utc(row.created_at),
                  created_by=row.created_by or "")


def _event_entity(row: EventRow) -> Event:
    return Event(id=row.id, model=row.model, event=row.event, version=row.version,
                 alias=row.alias, from_version=row.from_version, to_version=row.to_version,
                 actor=row.actor or "", at=_utc(row.at), details=row.details or {})


def _resolve_number(session: Session, model: ModelRow, uri: ModelURI) -> int:
    if uri.version is not None:
        return uri.version
    if uri.alias is not None:
        row = session.get(AliasRow, (model.id, uri.alias))
        if row is None:
            raise AliasNotFoundError(
                f"model {model.name!r} has no alias {uri.alias!r}"
                f"{_known_aliases(session, model)}", model=model.name)
        return row.version
    latest = session.scalar(select(func.max(VersionRow.version)).where(
        VersionRow.model_id == model.id, VersionRow.status == Status.READY))
    if latest is None:
        raise VersionNotFoundError(f"model {model.name!r} has no ready version",
                                   model=model.name)
    return int(latest)


def _find_version(session: Session, model: ModelRow, number: int) -> VersionRow:
    row = session.scalars(select(VersionRow).where(VersionRow.model_id == model.id,
                                                   VersionRow.version == number)).one_or_none()
    if row is None:
        raise VersionNotFoundError(
            f"model {model.name!r} has no version {number}: `ferry versions {model.name}`"
            " lists them", model=model.name, version=number)
    return row


def _alias_map(session: Session, model_id: int) -> dict[str, int]:
    rows = session.scalars(select(AliasRow).where(AliasRow.model_id == model_id)
                           .order_by(AliasRow.alias)).all()
    return {r.alias: r.version for r in rows}


def _aliases_by_version(session: Session, model_id: int) -> dict[int, tuple[str, ...]]:
    grouped: dict[int, tuple[str, ...]] = {}
    for alias, version in _alias_map(session, model_id).items():
        grouped[version] = (*grouped.get(version, ()), alias)
    return grouped


def _known_aliases(session: Session, model: ModelRow) -> str:
    names = sorted(_alias_map(session, model.id))
    return f" (it has: {', '.join(names)})" if names else " (it has none)"


def _refuse_if_aliased(session: Session, model: ModelRow, version: int, action: str) -> None:
    holding = [a for a, v in _alias_map(session, model.id).items() if v == version]
    if holding:
        raise InvalidInputError(
            f"cannot {action} {model.name}:{version}: alias {', '.join(holding)} points at it;"
            " move or remove the alias first", model=model.name, version=version)
