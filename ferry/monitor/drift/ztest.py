"""Two-proportion Z-test: Evidently's default for binary columns (at most 2 values) of at most
1000 reference rows, drift when p < 0.05.

It compares the share of the first value (in sorted order) in reference and window with the
pooled standard error. A third value appearing in the window makes Evidently switch to
chi-squared, whose expected count for it is 0: p is 0 here too.
"""

from __future__ import annotations

import math

from scipy import stats

from ferry.monitor.drift.base import DEFAULT_P_VALUE, Detector, Measurement
from ferry.monitor.drift.categorical import CategoricalWindow
from ferry.monitor.profile import Category, ColumnKind, ColumnProfile


class ZTestDetector(Detector):
    method = "z"
    kinds = frozenset({ColumnKind.CATEGORICAL})
    default_threshold = DEFAULT_P_VALUE
    uses_p_value = True

    def supports(self, column: ColumnProfile) -> bool:
        return super().supports(column) and column.unique <= 2

    def _categorical(self, window: CategoricalWindow) -> Measurement:
        present = int(window.present().sum()) - (1 if window.unseen_values else 0)
        if present + window.unseen_values > 2:
            return Measurement(math.inf, 0.0)
        if present + window.unseen_values < 2:
            return Measurement(0.0, 1.0)
        z = proportions_z(*_first_value_counts(window), window.reference.rows, window.rows)
        return Measurement(z, float(2 * stats.norm.sf(abs(z))))


def proportions_z(first_reference: int, first_current: int, rows_reference: int,
                  rows_current: int) -> float:
    """(p1 - p2) / sqrt(P (1 - P) (1/n1 + 1/n2)) with P pooled, p the share of other values."""
    p1 = (rows_reference - first_reference) / rows_reference
    p2 = (rows_current - first_current) / rows_current
    pooled = (p1 * rows_reference + p2 * rows_current) / (rows_reference + rows_current)
    return (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / rows_reference + 1 / rows_current))


def _first_value_counts(window: CategoricalWindow) -> tuple[int, int]:
    """Counts of the first value in sorted order, in reference and window."""
    values = window.reference.column.values
    first = window.reference.index[_smallest(values)] if values else 0
    return int(window.reference.expected[first]), int(window.counts[first])


def _smallest(values: tuple[Category, ...]) -> Category:
    try:
        return min(values)
    except TypeError:
        return min(values, key=str)
