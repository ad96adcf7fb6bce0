"""A numeric reference as a distribution function, and a window reduced to counts against it.

The reference's CDF is known at its breakpoints (the edges a window is counted among): for a
sketch, its quantiles and the PSI edges, with the CDF a straight line in between; for an exact
profile, its distinct values (up to `LOOKUP_EDGES` of them, evenly spaced by count) and the
PSI edges, with the exact empirical CDF kept beside them (`ExactValues`) for what lies between.

A window is looked up once among the breakpoints (`FastSearch`); KS, Wasserstein, PSI and the
binned Jensen-Shannon all read the resulting counts, never the sorted window. Against an exact
profile each value's bucket is kept too, so the few intervals where the counts cannot settle a
test (`ferry.monitor.drift.steps`) can be integrated exactly from the values falling in them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ferry.monitor.drift.search import FastSearch, Scratch
from ferry.monitor.profile import ColumnValues, NumericProfile, as_floats

RAW_ROWS = 10_000
"""Windows up to this size keep their values, for scipy's exact KS p-value (its own switch)."""
CHUNK = 1 << 15
"""Values counted per pass; see `_tally`."""
LOOKUP_EDGES = 4096
"""An exact profile with more distinct values is looked up among this many of them. The search
costs more per value as the edges outgrow the cache (a million values among 100,000 edges
took 4.5 times as long as among 1,000, among 4,096 about 1.15 times), while the coarser the
edges, the more of the window falls in intervals the counts cannot settle and that
`ferry.monitor.drift.steps` sorts (against 100,000 reference values and a similar window,
54 % of it with 1,024 edges, 18 % with 4,096). At or below it every value is an edge, so KS
at Evidently's 1000 rows reads counts alone."""


@dataclass(frozen=True)
class ExactValues:
    """An exact profile's empirical distribution: sorted distinct `values`, `below[j]` the
    number of reference values under values[j] (`below[-1]` is them all), and `first[i]` the
    first value at or above edges[i]."""

    values: np.ndarray
    below: np.ndarray
    first: np.ndarray

    def cdf(self, points: np.ndarray) -> np.ndarray:
        """The reference CDF at each point, values equal to it included."""
        return self.below[np.searchsorted(self.values, points, side="right")] / self.below[-1]

    def inside(self, intervals: np.ndarray) -> np.ndarray:
        """The distinct values in [edges[i], edges[i+1]) for each interval i, in order."""
        start, stop = self.first[intervals], self.first[intervals + 1]
        lengths = stop - start
        shift = np.repeat(start - (np.cumsum(lengths) - lengths), lengths)
        return self.values[np.arange(int(lengths.sum())) + shift]


@dataclass(frozen=True)
class NumericReference:
    """A fitted numeric column: breakpoints, the CDF just below and at each, the CDF's integral
    between them, lookups, and for an exact profile its whole empirical distribution."""

    column: NumericProfile
    edges: np.ndarray
    before: np.ndarray
    at: np.ndarray
    areas: np.ndarray
    search: FastSearch
    psi_bins: np.ndarray
    exact: ExactValues | None

    @classmethod
    def from_profile(cls, column: NumericProfile) -> NumericReference:
        if column.exact:
            return cls._from_values(column)
        points = np.asarray(column.points)
        edges = np.unique(np.concatenate([points, column.psi_edges]))
        before, at = _cdf_limits(points, np.linspace(0.0, 1.0, points.size), edges)
        areas = np.asarray(column.areas)[np.diff(points) > 0]
        return cls(column, edges, before, at, areas, FastSearch.over(edges),
                   _psi_bins(column, edges), None)

    @classmethod
    def _from_values(cls, column: NumericProfile) -> NumericReference:
        """Edges from the values themselves; the CDF at each read off the counts, exactly."""
        values = np.fromiter(column.points, np.float64, len(column.points))
        counts = np.fromiter(column.counts, np.int64, len(column.counts))
        below = np.concatenate([[0], np.cumsum(counts)])
        edges = np.unique(np.concatenate([_lookup_values(values, below), column.psi_edges]))
        first = np.searchsorted(values, edges, side="left")
        exact = ExactValues(values, below, first)
        at = exact.cdf(edges)
        return cls(column, edges, below[first] / below[-1], at,
                   _exact_areas(exact, edges), FastSearch.over(edges),
                   _psi_bins(column, edges), exact)

    @property
    def rows(self) -> int:
        return self.column.count

    def window(self, values: ColumnValues) -> NumericWindow:
        numbers = as_floats(values)
        positions = (None if self.exact is None
                     else np.empty(numbers.size, np.min_scalar_type(self.edges.size)))
        counts, sums, equal = _tally(self, numbers, positions)
        rows = int(counts.sum())
        lower = np.concatenate([self.edges[:1], self.edges]) - self.column.mean
        raw = numbers[np.isfinite(numbers)] if rows <= RAW_ROWS else None
        return NumericWindow(self, rows, numbers.size - rows, counts, sums - counts * lower,
                             equal, raw, numbers, None if positions is None
                             else positions[:rows])


