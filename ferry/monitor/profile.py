"""The reference profile: what drift is measured against, kept so the reference data is never
re-read (Evidently #506).

Built once at registration from the sample or a larger `reference=` data set and stored, as
JSON, with the version. Per numeric column it keeps mean, standard deviation, and its values or
quantiles; per categorical column the top values' counts plus an "other" count; for both the
missing count.
What is kept is chosen so the default drift tests run from the profile alone:

- up to `EXACT_VALUES` distinct non-missing values, the sorted distinct values and how often
  each occurs: the reference's empirical distribution itself, so Kolmogorov-Smirnov and
  Wasserstein are exact, as Evidently computes them on the raw reference. A column of
  continuous values costs about 22 bytes of JSON a value (2.2 MB at the cap), and reading it
  back about 0.7 microseconds a value;
- above, a `SKETCH_POINTS`-point quantile sketch with the reference CDF's area between each two
  points: Wasserstein from it is approximate (measured within 4e-5 of the normed distance on
  the raw data for 1M-row windows, 1.6e-3 for 300-row ones; see
  `ferry.monitor.drift.wasserstein`), KS within one sketch step.

How a column is stored does not choose its test: Evidently's switch from p-value tests to
distances at 1000 reference rows (`ferry.monitor.drift.default_method`) reads the row count.

Column kinds follow Evidently's rule: a numeric dtype (not bool) with more than
`CATEGORICAL_MAX_UNIQUE` distinct values is numeric; everything else, strings, bools and numbers
with few values, is categorical. Missing means null, NaN or infinite (Evidently drops all three).

Version 1 profiles (sorted values with repeats up to 1000 rows, no counts) are read and turned
into the version 2 layout; see `upgrade_profile_dict`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa

from ferry.errors import InvalidInputError
from ferry.monitor.columns import MAX_FEATURE_COLUMNS, flat_columns

PROFILE_VERSION = 2
"""Bumped when the stored layout changes; `Profile.from_dict` refuses versions it does not know.
2: exact numeric columns keep distinct values and their counts, up to `EXACT_VALUES`."""
READABLE_VERSIONS = (1, PROFILE_VERSION)
"""Stored layouts `Profile.from_dict` reads; older ones are upgraded as they are read."""
EXACT_VALUES = 100_000
"""Most distinct values a numeric column keeps exactly; above, a quantile sketch. Counted in
distinct values, not rows, so a large reference of a few hundred prices stays exact."""
SKETCH_POINTS = 1001
"""Quantiles at 0, 0.001, ..., 1 above `EXACT_VALUES` (section 4.3 of the design notes)."""
TOP_CATEGORIES = 100
"""Categories counted one by one; rarer ones are pooled into `other`."""
CATEGORICAL_MAX_UNIQUE = 5
"""Evidently's NUMBER_UNIQUE_AS_CATEGORICAL: numbers with this few values are categories."""
PSI_BINS = 10
"""PSI uses ten reference-quantile bins (the common practice, not Evidently's 30)."""
Category: TypeAlias = str | int | float | bool
ColumnValues: TypeAlias = np.ndarray | pd.Series | pa.Array | pa.ChunkedArray | list[Any]


