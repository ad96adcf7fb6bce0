"""Where is the candidate worse? The primary metric of both versions on slices of the rows.

Slices come from two places:
- declared columns: one slice per value of a categorical column (its `MAX_CATEGORIES` most
  frequent), one per quartile of a numeric one (`colour=red`, `0.8<petal_width<=1.3`);
- found ones, as Giskard's scan finds them: a shallow regression tree (depth 3, leaves of at
  least max(`min_rows`, 1 % of rows)) fitted to the per-row loss difference, candidate minus
  baseline (log loss when both versions give probabilities, else 0/1 error; squared error
  for regressors), over the feature columns. On each path from the root, the first node
  where the candidate is worse on average becomes a slice named by its path
  (`petal_width<=0.8&sepal_length>5.1`); its subtree is not sliced further.

A slice fails when the candidate is worse than the baseline on the same slice by more than
`max_relative_drop` (5 %, Giskard's threshold) relative, beyond noise: the paired bootstrap
interval of the difference must lie wholly past the tolerance (see `conditions`), so small
noisy slices do not fail. Slices under `min_rows` rows are reported, not judged. Each check's
detail also carries the candidate's gap to its own overall value (Giskard's slice-vs-overall
measure), informative only: a comparative gate judges the candidate against the baseline.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.tree import DecisionTreeRegressor

from ferry.errors import InvalidInputError
from ferry.gate.checks import Check, Kind, Scores, Verdict
from ferry.gate.conditions import MetricThreshold, Resamples, difference_interval, judge
from ferry.gate.metrics import (
    METRICS,
    PRIMARY,
    Labelled,
    Metric,
    encode,
    finite_rows,
    metric,
    row_loss,
)
from ferry.signature import Task

MIN_SLICE_ROWS = 100
"""Slices with fewer rows are reported, not judged (the gate's default, as Giskard's)."""
MAX_RELATIVE_DROP = 0.05
"""How much worse than the baseline's same slice the candidate may be (Giskard: 5 %)."""
MAX_CATEGORIES = 20
"""Values of a declared categorical column sliced (the most frequent; one-hot columns for
the tree likewise)."""
CATEGORICAL_MAX_VALUES = 10
"""A numeric column with at most this many values is sliced per value, not per quartile."""
TREE_DEPTH = 3
"""Depth of the slice-finding tree: a found slice joins at most three conditions."""
MIN_LEAF_SHARE = 0.01
"""A found slice holds at least this share of the rows (and at least `min_rows`)."""


@dataclass(frozen=True)
class Slice:
    name: str
    rows: np.ndarray
    source: str
    """"declared" or "found"."""


def slice_checks(frame: pd.DataFrame, y_true: ArrayLike, candidate: Scores, baseline: Scores,
                 task: Task, declared: Sequence[str] = (), min_rows: int = MIN_SLICE_ROWS,
                 max_relative_drop: float = MAX_RELATIVE_DROP, auto: bool = True,
                 seed: int = 0, *, primary: str | None = None) -> list[Check]:
    """One check per slice, declared slices first: the primary metric of both versions on
    it (the task's default when a version cannot give the one named). `frame` holds the
    rows' feature columns (and the declared ones), in score order."""
    if task not in METRICS:
        return []
    _require_columns(frame, declared, len(np.asarray(y_true)))
    pair = encode(task, y_true, candidate, baseline)
    keep = np.flatnonzero(finite_rows(pair[0]) & finite_rows(pair[1]))
    pair, frame = [data.take(keep) for data in pair], frame.iloc[keep]
    slices = [s for column in declared for s in declared_slices(frame, column)]
    if auto:
        slices += _new(found_slices(frame, _loss_difference(pair), min_rows, seed), slices)
    judge_slice = _SliceJudge.build(_primary(task, primary, pair), pair, min_rows,
                                    max_relative_drop, seed)
    return [judge_slice.check(piece, pair) for piece in slices]


def _primary(task: Task, name: str | None, pair: list[Labelled]) -> Metric:
    chosen = metric(task, name or PRIMARY[task])
    if all(chosen.available(data) for data in pair):
        return chosen
    return metric(task, PRIMARY[task])


