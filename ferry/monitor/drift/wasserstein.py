"""Wasserstein-1 distance normed by the reference's standard deviation: Evidently's default for
numeric columns of more than 1000 reference rows, drift when >= 0.1.

W1 is the area between the two CDFs, summed over the intervals between reference breakpoints.
On each, the reference's area is exact (flat steps, or the profile's stored areas) and so is
the window's (its count and its values' offsets), so the net area is exact. Where the two CDFs
can cross inside an interval, the area the crossing cancels out is added back, estimated with
both CDFs drawn as straight lines over the interval. Compared with Evidently on the raw data,
the normed distance came within 1e-4 on windows of 100k rows and more, 3e-4 on a few thousand
(a 1001-point sketch's widest intervals, the long tails, carry most of the difference).
Against an exact profile and a window of at most `RAW_ROWS` values scipy computes it on the raw
values instead, as Evidently does.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ferry.monitor.drift.base import DEFAULT_DISTANCE, Detector, Measurement
from ferry.monitor.drift.numeric import NumericWindow
from ferry.monitor.profile import ColumnKind

MIN_NORM = 0.001
"""Evidently's floor on the standard deviation a constant-ish column is normed by."""


class WassersteinDetector(Detector):
    method = "wasserstein"
    kinds = frozenset({ColumnKind.NUMERIC})
    default_threshold = DEFAULT_DISTANCE
    uses_p_value = False

    def _numeric(self, window: NumericWindow) -> Measurement:
        column = window.reference.column
        if column.exact and window.values is not None:
            distance = stats.wasserstein_distance(np.asarray(column.points), window.values)
        else:
            distance = wasserstein_from_counts(window)
        return Measurement(float(distance) / max(column.std, MIN_NORM))


def wasserstein_from_counts(window: NumericWindow) -> float:
    """Integral of |F_ref - F_cur|: the inner intervals, then both tails (reference CDF 0 below
    its minimum, 1 above its maximum, so only the window's values count there)."""
    reference, counts, offsets, rows = window.reference, window.counts, window.offsets, window.rows
    widths = np.diff(reference.edges)
    cumulative = np.cumsum(counts) / rows
    current_area = cumulative[1:-1] * widths - offsets[1:-1] / rows
    net = reference.areas - current_area
    start = reference.at[:-1] - cumulative[:-2]
    end = reference.before[1:] - cumulative[1:-1]
    inner = np.abs(net) + _hidden_by_crossing(start, end, widths)
    return float(inner.sum() + (offsets[-1] - offsets[0]) / rows)


def _hidden_by_crossing(start: np.ndarray, end: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Where the gap F_ref - F_cur changes sign across an interval, the area of |gap| minus
    |area of gap|, for a gap varying linearly from `start` to `end`."""
    crossing = start * end < 0
    span = np.where(crossing, np.abs(start) + np.abs(end), 1.0)
    both_sides = (start**2 + end**2) / span * widths / 2
    net = np.abs(start + end) / 2 * widths
    return np.where(crossing, both_sides - net, 0.0)