@dataclass(frozen=True)
class NumericWindow:
    """Current values counted among the reference breakpoints.

    Bucket k (0..len(edges)) holds the values in [edges[k-1], edges[k]); bucket 0 those below
    the reference minimum. `offsets[k]` sums each value's distance above the bucket's lower
    edge (bucket 0: above the minimum, so negative); Wasserstein integrates the CDF with it.
    `at_edges[k]` counts values equal to edges[k], the steps KS must see. `values` are kept
    only for windows of at most `RAW_ROWS`. `numbers` is the window as given, missing values
    included; against an exact profile `positions[j]` is the bucket of its j-th finite value
    (in the smallest integer type that holds them: 2 bytes a value with `LOOKUP_EDGES`)."""

    reference: NumericReference
    rows: int
    missing: int
    counts: np.ndarray
    offsets: np.ndarray
    at_edges: np.ndarray
    values: np.ndarray | None
    numbers: np.ndarray
    positions: np.ndarray | None

    def finite(self) -> np.ndarray:
        """The window's non-missing values, in the order `positions` follows."""
        if self.rows == self.numbers.size:
            return self.numbers
        return self.numbers[np.isfinite(self.numbers)]

    def psi_proportions(self) -> tuple[np.ndarray, np.ndarray]:
        """Reference and current shares of the profile's PSI bins."""
        expected = np.asarray(self.reference.column.psi_reference)
        counts = np.bincount(self.reference.psi_bins, weights=self.counts,
                             minlength=expected.size)
        return expected, counts / max(self.rows, 1)


def _lookup_values(values: np.ndarray, below: np.ndarray) -> np.ndarray:
    """All the values, or `LOOKUP_EDGES` of them at evenly spaced shares of the reference
    (the first and last included, as the tails start there)."""
    if values.size <= LOOKUP_EDGES:
        return values
    shares = np.linspace(0, below[-1], LOOKUP_EDGES)
    return values[np.unique(np.searchsorted(below[1:], shares, side="left"))]


def _exact_areas(exact: ExactValues, edges: np.ndarray) -> np.ndarray:
    """The empirical CDF's integral over each [edges[i], edges[i+1]), summed flat step by flat
    step within each interval (not differences of a running integral, whose rounding grows
    with the range). The steps start at the values and at the edges that are not values (PSI
    deciles between two values)."""
    values, below = exact.values, exact.below
    missing = edges[values[np.minimum(exact.first, values.size - 1)] != edges]
    place = np.searchsorted(values, missing)
    steps = np.insert(values, place, missing)
    heights = np.insert(below[1:], place, below[place]) / below[-1]
    starts = np.searchsorted(steps, edges)
    return np.add.reduceat(heights[:-1] * np.diff(steps), starts[:-1])


def _psi_bins(column: NumericProfile, edges: np.ndarray) -> np.ndarray:
    """For each bucket among `edges`, the PSI bin it falls in."""
    psi_edge_index = np.searchsorted(edges, column.psi_edges)
    return np.searchsorted(psi_edge_index + 1, np.arange(edges.size + 1), side="right")


def _tally(reference: NumericReference, numbers: np.ndarray, positions: np.ndarray | None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bucket: count, sum of values less the reference mean, and values equal to the
    bucket's lower edge; each finite value's bucket into `positions` when given.

    Done `CHUNK` values at a time in reused buffers, so every temporary stays in cache and no
    page is faulted in twice: that is what makes a million values cost milliseconds. Sums are
    taken around the mean so that their rounding, 1e-16 of the values' spread per value, stays
    far below a bucket's width times its count, which is what Wasserstein reads."""
    size = reference.edges.size + 1
    counts, sums, equal = np.zeros(size, np.int64), np.zeros(size), np.zeros(size, np.int64)
    scratch, done = Scratch.of(min(CHUNK, numbers.size)), 0
    for start in range(0, numbers.size, CHUNK):
        chunk = _finite(numbers[start:start + CHUNK], scratch)
        position = reference.search(chunk, scratch)
        if positions is not None:
            positions[done:done + chunk.size] = position
            done += chunk.size
        counts += np.bincount(position, minlength=size)
        centred = np.subtract(chunk, reference.column.mean, out=scratch.floats[:chunk.size])
        sums += np.bincount(position, weights=centred, minlength=size)
        equal += _on_lower_edge(reference.edges, chunk, position, size)
    return counts, sums, equal[1:]


def _finite(chunk: np.ndarray, scratch: Scratch) -> np.ndarray:
    finite = np.isfinite(chunk, out=scratch.flags[:chunk.size])
    return chunk if finite.all() else chunk[finite]


def _on_lower_edge(edges: np.ndarray, chunk: np.ndarray, position: np.ndarray,
                   size: int) -> np.ndarray:
    """Per bucket, how many values sit exactly on its lower edge (bucket 0 has none)."""
    lower = np.take(edges, np.maximum(position - 1, 0))
    return np.bincount(position[chunk == lower], minlength=size)


def _cdf_limits(points: np.ndarray, probabilities: np.ndarray, edges: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """The CDF just below and at each edge: the first and last probability listed at that
    point, or the linear interpolation for an edge between points."""
    first = np.searchsorted(points, edges, side="left")
    last = np.searchsorted(points, edges, side="right")
    listed = last > first
    low = np.clip(first - 1, 0, points.size - 1)
    high = np.clip(first, 0, points.size - 1)
    width = np.where(high > low, points[high] - points[low], 1.0)
    inside = probabilities[low] + (edges - points[low]) / width * (
        probabilities[high] - probabilities[low])
    before = np.where(listed, probabilities[np.minimum(first, points.size - 1)], inside)
    at = np.where(listed, probabilities[np.maximum(last - 1, 0)], inside)
    return before, at
