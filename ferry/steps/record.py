"""The steps artifact of a version: its pre- and post-processing steps as one JSON document.

    {"format": 1,
     "preprocess": {"name", "source", "imports", "packages", "constants"},
     "postprocess": {...},
     "signature": {...}}        # the pipeline's outer inputs and outputs, when known

A version with steps records the artifact's checksum as `runtime_settings["artifacts"]["steps"]`
(`ferry.registry.entities.extra_artifacts`), so it is read, verified and kept by garbage
collection like the runtime's own artifacts. JSON only: reading it runs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ferry.errors import CorruptArtifactError, UnsupportedModelError
from ferry.signature import Signature
from ferry.steps.source import StepSource, capture

STEPS_ARTIFACT = "steps"
"""Name of the artifact under `runtime_settings["artifacts"]`."""
FORMAT = 1
ROLES = ("preprocess", "postprocess")


@dataclass(frozen=True)
class Steps:
    """A version's stored steps: run before the model on its input batch, after it on its
    outputs."""

    preprocess: StepSource | None = None
    postprocess: StepSource | None = None
    signature: Signature | None = None
    """What the pipeline takes and gives (`ferry.steps.outer`); None: the model's."""

    def items(self) -> list[tuple[str, StepSource]]:
        """(role, step) for each step present, in the order they run."""
        return [(role, step) for role in ROLES if (step := getattr(self, role)) is not None]

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"format": FORMAT}
        record.update({role: step.to_dict() for role, step in self.items()})
        if self.signature is not None:
            record["signature"] = self.signature.to_dict()
        return record

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True).encode()

    def describe(self) -> str:
        """`preprocess tokenize (numpy 2.3.1), postprocess label_names`."""
        return ", ".join(f"{role} {step.describe()}" for role, step in self.items())


def capture_steps(preprocess: Callable[..., Any] | None,
                  postprocess: Callable[..., Any] | None) -> Steps | None:
    """The stored form of the given steps, or None when there are none."""
    if preprocess is None and postprocess is None:
        return None
    return Steps(preprocess=None if preprocess is None else capture(preprocess, "preprocess"),
                 postprocess=None if postprocess is None
                 else capture(postprocess, "postprocess"))


def read_document(data: bytes, kind: str, known_format: int) -> dict[str, Any]:
    """The JSON object stored in a `kind` artifact (steps, pipeline); refuses bytes that are
    not one, and a format this ferry does not know."""
    try:
        record = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptArtifactError(f"the {kind} artifact is not JSON: {exc}") from exc
    if not isinstance(record, dict):
        raise CorruptArtifactError(f"the {kind} artifact is not a JSON object")
    if record.get("format") != known_format:
        raise UnsupportedModelError(f"{kind} format {record.get('format')!r} is unknown to"
                                    " this ferry: upgrade ferry to load this version")
    return record


def steps_from_bytes(data: bytes) -> Steps:
    """The steps stored in `data`; refuses a format this ferry does not know."""
    record = read_document(data, "steps", FORMAT)
    signature = record.get("signature")
    return Steps(**{role: StepSource.from_dict(record[role]) for role in ROLES
                    if record.get(role)},
                 signature=None if signature is None else Signature.from_dict(signature))