def _require_columns(frame: pd.DataFrame, declared: Sequence[str], rows: int) -> None:
    missing = [column for column in declared if column not in frame.columns]
    if missing:
        raise InvalidInputError(f"no column {missing[0]!r} to slice by")
    if len(frame) != rows:
        raise InvalidInputError(f"{len(frame)} rows of features for {rows} labels")


@dataclass(frozen=True)
class _SliceJudge:
    """What every slice is judged with: the metric, the rule, the shared resamples."""

    main: Metric
    rule: MetricThreshold
    resamples: Resamples
    min_rows: int
    overall: float
    """The candidate's metric on every row (for the slice-vs-overall gap)."""

    @classmethod
    def build(cls, main: Metric, pair: list[Labelled], min_rows: int, max_relative_drop: float,
              seed: int) -> _SliceJudge:
        resamples = Resamples(seed=seed)
        resamples.weights(min(pair[0].rows, resamples.max_rows))  # drawn once for all
        rule = MetricThreshold(greater_is_better=main.greater_is_better,
                               max_relative_drop=max_relative_drop)
        overall = main.value(pair[0]) if pair[0].rows else math.nan
        return cls(main, rule, resamples, min_rows, overall)

    def check(self, piece: Slice, pair: list[Labelled]) -> Check:
        candidate, baseline = (data.take(piece.rows) for data in pair)
        value, reference = self.main.value(candidate), self.main.value(baseline)
        name = f"slice.{piece.name}.{self.main.name}"
        detail = {"slice": piece.name, "source": piece.source, "metric": self.main.name,
                  "rows": len(piece.rows), "share": len(piece.rows) / max(pair[0].rows, 1),
                  "gap_to_overall": _finite(value - self.overall)}
        if len(piece.rows) < self.min_rows or not math.isfinite(value + reference):
            why = (f"fewer than {self.min_rows} rows" if len(piece.rows) < self.min_rows
                   else "not measurable")
            return Check(name, Kind.SLICE, _finite(value), _finite(reference),
                         f"reported only: {why}", Verdict.REPORTED, detail)
        interval = difference_interval(self.main, candidate, baseline, value - reference,
                                       self.resamples)
        judged = judge(self.rule, value, reference, interval)
        return Check(name, Kind.SLICE, value, reference, judged.condition, judged.verdict,
                     detail | {"difference": value - reference, **interval.to_detail()})


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


# Declared slices --------------------------------------------------------------------------

def declared_slices(frame: pd.DataFrame, column: str) -> list[Slice]:
    """Per value of a categorical column, per quartile of a numeric one; missing values
    are a slice of their own."""
    values = frame[column]
    missing = values.isna().to_numpy()
    if _is_numeric(values) and values.nunique() > CATEGORICAL_MAX_VALUES:
        slices = _quartiles(column, values.to_numpy(dtype=np.float64), missing)
    else:
        slices = _categories(column, values)
    if missing.any():
        slices.append(Slice(f"{column}=<missing>", np.flatnonzero(missing), "declared"))
    return slices


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _quartiles(column: str, values: np.ndarray, missing: np.ndarray) -> list[Slice]:
    edges = np.unique(np.nanquantile(values, [0.25, 0.5, 0.75]))
    bins = np.searchsorted(edges, values, side="left")
    names = [f"{column}<={_number(edges[0])}",
             *(f"{_number(low)}<{column}<={_number(high)}"
               for low, high in itertools.pairwise(edges)),
             f"{column}>{_number(edges[-1])}"]
    return [Slice(label, np.flatnonzero((bins == b) & ~missing), "declared")
            for b, label in enumerate(names)]


def _categories(column: str, values: pd.Series) -> list[Slice]:
    codes, uniques = pd.factorize(values)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    chosen = np.argsort(-counts, kind="stable")[:MAX_CATEGORIES]
    return [Slice(f"{column}={uniques[code]}", np.flatnonzero(codes == code), "declared")
            for code in chosen]


def _number(value: float) -> str:
    return f"{value:.4g}"


# Found slices -----------------------------------------------------------------------------

def _loss_difference(pair: list[Labelled]) -> np.ndarray:
    """Per-row loss, candidate minus baseline, both measured the same way."""
    probabilistic = all(data.probabilities is not None for data in pair)
    return row_loss(pair[0], probabilistic) - row_loss(pair[1], probabilistic)


