"""Drift detectors, registered explicitly by method name, and the default choice per column.

    base            Detector (fit(column) -> self, score(values) -> DriftResult), Verdict
    ks, chisquare, ztest, wasserstein, jensenshannon, psi    one test each
    dataset         evaluate_window: every column of a window, dataset and prediction drift

The default test is Evidently's (`get_stattest` in evidently/legacy/calculations/stattests):

    reference rows (non-missing)   numeric (> 5 values)   categorical / few values
    <= 1000                        ks                     chisquare; z when at most 2 values
    >  1000                        wasserstein            jensenshannon

Evidently counts the values of reference and window together; here the reference's count
decides, so a window bringing new values does not change the test (it fails it instead). The
count alone decides, not how the profile stores the column: a numeric reference of 5,000 rows is
kept exactly (its distinct values and their counts) and still gets Wasserstein.
"""

from __future__ import annotations

from typing import Any

from ferry.errors import InvalidInputError
from ferry.monitor.drift.base import Detector, DriftResult, NotFittedError, Verdict
from ferry.monitor.drift.chisquare import ChiSquareDetector
from ferry.monitor.drift.jensenshannon import JensenShannonDetector
from ferry.monitor.drift.ks import KSDetector
from ferry.monitor.drift.psi import PSIDetector
from ferry.monitor.drift.wasserstein import WassersteinDetector
from ferry.monitor.drift.ztest import ZTestDetector
from ferry.monitor.profile import ColumnKind, ColumnProfile

SMALL_REFERENCE_ROWS = 1000
"""Evidently's switch: p-value tests at or below this many reference values, distances above."""
_DETECTORS: dict[str, type[Detector]] = {}


def register_detector(detector: type[Detector]) -> type[Detector]:
    """Make `detector` available by its `method` name (usable as a class decorator)."""
    if detector.method in _DETECTORS and _DETECTORS[detector.method] is not detector:
        raise InvalidInputError(f"a detector named {detector.method!r} is already registered")
    _DETECTORS[detector.method] = detector
    return detector


for _builtin in (KSDetector, ChiSquareDetector, ZTestDetector, WassersteinDetector,
                 JensenShannonDetector, PSIDetector):
    register_detector(_builtin)


def registered_detectors() -> dict[str, type[Detector]]:
    return dict(_DETECTORS)


def default_method(column: ColumnProfile) -> str:
    """Evidently's default test for this reference column."""
    small = column.count <= SMALL_REFERENCE_ROWS
    if column.kind is ColumnKind.NUMERIC:
        return "ks" if small else "wasserstein"
    if not small:
        return "jensenshannon"
    return "chisquare" if column.unique > 2 else "z"


def detector_for(column: ColumnProfile, method: str | None = None, **params: Any) -> Detector:
    """A detector fitted to `column`: the named method, or the default one."""
    name = method or default_method(column)
    if name not in _DETECTORS:
        raise InvalidInputError(f"no drift detector named {name!r}; known: "
                                f"{', '.join(sorted(_DETECTORS))}")
    return _DETECTORS[name](**params).fit(column)


__all__ = ["ChiSquareDetector", "Detector", "DriftResult", "JensenShannonDetector",
           "KSDetector", "NotFittedError", "PSIDetector", "SMALL_REFERENCE_ROWS", "Verdict",
           "WassersteinDetector", "ZTestDetector", "default_method", "detector_for",
           "register_detector", "registered_detectors"]
