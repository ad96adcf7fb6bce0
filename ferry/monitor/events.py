"""What the monitoring store keeps: one event per inference request, some rows of a request's
features and predictions, and the drift job's results.

These are plain values with no behaviour, so that the server's capture, the stores and the
drift job agree on them without importing one another. Timestamps are timezone-aware UTC;
the stores keep them to the microsecond.

Sampled rows keep inputs and outputs in one mapping of columns: an output column's name
starts with `OUTPUT_PREFIX` ("output:probabilities"), so a model whose input and output share
a name keeps both, and a reader tells them apart without a second mapping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np

OUTPUT_PREFIX = "output:"
"""Starts the name of every sampled output column; any other column is a model input."""


class Outcome(StrEnum):
    """How a request ended: the names `ferry.serve.outcomes.Outcome` gives (monitor does not
    import serve, so they are repeated here; a test keeps the two equal)."""

    OK = "ok"
    INVALID_INPUT = "invalid_input"
    TOO_LARGE = "too_large"
    REQUEST_TIMEOUT = "request_timeout"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    NOT_READY = "not_ready"
    OVERLOADED = "overloaded"
    TIMEOUT = "timeout"
    CLIENT_CLOSED = "client_closed"
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One input or output tensor of a request, as the V2 protocol names it (no values)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class InferenceEvent:
    """One inference request: who it was for, how it ended and where its time went."""

    ts: datetime
    request_id: str
    model: str
    version: int
    alias: str | None
    """The alias the request named (`model@alias`), None when it named a version."""
    protocol: str
    """"rest" or "grpc"."""
    status: str
    """An `Outcome` value."""
    error_type: str | None
    latency_s: float
    queue_s: float
    compute_s: float
    batch_size: int
    request_bytes: int
    response_bytes: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]


@dataclass(frozen=True, slots=True)
class SampledRows:
    """Some rows of one request: feature values and predictions, one column each.

    Every column has the same length and its first axis is the row; a row's index within the
    request is its position here. Output columns are named `OUTPUT_PREFIX + name`. The names
    `ts`, `request_id`, `row` and `label` are the store's own and cannot be columns.
    """

    ts: datetime
    request_id: str
    model: str
    version: int
    columns: Mapping[str, np.ndarray]
    row_requests: Sequence[str] | None = None
    """Rows of several requests in one block (the capture's sampler writes a second's kept
    rows so): row i belongs to request `row_requests[i]`, where it was row `row_numbers[i]`.
    None: every row belongs to `request_id`, numbered by position."""
    row_numbers: Sequence[int] | None = None


@dataclass(frozen=True, slots=True)
class MonitorResult:
    """One test of one column over one window, as the drift job decided it.

    `kind` says what was tested ("feature", "prediction", "dataset", ...), `column` which
    column (None for a whole-dataset result), `method` how ("ks", "psi", ...); `extra` holds
    whatever else the method reports, as JSON-compatible values.
    """

    ts: datetime
    model: str
    version: int
    window_start: datetime
    window_end: datetime
    kind: str
    column: str | None
    method: str
    statistic: float
    p_value: float | None
    psi: float | None
    verdict: str
    rows: int
    extra: Mapping[str, Any] = field(default_factory=dict)


def output_column(name: str) -> str:
    """The sampled column name of the model output `name`."""
    return OUTPUT_PREFIX + name


def is_output_column(column: str) -> bool:
    return column.startswith(OUTPUT_PREFIX)
