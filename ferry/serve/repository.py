"""The models a server holds, loaded from the registry, and the policy that picks a version.

`{version}` in a request is a version number or an alias; with none, the `production` alias
if the model has it, else the newest loaded version. `refresh()` (run every
`poll_interval_s` by the server) re-reads the registry: when an alias moves, the new version
is loaded and warmed first, then the alias switches, then versions nothing points at any
more are unloaded. A switch is one dictionary assignment, so no request sees a gap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ferry.errors import (
    AliasNotFoundError,
    FerryError,
    ModelNotFoundError,
    ModelNotReadyError,
    NotFoundError,
    VersionNotFoundError,
)
from ferry.loading import load_version
from ferry.registry import ModelVersion, Registry
from ferry.runtime.onnx_runtime import SessionSettings
from ferry.serve.batching import BatchObserver, BatchSampler, BatchSettings
from ferry.serve.model import ServedModel, StageObserver
from ferry.serve.types import RepositoryEntry
from ferry.signature import Signature
from ferry.steps import StepsPredictor
from ferry.text import is_whole_number
from ferry.uri import ModelURI

DEFAULT_ALIAS = "production"
"""The alias a request without a version gets, when the model has it."""
WARMUP_ROWS = 4

log = logging.getLogger("ferry.serve")


@dataclass
class _Entry:
    """What the server holds for one model name."""

    versions: dict[int, ServedModel] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    pinned: set[int] = field(default_factory=set)
    """Versions asked for by number on the command line: kept whatever the aliases do."""
    follow_latest: bool = True
    batching: BatchSettings | None = None
    """A repository load's configuration override; None: the server's settings."""


@dataclass(frozen=True)
class _Wanted:
    """What the registry says a model name should have loaded now."""

    aliases: dict[str, int]
    numbers: set[int]


class ModelRepository:
    """Loaded models by name and version; thread-safe for readers (dict swaps only)."""

    def __init__(self, registry: Registry, batching: BatchSettings,
                 observe: Callable[[str, str], BatchObserver] | None = None,
                 session: SessionSettings | None = None, *, trust_code: bool = False,
                 observe_stage: Callable[[str, str], StageObserver] | None = None,
                 sample: Callable[[str, int, Signature], BatchSampler | None] | None = None):
        self.registry = registry
        self.batching = batching
        self.session = session
        self.observe = observe
        self.trust_code = trust_code
        """Load versions with stored pre/post steps (`ferry.steps`), running their code."""
        self.observe_stage = observe_stage
        self.sample = sample
        """A model version's batch sampler, given its name, number and signature (the
        capture's, `ferry.serve.capture.RecorderCapture.batch_sampler`)."""
        self._entries: dict[str, _Entry] = {}
        self._unloaded: set[str] = set()
        self._lock = asyncio.Lock()

    # -- lookups (request path) -----------------------------------------------------------

    def get(self, name: str, version: str | None = None) -> ServedModel:
        entry = self._entries.get(name)
        if entry is None:
            if name in self._unloaded:
                raise ModelNotReadyError(f"model {name!r} is unloaded: load it first",
                                         model=name)
            raise ModelNotFoundError(f"Request for unknown model: '{name}' is not found (no model"
                                     f" named {name!r} is served)", model=name)
        number = self._number(name, entry, version)
        served = entry.versions.get(number)
        if served is None:
            loaded = ", ".join(str(v) for v in sorted(entry.versions)) or "none"
            raise VersionNotFoundError(f"Request for unknown model: '{name}' version {version}"
                                       f" is not found (model {name!r} has no version"
                                       f" {version!r} loaded; loaded: {loaded})", model=name)
        return served

    def _number(self, name: str, entry: _Entry, version: str | None) -> int:
        if version is None or version == "":
            if DEFAULT_ALIAS in entry.aliases:
                return entry.aliases[DEFAULT_ALIAS]
            if not entry.versions:
                raise ModelNotReadyError(f"model {name!r} has no version loaded", model=name)
            return max(entry.versions)
        if is_whole_number(version):
            return int(version)
        if version not in entry.aliases:
            raise AliasNotFoundError(
                f"failed to get model version from specified version string '{version:.64}':"
                f" model {name!r} has no version or alias {version[:64]!r}", model=name)
        return entry.aliases[version]

    def versions(self, name: str) -> tuple[str, ...]:
        entry = self._entries.get(name)
        return () if entry is None else tuple(str(v) for v in sorted(entry.versions))

    def served_models(self, name: str | None = None) -> list[ServedModel]:
        """The loaded versions, of one model or of all, by name and version."""
        names = sorted(self._entries) if name is None else [name]
        return [served for model in names if model in self._entries
                for _, served in sorted(self._entries[model].versions.items())]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def index(self) -> list[RepositoryEntry]:
        rows = [RepositoryEntry(name, str(number), "READY")
                for name, entry in sorted(self._entries.items())
                for number in sorted(entry.versions)]
        rows += [RepositoryEntry(name, "", "UNAVAILABLE", "unloaded")
                 for name in sorted(self._unloaded)]
        return rows

    # -- loading ----------------------------------------------------------------------------

    async def add(self, uri: str) -> None:
        """Serve what `uri` names: `name` (latest and every aliased version), `name:3` or
        `name@alias` (the alias, followed as it moves)."""
        parsed = ModelURI.parse(uri)
        async with self._lock:
            entry = self._entries.get(parsed.name) or _Entry(follow_latest=False)
            if parsed.version is None and parsed.alias is None:
                entry.follow_latest = True
            elif parsed.version is not None:
                entry.pinned.add(parsed.version)
            self._entries.setdefault(parsed.name, entry)
            self._unloaded.discard(parsed.name)
            try:
                await self._sync(parsed.name, entry, extra_alias=parsed.alias)
            except FerryError:
                if not entry.versions:
                    self._entries.pop(parsed.name, None)
                raise

    async def add_all(self) -> None:
        """Serve every registered model's latest version and every aliased version."""
        models = await asyncio.to_thread(self.registry.models)
        for model in models:
            try:
                await self.add(model.name)
            except FerryError as exc:
                log.warning("not serving %s: %s", model.name, exc)

    async def load(self, name: str, batching: BatchSettings | None = None) -> None:
        """The repository API's load: (re)load a model by name, with `batching` in place of
        the server's settings when given. The new versions are loaded before they replace
        the old ones, so requests meanwhile are answered by the old."""
        entry = _Entry(batching=batching)
        async with self._lock:
            try:
                await self._sync(name, entry)
            except NotFoundError as exc:
                raise ModelNotFoundError(f"failed to load '{name}': {exc}", model=name) from exc
            old = self._entries.get(name)
            self._entries[name] = entry
            self._unloaded.discard(name)
        for served in [] if old is None else old.versions.values():
            await served.batcher.close()

    async def unload(self, name: str) -> None:
        async with self._lock:
            entry = self._entries.pop(name, None)
            if entry is None and name not in self._unloaded:
                raise ModelNotFoundError(f"no model named {name!r} is served", model=name)
            self._unloaded.add(name)
        if entry is not None:
            for served in entry.versions.values():
                await served.batcher.close()

    async def refresh(self) -> None:
        """Follow the registry: alias moves and new latest versions (hot reload)."""
        async with self._lock:
            for name, entry in list(self._entries.items()):
                try:
                    await self._sync(name, entry)
                except FerryError as exc:
                    log.warning("refreshing %s failed, keeping what is loaded: %s", name, exc)

    async def close(self, grace_s: float) -> None:
        """Finish what every model has queued, for up to `grace_s` seconds in all."""
        batchers = [served.batcher for entry in self._entries.values()
                    for served in entry.versions.values()]
        await asyncio.gather(*(batcher.close(grace_s) for batcher in batchers))

    async def _sync(self, name: str, entry: _Entry, extra_alias: str | None = None) -> None:
        wanted = await asyncio.to_thread(self._wanted, name, entry, extra_alias)
        for number in sorted(wanted.numbers - set(entry.versions)):
            entry.versions[number] = await self._load(name, number, entry.batching)
        entry.aliases = wanted.aliases
        stale = set(entry.versions) - wanted.numbers
        for number in stale:
            served = entry.versions.pop(number)
            await served.batcher.close()
            log.info("unloaded %s:%s", name, number)

    def _wanted(self, name: str, entry: _Entry, extra_alias: str | None) -> _Wanted:
        aliases = self.registry.aliases(name)
        if extra_alias is not None and extra_alias not in aliases:
            raise AliasNotFoundError(f"model {name!r} has no alias {extra_alias!r}", model=name)
        numbers = set(aliases.values()) | entry.pinned
        if entry.follow_latest:
            numbers.add(self.registry.get(name).version)
        return _Wanted(aliases=aliases, numbers=numbers)

    async def _load(self, name: str, number: int,
                    batching: BatchSettings | None) -> ServedModel:
        version = await asyncio.to_thread(self.registry.get, f"{name}:{number}")
        served = await asyncio.to_thread(self._build, version, batching or self.batching)
        log.info("loaded %s:%s (%s)", name, number, version.runtime)
        return served

    def _build(self, version: ModelVersion, batching: BatchSettings) -> ServedModel:
        predictor = load_version(version, self.registry, self.session,
                                 trust_code=self.trust_code)
        label = str(version.version)
        observe = None if self.observe is None else self.observe(version.name, label)
        stages = None if self.observe_stage is None else self.observe_stage(version.name, label)
        sample = (None if self.sample is None
                  else self.sample(version.name, version.version, predictor.signature))
        served = ServedModel(version, predictor, batching, observe, stages, sample)
        _warm_up(served, self.registry)
        return served


def _warm_up(served: ServedModel, registry: Registry) -> None:
    """One call on sample rows so the first request does not pay for lazy initialisation
    (of the model alone for a version with steps: its sample is the model's input)."""
    version = served.version
    if version.sample_sha256 is None:
        return
    from ferry.data import head, sample_from_parquet

    try:
        sample = head(sample_from_parquet(registry.read_artifact(version, "sample")),
                      WARMUP_ROWS)
        predictor = served.predictor
        if isinstance(predictor, StepsPredictor):
            predictor = predictor.inner
        predictor.outputs(sample)
    except (FerryError, ValueError, RuntimeError) as exc:
        log.warning("warm-up of %s failed: %s", version.uri, exc)


__all__ = ["DEFAULT_ALIAS", "ModelRepository"]