def found_slices(frame: pd.DataFrame, difference: np.ndarray, min_rows: int = MIN_SLICE_ROWS,
                 seed: int = 0) -> list[Slice]:
    """The largest regions of a shallow tree on the loss difference where the candidate is
    worse on average (a node below the root whose mean difference is above 0, and none of
    its ancestors' is), each named by its path from the root."""
    design, names, indicators = _design(frame)
    leaf_rows = max(min_rows, math.ceil(MIN_LEAF_SHARE * len(frame)))
    if not names or len(frame) < 2 * leaf_rows:
        return []
    tree = DecisionTreeRegressor(max_depth=TREE_DEPTH, min_samples_leaf=leaf_rows,
                                 random_state=seed).fit(design, difference)
    regions = _worse_regions(tree, names, indicators)
    members = tree.decision_path(design).tocsc()
    return [Slice(name, np.sort(members[:, node].indices), "found")
            for node, name in regions.items()]


def _design(frame: pd.DataFrame) -> tuple[np.ndarray, list[str], set[str]]:
    """Numeric columns as they are (missing values at the median), the others as one
    indicator per frequent value, named `column=value` (the third item names those)."""
    columns, names, indicators = [], [], set()
    for column in frame.columns:
        values = frame[column]
        if _is_numeric(values):
            columns.append(_filled(values))
            names.append(str(column))
        elif _is_categorical(values):
            for category in values.value_counts().index[:MAX_CATEGORIES]:
                columns.append((values == category).to_numpy(dtype=np.float64))
                names.append(f"{column}={category}")
                indicators.add(names[-1])
    design = np.column_stack(columns) if columns else np.empty((len(frame), 0))
    return design, names, indicators


def _filled(values: pd.Series) -> np.ndarray:
    numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
    known = ~np.isnan(numbers)
    return np.where(known, numbers, np.median(numbers[known]) if known.any() else 0.0)


def _is_categorical(values: pd.Series) -> bool:
    return (pd.api.types.is_bool_dtype(values) or values.dtype == object
            or isinstance(values.dtype, pd.CategoricalDtype | pd.StringDtype))


_Bounds = dict[str, tuple[float, float]]
"""(low, high] per feature on the path to a node."""


def _worse_regions(tree: DecisionTreeRegressor, names: list[str],
                   indicators: set[str]) -> dict[int, str]:
    """Nodes where the candidate is worse on average, the first met on each path from the
    root, and their conditions, one per feature (`2<x<=5`, `colour!=red`)."""
    structure, regions = tree.tree_, {}
    stack: list[tuple[int, _Bounds]] = [(0, {})]
    while stack:
        node, bounds = stack.pop()
        if node and structure.value[node, 0, 0] > 0:
            regions[node] = "&".join(_condition(name, *b, name in indicators)
                                     for name, b in bounds.items())
        elif structure.children_left[node] >= 0:
            stack += _children(structure, node, bounds, names)
    return regions


def _children(structure: Any, node: int, bounds: _Bounds,
              names: list[str]) -> list[tuple[int, _Bounds]]:
    """A split node's (right, left) children with their bounds narrowed by the split."""
    name, cut = names[structure.feature[node]], float(structure.threshold[node])
    low, high = bounds.get(name, (-math.inf, math.inf))
    return [(structure.children_right[node], bounds | {name: (max(low, cut), high)}),
            (structure.children_left[node], bounds | {name: (low, min(high, cut))})]


def _condition(name: str, low: float, high: float, indicator: bool) -> str:
    """`low < name <= high` in words; an indicator `column=value` reads as = or !=."""
    if indicator:
        return name if low > -math.inf else name.replace("=", "!=", 1)
    if low == -math.inf:
        return f"{name}<={_number(high)}"
    if high == math.inf:
        return f"{name}>{_number(low)}"
    return f"{_number(low)}<{name}<={_number(high)}"


def _new(found: list[Slice], declared: list[Slice]) -> list[Slice]:
    """Found slices not already declared under the same name."""
    known = {s.name for s in declared}
    return [s for s in found if s.name not in known]
