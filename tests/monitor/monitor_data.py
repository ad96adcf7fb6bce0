"""Records for the monitoring tests, built from a few arguments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from ferry.monitor.events import InferenceEvent, MonitorResult, SampledRows, TensorInfo

NOW = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
MODEL = "iris"


def event(request_id: str, *, ts: datetime = NOW, model: str = MODEL, version: int = 1,
          **changes: Any) -> InferenceEvent:
    fields: dict[str, Any] = dict(
        ts=ts, request_id=request_id, model=model, version=version, alias="production",
        protocol="rest", status="ok", error_type=None, latency_s=0.0042, queue_s=0.0011,
        compute_s=0.0023, batch_size=3, request_bytes=812, response_bytes=97,
        inputs=(TensorInfo("X", "FP32", (3, 4)),),
        outputs=(TensorInfo("label", "INT64", (3,)), TensorInfo("probabilities", "FP32", (3, 3))))
    return InferenceEvent(**(fields | changes))


def sampled(request_id: str, rows: int = 2, *, ts: datetime = NOW, model: str = MODEL,
            version: int = 1, **columns: Any) -> SampledRows:
    """`rows` rows with a float and a string feature and a label output, unless `columns`."""
    values = columns or {"x": np.arange(rows, dtype=np.float64),
                         "colour": np.array(["red"] * rows, dtype=object),
                         "output:label": np.arange(rows, dtype=np.int64)}
    return SampledRows(ts, request_id, model, version, values)


def result(*, ts: datetime = NOW, version: int = 1, column: str | None = "x",
           **changes: Any) -> MonitorResult:
    fields: dict[str, Any] = dict(
        ts=ts, model=MODEL, version=version, window_start=ts - timedelta(days=1),
        window_end=ts, kind="feature", column=column, method="ks", statistic=0.31,
        p_value=0.002, psi=0.24, verdict="drift", rows=1200,
        extra={"threshold": 0.05, "bins": [0.1, 0.5], "note": "ünïcode"})
    return MonitorResult(**(fields | changes))
