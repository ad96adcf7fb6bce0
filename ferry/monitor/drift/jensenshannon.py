"""Jensen-Shannon distance (natural log, as scipy's default): Evidently's default for
categorical columns (and numbers with at most 5 values) of more than 1000 reference rows,
drift when >= 0.1.

Categorical: over the union of values, as Evidently. Numeric (only when chosen explicitly):
over the profile's ten reference-quantile bins, where Evidently bins the pooled data with
Sturges' rule, which needs the raw reference.
"""

from __future__ import annotations

from scipy.spatial import distance

from ferry.monitor.drift.base import DEFAULT_DISTANCE, Detector, Measurement
from ferry.monitor.drift.categorical import CategoricalWindow
from ferry.monitor.drift.numeric import NumericWindow
from ferry.monitor.profile import ColumnKind


class JensenShannonDetector(Detector):
    method = "jensenshannon"
    kinds = frozenset({ColumnKind.NUMERIC, ColumnKind.CATEGORICAL})
    default_threshold = DEFAULT_DISTANCE
    uses_p_value = False

    def _numeric(self, window: NumericWindow) -> Measurement:
        return Measurement(float(distance.jensenshannon(*window.psi_proportions())))

    def _categorical(self, window: CategoricalWindow) -> Measurement:
        return Measurement(float(distance.jensenshannon(*window.proportions())))
