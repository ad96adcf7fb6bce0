"""The optimizer: find, check and register the fastest variant of a model that still predicts
the same (`ferry.optimize`, `ferry optimize`).

- `candidate`: the interface one optimization implements; `candidates/`: the ones ferry has,
  one module per engine (ONNX Runtime, OpenVINO, compiled trees);
- `equivalence`: the gate a variant must pass against the original model;
- `timing`: interleaved, paired timing against the original framework;
- `search`: `optimize()`, which ties them together and registers the winner;
- `report`: the Markdown report and its chart.
"""

from ferry.optimizer.candidate import BuiltCandidate, Candidate, OptimizeContext, Precision, Threads
from ferry.optimizer.equivalence import Gate, Verdict
from ferry.optimizer.search import CandidateResult, OptimizeResult, SearchProgress, optimize
from ferry.optimizer.timing import TimingSettings

__all__ = [
    "BuiltCandidate",
    "Candidate",
    "CandidateResult",
    "Gate",
    "OptimizeContext",
    "OptimizeResult",
    "Precision",
    "SearchProgress",
    "Threads",
    "TimingSettings",
    "Verdict",
    "optimize",
]
