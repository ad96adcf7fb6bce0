"""Pearson's chi-squared goodness of fit: Evidently's default for categorical columns (and
numbers with at most 5 values) with more than 2 values and at most 1000 reference rows, drift
when p < 0.05.

As in Evidently, the current counts are tested against the reference proportions scaled to the
window (`scipy.stats.chisquare(f_obs, f_exp)`), not as a two-sample contingency table. A value
the reference never had has an expected count of 0: the statistic is infinite and p is 0.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from ferry.monitor.drift.base import DEFAULT_P_VALUE, Detector, Measurement
from ferry.monitor.drift.categorical import CategoricalWindow
from ferry.monitor.profile import ColumnKind


class ChiSquareDetector(Detector):
    method = "chisquare"
    kinds = frozenset({ColumnKind.CATEGORICAL})
    default_threshold = DEFAULT_P_VALUE
    uses_p_value = True

    def _categorical(self, window: CategoricalWindow) -> Measurement:
        keep = window.present()
        observed = window.counts[keep]
        scale = window.rows / window.reference.rows
        expected = window.reference.expected[keep] * scale
        if np.any((expected == 0) & (observed > 0)):
            return Measurement(math.inf, 0.0)
        if observed.size < 2:
            return Measurement(0.0, 1.0)
        result = stats.chisquare(observed, expected)
        return Measurement(float(result.statistic), float(result.pvalue))
