"""Rows beyond the sample for the conversion check: what a sample of real rows misses.

A sample shows how the ONNX form does where the data is dense; a converter's mistake often
sits elsewhere, at a split threshold no sample row falls on, or in a region of the feature
space the sample leaves empty. Two kinds of probe rows go through the same check:

- `range`: `RANGE_ROWS` rows drawn uniformly within each numeric column's min..max (integers
  in integer columns), the rows of the quantile edges `QUANTILES` (the extremes among
  them), and every category or string seen in the sample, cycled through the rows (so the
  rows grow to the number of categories, up to `MAX_RANGE_ROWS`); columns of other types
  are copied from sample rows.
- `thresholds`: for a graph whose tree ensembles read its input columns, every distinct split
  threshold, the float32 on it and one float32 step either side, the other columns taken
  from sample rows; at most `MAX_THRESHOLDS` thresholds (a seeded draw when there are more),
  so at most 3 x `MAX_THRESHOLDS` rows.

Rows are synthesised for tables (DataFrames, including the `columns` layout with string
columns) and 2-D float arrays; images and other arrays of higher rank, integer arrays (token
ids, codes) and samples of one array per graph input are not, and the check records why.
Probes are built from the sample as served: float64 columns cast to float32 where the graph
takes float32 (see `as_served`).

Cost: probes add about 0.06 s to the registration of a 300-tree LightGBM regressor (0.40 s in
all; 1,828 probe rows) and 0.05 s to a 300-tree XGBoost one (0.34 s; 3,070 rows), measured
with `python bench/conversion_check.py --probe-cost` on 2 shared CPU cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from ferry.convert.base import Conversion, Sample
from ferry.convert.trees import input_thresholds
from ferry.signature import Layout, Signature

RANGE_ROWS = 256
"""Uniform rows drawn across the sample's ranges."""
MAX_RANGE_ROWS = 1024
"""Upper bound on the uniform rows when a column has more categories than `RANGE_ROWS`."""
QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
"""Quantile edges, one row each: every numeric column at that quantile of the sample."""
MAX_THRESHOLDS = 2000
"""Thresholds probed (three rows each); a 300-tree model has up to ~2,500 distinct ones."""
PROBE_SEED = 0


class ProbeKind(StrEnum):
    RANGE = "range"
    THRESHOLDS = "thresholds"


@dataclass(frozen=True)
class ProbeRows:
    """Rows of one kind, shaped like the sample, and what each one probes."""

    kind: ProbeKind
    rows: pd.DataFrame | np.ndarray
    about: tuple[str, ...]


@dataclass(frozen=True)
class Probes:
    """The probe rows built for one check, and the kinds left out with the reason."""

    sets: tuple[ProbeRows, ...] = ()
    skipped: tuple[str, ...] = ()


def as_served(data: Sample, signature: Signature) -> Sample:
    """`data` as the graph sees it: float64 values cast to float32 where the graph takes
    float32, as `ferry.runtime.feeds` casts them on every request."""
    takes = {spec.name: spec.dtype for spec in signature.inputs}
    if isinstance(data, dict):
        return {name: _float32_if(array, takes.get(name)) for name, array in data.items()}
    if isinstance(data, np.ndarray):
        return _float32_if(data, takes.get("X") if len(takes) == 1 else None)
    if signature.layout == Layout.COLUMNS:
        doubles = [c for c in data.columns if takes.get(str(c)) == "float32"
                   and data[c].dtype == np.float64]
    else:
        doubles = list(data.select_dtypes(include="float64").columns)
        doubles = doubles if set(takes.values()) == {"float32"} else []
    return data.astype(dict.fromkeys(doubles, np.float32)) if doubles else data


def _float32_if(array: np.ndarray, dtype: str | None) -> np.ndarray:
    return array.astype(np.float32) if dtype == "float32" and array.dtype == np.float64 else array


def build_probes(rows: Sample, conversion: Conversion) -> Probes:
    """The probe rows for a check on `rows` (the sample as served)."""
    reason = _cannot_synthesise(rows)
    if reason is not None:
        return Probes(skipped=(f"range and thresholds: {reason}",))
    assert not isinstance(rows, dict)
    rng = np.random.default_rng(PROBE_SEED)
    sets, skipped = [range_probes(rows, rng)], []
    thresholds = input_thresholds(conversion.onnx_model)
    if thresholds is not None:
        sets.append(threshold_probes(rows, thresholds, conversion.signature, rng))
    elif any(n.op_type.startswith("TreeEnsemble") for n in conversion.onnx_model.graph.node):
        skipped.append("thresholds: the trees read features the graph computes, not its input")
    return Probes(tuple(sets), tuple(skipped))


def _cannot_synthesise(rows: Sample) -> str | None:
    if isinstance(rows, dict):
        return "a sample of one array per graph input is not synthesised"
    if len(rows) == 0:
        return "the sample has no rows"
    if isinstance(rows, np.ndarray) and rows.ndim != 2:
        return f"arrays of rank {rows.ndim} (images, sequences) are not synthesised"
    if isinstance(rows, np.ndarray) and rows.dtype.kind != "f":
        return f"{rows.dtype} arrays (token ids, codes, text) are not synthesised"
    return None


