"""Population Stability Index as a detector of its own (it is also reported beside every
other test). Bins: ten reference quantiles for numbers, the values for categories; an empty bin
counts as a share of 1e-4. Bands: below 0.1 ok, 0.1 to 0.2 warn, 0.2 and above drift.

Evidently's PSI (not one of its defaults) bins numbers with Sturges' rule over the pooled data
and has a single threshold of 0.1; these bins are fixed by the reference, so a window's PSI can
be compared with another window's.
"""

from __future__ import annotations

from ferry.monitor.drift.base import (
    PSI_DRIFT,
    PSI_WARN,
    Detector,
    Measurement,
    Verdict,
    population_stability,
)
from ferry.monitor.drift.categorical import CategoricalWindow
from ferry.monitor.drift.numeric import NumericWindow
from ferry.monitor.profile import ColumnKind


class PSIDetector(Detector):
    method = "psi"
    kinds = frozenset({ColumnKind.NUMERIC, ColumnKind.CATEGORICAL})
    default_threshold = PSI_DRIFT
    uses_p_value = False

    def _numeric(self, window: NumericWindow) -> Measurement:
        return Measurement(population_stability(*window.psi_proportions()))

    def _categorical(self, window: CategoricalWindow) -> Measurement:
        return Measurement(population_stability(*window.psi_proportions()))

    def _verdict(self, measured: Measurement, psi: float) -> Verdict:
        if measured.statistic >= self.threshold_:
            return Verdict.DRIFT
        return Verdict.WARN if measured.statistic >= min(PSI_WARN, self.threshold_) \
            else Verdict.OK
