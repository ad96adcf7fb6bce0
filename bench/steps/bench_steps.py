"""The step `steps_bench.py` measures, in a module file of its own: ferry stores a step's
source and the imports it uses, so the step must be a top-level function of a real file."""

from __future__ import annotations

from typing import Any


def identity(batch: Any) -> Any:
    """A preprocess step that does nothing: the batch goes to the model unchanged."""
    return batch