def range_probes(rows: pd.DataFrame | np.ndarray, rng: np.random.Generator) -> ProbeRows:
    """Uniform rows across each column's range, then one row per quantile edge."""
    frame = pd.DataFrame(rows) if isinstance(rows, np.ndarray) else rows
    count = min(max([RANGE_ROWS, *(_categories(frame[c]).size for c in frame.columns)]),
                MAX_RANGE_ROWS)
    uniform = pd.DataFrame({c: _uniform(frame[c], count, rng) for c in frame.columns})
    edges = pd.DataFrame({c: _edges(frame[c], rng) for c in frame.columns})
    probes = pd.concat([uniform, edges], ignore_index=True).astype(frame.dtypes.to_dict())
    about = ("uniform",) * count + tuple(_edge_name(q) for q in QUANTILES)
    return ProbeRows(ProbeKind.RANGE, _like(rows, probes), about)


def _uniform(column: pd.Series, count: int, rng: np.random.Generator) -> np.ndarray:
    seen = _finite(column)
    if seen.empty or not _numeric(column):
        return _cycled(column, count, rng)
    low, high = seen.min(), seen.max()
    if pd.api.types.is_integer_dtype(column):
        return rng.integers(int(low), int(high), count, endpoint=True)
    return rng.uniform(float(low), float(high), count)


def _edges(column: pd.Series, rng: np.random.Generator) -> np.ndarray:
    seen = _finite(column)
    if seen.empty or not _numeric(column):
        return _cycled(column, len(QUANTILES), rng)
    values = seen.to_numpy()
    if pd.api.types.is_integer_dtype(column):
        return np.quantile(values, QUANTILES, method="inverted_cdf")
    return np.quantile(values, QUANTILES)


def _finite(column: pd.Series) -> pd.Series:
    """The column's values other than missing ones and infinities."""
    if not _numeric(column):
        return column.dropna()
    return column.replace([np.inf, -np.inf], np.nan).dropna()


def _cycled(column: pd.Series, count: int, rng: np.random.Generator) -> np.ndarray:
    """Every category seen, shuffled and repeated to `count`; a column that is not
    categorical (or has nothing but missing values) is copied from sample rows."""
    categories = _categories(column)
    if categories.size == 0 or _numeric(column):
        return np.resize(column.to_numpy(), count)
    return np.resize(rng.permutation(categories), count)


def _categories(column: pd.Series) -> np.ndarray:
    """The distinct values of a string, categorical or boolean column; none for others."""
    if _numeric(column) or not (pd.api.types.is_object_dtype(column)
                                or pd.api.types.is_string_dtype(column)
                                or isinstance(column.dtype, pd.CategoricalDtype)
                                or pd.api.types.is_bool_dtype(column)):
        return np.asarray([])
    return np.asarray(pd.unique(column.dropna()), dtype=object)


def _numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _edge_name(quantile: float) -> str:
    names = {0.0: "minimum", 1.0: "maximum"}
    return names.get(quantile, f"quantile {quantile:g}")


def _like(rows: pd.DataFrame | np.ndarray, probes: pd.DataFrame) -> pd.DataFrame | np.ndarray:
    return probes.to_numpy(dtype=rows.dtype) if isinstance(rows, np.ndarray) else probes


def threshold_probes(rows: pd.DataFrame | np.ndarray, thresholds: pd.DataFrame,
                     signature: Signature, rng: np.random.Generator) -> ProbeRows:
    """Sample rows with one column set on a split threshold and one float32 step either
    side (rows `3k`, `3k+1`, `3k+2` probe threshold `k` below, on and above it)."""
    if len(thresholds) > MAX_THRESHOLDS:
        keep = np.sort(rng.choice(len(thresholds), MAX_THRESHOLDS, replace=False))
        thresholds = thresholds.iloc[keep]
    features = np.repeat(thresholds["feature"].to_numpy(), 3)
    on = thresholds["threshold"].to_numpy(dtype=np.float32)
    with np.errstate(over="ignore"):  # beside the largest float32 lies infinity
        values = np.stack([np.nextafter(on, np.float32(-np.inf)), on,
                           np.nextafter(on, np.float32(np.inf))], axis=1).reshape(-1)
    base = np.arange(len(values)) % len(rows)
    probes = _set_columns(rows, base, features, values, signature)
    about = tuple(f"{_column_name(rows, f, signature)} {side} split {v:.9g}" for f, v, side in
                  zip(features, np.repeat(on, 3), ("below", "on", "above") * len(on),
                      strict=True))
    return ProbeRows(ProbeKind.THRESHOLDS, probes, about)


def _set_columns(rows: pd.DataFrame | np.ndarray, base: np.ndarray, features: np.ndarray,
                 values: np.ndarray, signature: Signature) -> pd.DataFrame | np.ndarray:
    """Sample rows `base`, with the graph's input column `features[i]` of row `i` set to
    `values[i]`."""
    if isinstance(rows, np.ndarray):
        probes = rows[base].copy()
        probes[np.arange(len(base)), features] = values
        return probes
    frame = rows.iloc[base].reset_index(drop=True)
    for feature in np.unique(features):
        column = _column_name(rows, feature, signature)
        if not _numeric(frame[column]):
            continue
        if not pd.api.types.is_float_dtype(frame[column]):
            frame[column] = frame[column].astype(np.float64)
        frame.loc[features == feature, column] = values[features == feature]
    return frame


def _column_name(rows: pd.DataFrame | np.ndarray, feature: int, signature: Signature) -> str:
    """The column that feeds the graph's input column `feature` (as `to_feeds` picks it)."""
    if signature.feature_names is not None:
        return signature.feature_names[feature]
    return str(rows.columns[feature]) if isinstance(rows, pd.DataFrame) else f"f{feature}"