class ColumnKind(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


@dataclass(frozen=True)
class NumericProfile:
    """A numeric reference column.

    When `exact`, `points` are the sorted distinct values and `counts[i]` how often points[i]
    occurs: the raw reference up to its order, in less room when values repeat. Otherwise
    `points` are quantiles at evenly spaced probabilities from 0 to 1, `counts` is empty, and
    `areas[i]` is the integral of the reference CDF from points[i] to points[i+1], computed from
    the raw values (Wasserstein is that area's difference, and the tails are where a straight
    line between quantiles is furthest from the data). `std` has ddof=0, as Evidently norms
    by it."""

    kind: ClassVar[ColumnKind] = ColumnKind.NUMERIC
    name: str
    rows: int
    missing: int
    mean: float
    std: float
    min: float
    max: float
    unique: int
    exact: bool
    points: tuple[float, ...]
    counts: tuple[int, ...]
    areas: tuple[float, ...]
    psi_edges: tuple[float, ...]
    psi_reference: tuple[float, ...]

    @property
    def count(self) -> int:
        """Non-missing values: the reference size the tests see."""
        return self.rows - self.missing


@dataclass(frozen=True)
class CategoricalProfile:
    """A categorical reference column: counts of the most frequent values, then `other`."""

    kind: ClassVar[ColumnKind] = ColumnKind.CATEGORICAL
    name: str
    rows: int
    missing: int
    unique: int
    values: tuple[Category, ...]
    counts: tuple[int, ...]
    other: int

    @property
    def count(self) -> int:
        return self.rows - self.missing


ColumnProfile = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class Profile:
    """Every profiled input column and model output of one model version."""

    columns: dict[str, ColumnProfile]
    outputs: dict[str, ColumnProfile]
    rows: int
    created: str
    notes: tuple[str, ...] = ()
    version: int = field(default=PROFILE_VERSION)

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "rows": self.rows, "created": self.created,
                "notes": list(self.notes),
                "columns": {name: column_to_dict(c) for name, c in self.columns.items()},
                "outputs": {name: column_to_dict(c) for name, c in self.outputs.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Read a stored profile of any version in `READABLE_VERSIONS`, upgraded to this one."""
        if data.get("version") not in READABLE_VERSIONS:
            raise InvalidInputError(f"profile version {data.get('version')!r} is not one this "
                                    f"ferry reads ({', '.join(map(str, READABLE_VERSIONS))})")
        try:
            data = upgrade_profile_dict(data)
            return cls(columns=_columns_from_dict(data["columns"]),
                       outputs=_columns_from_dict(data["outputs"]), rows=int(data["rows"]),
                       created=str(data["created"]), notes=tuple(data["notes"]))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"profile is malformed: {exc!r}") from exc


def upgrade_profile_dict(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """A stored profile in this version's layout. Version 1 kept an exact column's sorted
    values with their repeats and no `counts`; its sketches are the same as now."""
    if data["version"] == PROFILE_VERSION:
        return data
    return {**data, "version": PROFILE_VERSION,
            "columns": _upgrade_columns(data["columns"]),
            "outputs": _upgrade_columns(data["outputs"])}


def _upgrade_columns(columns: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _upgrade_numeric(column) if column["kind"] == ColumnKind.NUMERIC else column
            for name, column in columns.items()}


def _upgrade_numeric(column: Mapping[str, Any]) -> dict[str, Any]:
    if not column["exact"]:
        return {**column, "counts": []}
    distinct, counts = np.unique(np.asarray(column["points"], dtype=np.float64),
                                 return_counts=True)
    return {**column, "points": distinct.tolist(), "counts": counts.tolist()}


def column_to_dict(column: ColumnProfile) -> dict[str, Any]:
    fields = {name: getattr(column, name) for name in column.__dataclass_fields__}
    data = {key: list(value) if isinstance(value, tuple) else value
            for key, value in fields.items()}
    return {"kind": str(column.kind), **data}


def column_from_dict(data: Mapping[str, Any]) -> ColumnProfile:
    fields: dict[str, Any] = {key: tuple(value) if isinstance(value, list) else value
                              for key, value in data.items() if key != "kind"}
    if data["kind"] == ColumnKind.NUMERIC:
        return NumericProfile(**fields)
    if data["kind"] == ColumnKind.CATEGORICAL:
        return CategoricalProfile(**fields)
    raise InvalidInputError(f"profile column kind {data['kind']!r} is not numeric or categorical")


def _columns_from_dict(data: Mapping[str, Any]) -> dict[str, ColumnProfile]:
    return {name: column_from_dict(column) for name, column in data.items()}


def build_profile(data: pd.DataFrame | pa.Table | Mapping[str, Any],
                  outputs: Mapping[str, Any] | None = None) -> Profile:
    """Profile the reference inputs and, if given, the model's outputs on them."""
    columns, notes = flatten_columns(data)
    output_columns, output_notes = flatten_columns(outputs or {})
    features, feature_skips = _profile_all(columns)
    predictions, prediction_skips = _profile_all(output_columns)
    rows = max((len(values) for values in columns.values()), default=0)
    return Profile(columns=features, outputs=predictions, rows=rows,
                   created=datetime.now(UTC).isoformat(),
                   notes=(*notes, *output_notes, *feature_skips, *prediction_skips))


def flatten_columns(data: pd.DataFrame | pa.Table | Mapping[str, Any]
                    ) -> tuple[dict[str, ColumnValues], list[str]]:
    """One 1-D array per column: a 2-D input `X` of n columns becomes `X[0]` ... `X[n-1]`
    (up to `MAX_FEATURE_COLUMNS`); wider or higher-rank inputs are skipped with a note."""
    if isinstance(data, pd.DataFrame):
        return {str(name): data[name] for name in data.columns}, []
    if isinstance(data, pa.Table):
        return {name: data.column(name) for name in data.column_names}, []
    columns: dict[str, ColumnValues] = {}
    notes: list[str] = []
    for name, values in data.items():
        _flatten_one(str(name), values, columns, notes)
    return columns, notes


def _flatten_one(name: str, values: Any, columns: dict[str, ColumnValues],
                 notes: list[str]) -> None:
    if isinstance(values, pd.Series | pa.Array | pa.ChunkedArray):
        columns[name] = values
        return
    flat = flat_columns(name, values)
    columns.update(flat)
    if not flat:
        array = np.asarray(values)
        notes.append(f"{name}: shape {list(array.shape[1:])} per row is not profiled "
                     f"(more than {MAX_FEATURE_COLUMNS} columns or more than 2 dimensions)")


def _profile_all(columns: Mapping[str, ColumnValues]
                 ) -> tuple[dict[str, ColumnProfile], list[str]]:
    profiles: dict[str, ColumnProfile] = {}
    notes: list[str] = []
    for name, values in columns.items():
        series = as_series(values)
        reason = _skip_reason(series)
        if reason:
            notes.append(f"{name}: {reason}")
        else:
            profiles[name] = profile_column(name, series)
    return profiles, notes


def _skip_reason(series: pd.Series) -> str | None:
    if pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_timedelta64_dtype(series):
        return "dates and durations are not profiled"
    if series.isna().all() or (_is_numeric(series) and not np.isfinite(as_floats(series)).any()):
        return "no values (all missing)"
    return None


def profile_column(name: str, series: pd.Series) -> ColumnProfile:
    """Profile one column, numeric or categorical by Evidently's rule."""
    if _is_numeric(series):
        values = as_floats(series)
        finite = values[np.isfinite(values)]
        distinct, counts = np.unique(finite, return_counts=True)
        if distinct.size > CATEGORICAL_MAX_UNIQUE:
            return _numeric_profile(name, len(values), finite, distinct, counts)
    return _categorical_profile(name, series)


def _numeric_profile(name: str, rows: int, finite: np.ndarray, distinct: np.ndarray,
                     counts: np.ndarray) -> NumericProfile:
    """`distinct` and `counts` are np.unique's: the one sort of the column, reused."""
    ordered = np.repeat(distinct, counts)
    exact = distinct.size <= EXACT_VALUES
    points = distinct if exact else _sketch(ordered)
    areas = np.empty(0) if exact else _interval_areas(ordered, points)
    edges = _psi_edges(ordered, points, exact)
    bins = np.bincount(np.searchsorted(edges, ordered, side="right"), minlength=edges.size + 1)
    return NumericProfile(
        name=name, rows=rows, missing=rows - finite.size, mean=float(finite.mean()),
        std=float(finite.std()), min=float(ordered[0]), max=float(ordered[-1]),
        unique=int(distinct.size), exact=exact, points=_floats(points),
        counts=tuple(counts.tolist()) if exact else (), areas=_floats(areas),
        psi_edges=_floats(edges), psi_reference=_floats(bins / finite.size))


def _sketch(ordered: np.ndarray) -> np.ndarray:
    """Quantiles at 0, 0.001, ..., 1, kept non-decreasing despite interpolation rounding."""
    return np.maximum.accumulate(np.quantile(ordered, np.linspace(0, 1, SKETCH_POINTS)))


def _psi_edges(ordered: np.ndarray, points: np.ndarray, exact: bool) -> np.ndarray:
    """Inner decile edges; for a sketch, its own points at 0.1, 0.2, ... (the same quantiles)."""
    if exact:
        return np.unique(np.quantile(ordered, np.arange(1, PSI_BINS) / PSI_BINS))
    step = (SKETCH_POINTS - 1) // PSI_BINS
    return np.unique(points[step:SKETCH_POINTS - 1:step])


def _interval_areas(ordered: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Integral of the empirical CDF over each [points[i], points[i+1]]: the CDF at the left
    end times the width, plus each value inside's distance to the right end, over n."""
    below = np.searchsorted(ordered, points[:-1], side="right") / ordered.size
    interval = np.searchsorted(points, ordered, side="left") - 1
    inside = (interval >= 0) & (interval < points.size - 1)
    gaps = points[interval[inside] + 1] - ordered[inside]
    tails = np.bincount(interval[inside], weights=gaps, minlength=points.size - 1)
    return below * np.diff(points) + tails / ordered.size


def _categorical_profile(name: str, series: pd.Series) -> CategoricalProfile:
    counts, missing = category_counts(series)
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    top = ranked[:TOP_CATEGORIES]
    return CategoricalProfile(
        name=name, rows=len(series), missing=missing, unique=len(ranked),
        values=tuple(value for value, _ in top), counts=tuple(count for _, count in top),
        other=sum(count for _, count in ranked[TOP_CATEGORIES:]))


def category_counts(values: ColumnValues) -> tuple[dict[Category, int], int]:
    """Count each distinct value (as a JSON scalar) and the missing ones, in first-seen order."""
    codes, uniques = pd.factorize(as_series(values), use_na_sentinel=True)
    per_unique = np.bincount(codes + 1, minlength=len(uniques) + 1)
    counts: dict[Category, int] = {}
    missing = int(per_unique[0])
    for value, count in zip(uniques, per_unique[1:].tolist(), strict=True):
        key = category_key(value)
        if key is None:
            missing += count
        else:
            counts[key] = counts.get(key, 0) + count
    return counts, missing


def category_key(value: Any) -> Category | None:
    """The JSON scalar a category is stored as; None for a missing value."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, str | int | float | bool) else str(value)


def as_series(values: ColumnValues) -> pd.Series:
    """A pandas view of any column the profile or a window may receive."""
    if isinstance(values, pd.Series):
        return values
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values.to_pandas()
    return pd.Series(np.asarray(values) if not isinstance(values, np.ndarray) else values)


def as_floats(values: ColumnValues) -> np.ndarray:
    """float64 values, nulls and non-numbers as NaN (counted as missing by the tests)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        return values.astype(np.float64, copy=False)
    if isinstance(values, pa.Array | pa.ChunkedArray):
        values = values.to_pandas()
    numbers = pd.to_numeric(as_series(values), errors="coerce")
    return np.asarray(numbers.to_numpy(dtype=np.float64, na_value=np.nan))


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _floats(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in values.tolist())
