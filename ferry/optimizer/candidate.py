"""The candidate interface: one small class per optimization, registered in
`ferry.optimizer.candidates`.

A `Candidate` says whether it applies to a version (and why not), and `build()` makes a
runnable variant: a loaded `GraphPredictor` whose `run_feeds` is the call serving will make,
the artifacts to store, and the runtime settings to record. The search (`ferry.optimizer.search`)
checks every built variant against the original (`ferry.optimizer.equivalence`), times it
(`ferry.optimizer.timing`) and registers the fastest that passes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ferry.registry import ModelVersion
from ferry.runtime.feeds import Feeds
from ferry.runtime.predictor import GraphPredictor

if TYPE_CHECKING:
    from ferry.optimizer.equivalence import Gate


class Precision(StrEnum):
    EXACT = "exact"
    """The same arithmetic in float32 (a rewritten graph, another engine, compiled code):
    must match the original to float tolerance."""
    LOSSY = "lossy"
    """Lower precision (int8, bf16, fp16): must stay within the lossy gate."""


@dataclass(frozen=True)
class Threads:
    """Thread settings a candidate is built and timed with."""

    intra_op: int = 1
    parallel: bool = False
    """ONNX Runtime's parallel executor (runs independent graph branches at once)."""

    @property
    def label(self) -> str:
        return f"{self.intra_op}t" + ("-parallel" if self.parallel else "")


@dataclass
class OptimizeContext:
    """What candidates build from. `load_original` is only called by candidates that need
    the framework's own model (the tree compilers); it may unpickle what the version stored."""

    version: ModelVersion
    onnx: bytes | None
    """The version's ONNX graph; None for versions that run natively."""
    calibration: Feeds
    """Rows of the reference sample for calibration, shaped as the signature's inputs. The
    equivalence gate never uses these rows."""
    workdir: Path
    """Scratch space for the search; removed when it ends."""
    gpu: bool = False
    load_original: Callable[[], object] | None = None
    cpu_flags: frozenset[str] = field(default_factory=frozenset)
    """The processor's feature flags (from /proc/cpuinfo): avx512_bf16, amx_bf16, ..."""
    gate: Gate | None = None
    """The search's equivalence gate, for candidates that tune themselves against it on the
    calibration rows (None: the default gate)."""

    @cached_property
    def op_types(self) -> frozenset[str]:
        """The operator types of the version's ONNX graph (empty without one)."""
        if self.onnx is None:
            return frozenset()
        import onnx

        return frozenset(node.op_type for node in onnx.load_from_string(self.onnx).graph.node)

    @cached_property
    def original(self) -> object:
        if self.load_original is None:
            raise RuntimeError("this search has no original model to load")
        return self.load_original()


@dataclass
class BuiltCandidate:
    """A runnable variant and what registering it takes."""

    predictor: GraphPredictor
    """Loaded; the gate and the timer call `predictor.run_feeds` as serving will."""
    runtime: str
    """`ferry.registry.Runtime` value that `ferry.load` and `ferry serve` will use."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Recorded as the version's `runtime_settings` (JSON; no artifacts here)."""
    artifacts: dict[str, bytes] = field(default_factory=dict)
    """Files the runtime loads: `onnx` becomes the version's ONNX artifact, any other name is
    stored and recorded under `runtime_settings["artifacts"]`."""
    notes: str = ""
    rethread: Callable[[Threads], BuiltCandidate] | None = None
    """The same variant with other thread settings, without building it again; None when
    the runtime has no thread knobs."""


class Candidate(ABC):
    """One optimization. Constructors store; `build` does the work."""

    name: str = ""
    precision: Precision = Precision.EXACT
    description: str = ""

    @abstractmethod
    def unavailable(self, context: OptimizeContext) -> str | None:
        """Why this candidate cannot run for this version on this machine (a missing package,
        a model family it does not apply to, no GPU), or None when it can."""

    @abstractmethod
    def build(self, context: OptimizeContext, threads: Threads) -> BuiltCandidate:
        """Build the variant and load it with `threads`. Raise with a one-line reason when
        it fails; the search records the failure and goes on."""
