"""The optimizations the search tries, registered explicitly, in the order they are tried.

Each module holds the candidates of one engine. `register_candidate` adds one (a plug-in, or a
test's own); `candidates()` lists the built-ins, then the added ones. An added candidate with a
built-in's name takes its place at the end.
"""

from __future__ import annotations

from ferry.optimizer.candidate import Candidate

_ADDED: list[Candidate] = []
_BUILT_IN: list[Candidate] = []


def register_candidate(candidate: Candidate) -> Candidate:
    """Add `candidate` to the search (a name already registered is replaced)."""
    global _ADDED
    _ADDED = [c for c in _ADDED if c.name != candidate.name] + [candidate]
    return candidate


def candidates() -> list[Candidate]:
    added = {c.name for c in _ADDED}
    return [c for c in _built_in() if c.name not in added] + _ADDED


def _built_in() -> list[Candidate]:
    """The candidates shipped with ferry, imported on the first listing."""
    if not _BUILT_IN:
        from . import mixed_int8, onnxruntime, openvino, trees

        for module in (onnxruntime, mixed_int8, openvino, trees):
            _BUILT_IN.extend(module.CANDIDATES)
    return _BUILT_IN


__all__ = ["candidates", "register_candidate"]
