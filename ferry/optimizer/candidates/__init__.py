"""The optimizations the search tries, registered explicitly, in the order they are tried.

Each module holds the candidates of one engine. `register_candidate` adds one (a plug-in, or a
test's own); `candidates()` lists them all.
"""

from __future__ import annotations

from ferry.optimizer.candidate import Candidate

_CANDIDATES: list[Candidate] = []


def register_candidate(candidate: Candidate) -> Candidate:
    """Add `candidate` to the search (a name already registered is replaced)."""
    global _CANDIDATES
    _CANDIDATES = [c for c in _CANDIDATES if c.name != candidate.name] + [candidate]
    return candidate


def candidates() -> list[Candidate]:
    if not _CANDIDATES:
        _register_defaults()
    return list(_CANDIDATES)


def _register_defaults() -> None:
    from . import mixed_int8, onnxruntime, openvino, trees

    for module in (onnxruntime, mixed_int8, openvino, trees):
        for candidate in module.CANDIDATES:
            register_candidate(candidate)


__all__ = ["candidates", "register_candidate"]
