"""The gap between the reference CDF and the window's, F_ref - F_cur, exactly, inside the
intervals between lookup edges where bucket counts cannot settle a test.

Counts give both CDFs at every edge, and the integral of each over every interval; what they
cannot give is how the gap moves inside an interval. Both CDFs only rise, so inside
[edges[i], edges[i+1]) the gap stays between F_ref(edges[i]) - F_cur(edges[i+1]-) and
F_ref(edges[i+1]-) - F_cur(edges[i]) (`gap_bounds`). Where those bounds settle the question
(the gap keeps one sign, for Wasserstein; it cannot exceed the largest gap at an edge, for KS)
the counts are enough. In the other intervals, a small share of them when the distributions
are alike and fewer when they differ, `steps_inside` lays the gap out step by step from the
reference's distinct values there (`Flats`: F_ref is flat between two of them) and the
window's values there, sorted: between two consecutive such points both CDFs are flat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ferry.monitor.drift.numeric import CHUNK, ExactValues, NumericWindow


def gap_bounds(window: NumericWindow) -> tuple[np.ndarray, np.ndarray]:
    """The lowest and highest F_ref - F_cur can be inside each inner interval
    [edges[i], edges[i+1]), i = 0 .. len(edges) - 2."""
    reference, rows = window.reference, window.rows
    below = np.cumsum(window.counts)  # below[k]: window values under edges[k]
    current_start = (below[:-2] + window.at_edges[:-1]) / rows
    current_end = below[1:-1] / rows
    return reference.at[:-1] - current_end, reference.before[1:] - current_start


@dataclass(frozen=True)
class Flats:
    """Where the reference CDF is flat inside the chosen intervals: from each interval's lower
    edge and each distinct value inside to the next such point or the interval's upper edge,
    at `height`. `seen` counts the window's values below each start, and `first` is where the
    start would go among the sorted window values inside."""

    start: np.ndarray
    end: np.ndarray
    height: np.ndarray
    seen: np.ndarray
    first: np.ndarray

    @classmethod
    def of(cls, window: NumericWindow, exact: ExactValues, intervals: np.ndarray,
           current: np.ndarray) -> Flats:
        edges = window.reference.edges
        start = np.sort(np.concatenate([edges[intervals], exact.inside(intervals)]))
        interval = np.searchsorted(edges, start, side="right") - 1
        end = np.minimum(np.append(start[1:], np.inf), edges[interval + 1])
        first = np.searchsorted(current, start, side="left")
        seen = (np.cumsum(window.counts)[interval] + first
                - np.searchsorted(current, edges[interval], side="left"))
        return cls(start, end, exact.cdf(start), seen, first)


def steps_inside(window: NumericWindow, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F_ref - F_cur on each step inside the chosen inner intervals, and each step's width
    (0 for all but the last of tied values, whose gap is then not one the CDFs take). A step
    starts where the reference CDF turns flat (`Flats`) or at a window value, and ends at the
    next of either or at its flat's end. Needs an exact profile and the window's
    `positions`; costs a sort of the window's values inside, not of the window."""
    exact, positions = window.reference.exact, window.positions
    if exact is None or positions is None:
        raise ValueError("steps_inside needs an exact profile and a window counted against it")
    intervals = np.flatnonzero(chosen)
    if intervals.size == 0:  # spare the pass over the window: shifted columns mostly
        return np.empty(0), np.empty(0)
    current = np.sort(_current_inside(window, positions, intervals))
    flats = Flats.of(window, exact, intervals, current)
    lead = np.minimum(np.append(current, np.inf)[flats.first], flats.end) - flats.start
    flat = np.searchsorted(flats.start, current, side="right") - 1
    ends = np.minimum(np.append(current[1:], np.inf), flats.end[flat])
    seen = flats.seen[flat] + np.arange(1, current.size + 1) - flats.first[flat]
    gaps = np.concatenate([flats.height - flats.seen / window.rows,
                           flats.height[flat] - seen / window.rows])
    return gaps, np.concatenate([lead, ends - current])


def _current_inside(window: NumericWindow, positions: np.ndarray,
                    intervals: np.ndarray) -> np.ndarray:
    """The window's values in the given inner intervals (interval i is bucket i + 1), picked
    `CHUNK` values at a time so that no temporary the size of the window is made (numpy would
    widen all the positions to 64-bit indices at once)."""
    wanted = np.zeros(window.counts.size, dtype=bool)
    wanted[intervals + 1] = True
    values = window.finite()
    return np.concatenate([np.compress(np.take(wanted, positions[start:start + CHUNK]),
                                       values[start:start + CHUNK])
                           for start in range(0, values.size, CHUNK)])
