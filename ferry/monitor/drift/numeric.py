"""A numeric reference as a distribution function, and a window reduced to counts against it.

The reference's CDF is piecewise linear between its breakpoints (the profile's quantiles, and
the PSI edges), with jumps where values repeat: for an exact profile every stored value is a
jump and the CDF is flat in between, which is the empirical CDF the raw values would give.

A window is looked up once among the breakpoints (`FastSearch`); KS, Wasserstein, PSI and the
binned Jensen-Shannon all read the resulting counts, never the sorted window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ferry.monitor.drift.search import FastSearch, Scratch
from ferry.monitor.profile import ColumnValues, NumericProfile, as_floats

RAW_ROWS = 10_000
"""Windows up to this size keep their values, for scipy's exact KS (its own switch) and an
exact Wasserstein on exact profiles."""
CHUNK = 1 << 15
"""Values counted per pass; see `_tally`."""


@dataclass(frozen=True)
class NumericReference:
    """A fitted numeric column: breakpoints, the CDF just below and at each, and lookups."""

    column: NumericProfile
    edges: np.ndarray
    before: np.ndarray
    at: np.ndarray
    areas: np.ndarray
    search: FastSearch
    psi_bins: np.ndarray

    @classmethod
    def from_profile(cls, column: NumericProfile) -> NumericReference:
        points, probabilities = _cdf_points(column)
        edges = np.unique(np.concatenate([points, column.psi_edges]))
        before, at = _cdf_limits(points, probabilities, edges)
        psi_edge_index = np.searchsorted(edges, column.psi_edges)
        psi_bins = np.searchsorted(psi_edge_index + 1, np.arange(edges.size + 1), side="right")
        return cls(column, edges, before, at, _areas(column, edges, at),
                   FastSearch.over(edges), psi_bins)

    @property
    def rows(self) -> int:
        return self.column.count

    def window(self, values: ColumnValues) -> NumericWindow:
        numbers = as_floats(values)
        counts, sums, equal = _tally(self, numbers)
        rows = int(counts.sum())
        lower = np.concatenate([self.edges[:1], self.edges]) - self.column.mean
        raw = numbers[np.isfinite(numbers)] if rows <= RAW_ROWS else None
        return NumericWindow(self, rows, numbers.size - rows, counts, sums - counts * lower,
                             equal, raw)


@dataclass(frozen=True)
class NumericWindow:
    """Current values counted among the reference breakpoints.

    Bucket k (0..len(edges)) holds the values in [edges[k-1], edges[k]); bucket 0 those below
    the reference minimum. `offsets[k]` sums each value's distance above the bucket's lower
    edge (bucket 0: above the minimum, so negative); Wasserstein integrates the CDF with it.
    `at_edges[k]` counts values equal to edges[k], the steps KS must see. `values` are kept
    only for windows of at most `RAW_ROWS`."""

    reference: NumericReference
    rows: int
    missing: int
    counts: np.ndarray
    offsets: np.ndarray
    at_edges: np.ndarray
    values: np.ndarray | None

    def psi_proportions(self) -> tuple[np.ndarray, np.ndarray]:
        """Reference and current shares of the profile's PSI bins."""
        expected = np.asarray(self.reference.column.psi_reference)
        counts = np.bincount(self.reference.psi_bins, weights=self.counts,
                             minlength=expected.size)
        return expected, counts / max(self.rows, 1)


def _tally(reference: NumericReference, numbers: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bucket: count, sum of values less the reference mean, and values equal to the
    bucket's lower edge.

    Done `CHUNK` values at a time in reused buffers, so every temporary stays in cache and no
    page is faulted in twice: that is what makes a million values cost milliseconds. Sums are
    taken around the mean so that their rounding, 1e-16 of the values' spread per value, stays
    far below a bucket's width times its count, which is what Wasserstein reads."""
    size = reference.edges.size + 1
    counts, sums, equal = np.zeros(size, np.int64), np.zeros(size), np.zeros(size, np.int64)
    scratch = Scratch.of(min(CHUNK, numbers.size))
    for start in range(0, numbers.size, CHUNK):
        chunk = _finite(numbers[start:start + CHUNK], scratch)
        position = reference.search(chunk, scratch)
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


def _areas(column: NumericProfile, edges: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The reference CDF's integral between consecutive edges: flat steps for an exact profile,
    the stored areas for a sketch (whose points are then exactly the edges; repeated points
    span no width and no area)."""
    if column.exact:
        return at[:-1] * np.diff(edges)
    points = np.asarray(column.points)
    return np.asarray(column.areas)[np.diff(points) > 0]


def _cdf_points(column: NumericProfile) -> tuple[np.ndarray, np.ndarray]:
    """(x, F(x)) points the CDF interpolates. An exact profile lists each value twice, at the
    CDF before and after its step, so interpolation between values is flat."""
    points = np.asarray(column.points)
    if not column.exact:
        return points, np.linspace(0.0, 1.0, points.size)
    steps = np.arange(points.size + 1) / points.size
    return np.repeat(points, 2), np.column_stack([steps[:-1], steps[1:]]).ravel()


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
