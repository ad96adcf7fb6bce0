"""Batch engines by name, registered explicitly: `local` (worker processes on this machine)
and `spark` (`mapInArrow` on a Spark cluster, `local[N]` by default)."""

from __future__ import annotations

import importlib

from ferry.batch.engines.base import BATCH_ROWS, Engine, EngineJob, RowsScored, score_part
from ferry.errors import InvalidInputError

ENGINES: dict[str, str] = {
    "local": "ferry.batch.engines.local:LocalEngine",
    "spark": "ferry.batch.engines.spark:SparkEngine",
}


def engine_for(name: str, **options: object) -> Engine:
    """The engine called `name`, built with its `options` (Spark's `master`)."""
    if name not in ENGINES:
        raise InvalidInputError(f"--engine {name}: use one of {', '.join(ENGINES)}")
    module_name, _, class_name = ENGINES[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInputError(f"--engine {name} needs an extra:"
                                f" pip install 'ferry-ml[{name}]' ({exc})") from exc
    engine: Engine = getattr(module, class_name)(**options)
    return engine


__all__ = ["BATCH_ROWS", "ENGINES", "Engine", "EngineJob", "RowsScored", "engine_for",
           "score_part"]
