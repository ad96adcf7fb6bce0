"""Two-sample Kolmogorov-Smirnov: Evidently's default for numeric columns of at most 1000
reference rows, drift when p <= 0.05 (Evidently's comparison for KS; the others use <).

From an exact profile the statistic is exact at any window size: the largest CDF gap occurs at
a data point; at the lookup edges it is read off the window's bucket counts, and the few
intervals between edges that could hide a larger gap (`steps.gap_bounds`) are laid out step by
step (every value is an edge up to `LOOKUP_EDGES` distinct values, so then there are none).
Up to `RAW_ROWS` current values the p-value is scipy's exact one (`ks_2samp` on the reference
values, with their repeats, and the window, what Evidently calls); above, Smirnov's asymptotic
distribution, as scipy switches there too. From a quantile sketch the statistic is within one
sketch step (0.001) of the raw one.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ferry.monitor.drift.base import DEFAULT_P_VALUE, Detector, Measurement
from ferry.monitor.drift.numeric import NumericWindow
from ferry.monitor.drift.steps import gap_bounds, steps_inside
from ferry.monitor.profile import ColumnKind


class KSDetector(Detector):
    method = "ks"
    kinds = frozenset({ColumnKind.NUMERIC})
    default_threshold = DEFAULT_P_VALUE
    uses_p_value = True

    def _numeric(self, window: NumericWindow) -> Measurement:
        column = window.reference.column
        if column.exact and window.values is not None:
            reference = np.repeat(np.asarray(column.points), column.counts)
            result = stats.ks_2samp(reference, window.values)
            return Measurement(float(result.statistic), float(result.pvalue))
        statistic = ks_statistic(window)
        if window.reference.exact is not None:
            statistic = _largest_gap_inside(window, statistic)
        return Measurement(statistic, smirnov_p_value(statistic, window.reference.rows,
                                                      window.rows))

    def _fires(self, measured: Measurement) -> bool:
        return measured.p_value is not None and measured.p_value <= self.threshold_


def ks_statistic(window: NumericWindow) -> float:
    """sup |F_ref - F_cur|, checked at each breakpoint and just below it."""
    reference = window.reference
    below = np.cumsum(window.counts)[:-1]
    at_or_below = below + window.at_edges
    return float(max(np.abs(reference.at - at_or_below / window.rows).max(),
                     np.abs(reference.before - below / window.rows).max()))


def _largest_gap_inside(window: NumericWindow, at_edges: float) -> float:
    """The statistic, looking inside the intervals whose gap could exceed `at_edges`, the
    largest gap at an edge."""
    low, high = gap_bounds(window)
    chosen = np.maximum(-low, high) > at_edges
    if not chosen.any():
        return at_edges
    gaps, widths = steps_inside(window, chosen)
    return max(at_edges, float(np.abs(gaps[widths > 0]).max(initial=0.0)))


def smirnov_p_value(statistic: float, rows_reference: int, rows_current: int) -> float:
    """scipy's 'asymp' branch of ks_2samp, word for word."""
    larger, smaller = sorted([float(rows_reference), float(rows_current)], reverse=True)
    effective = larger * smaller / (larger + smaller)
    return float(np.clip(stats.kstwo.sf(statistic, np.round(effective)), 0, 1))
