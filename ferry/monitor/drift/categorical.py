"""A categorical reference as bucket counts, and a window counted into the same buckets.

Buckets: one per profiled category, then `other` (the reference's rarer categories, and any
current value outside the top ones when the reference had such a tail), then `unseen` (values
the reference never had, when it had no tail). Tests run over the buckets either side has,
which is Evidently's "union of values" when the profile kept every category.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ferry.monitor.profile import (
    CategoricalProfile,
    Category,
    ColumnValues,
    as_series,
    category_key,
)


@dataclass(frozen=True)
class CategoricalReference:
    column: CategoricalProfile
    index: dict[Category, int]
    expected: np.ndarray

    @classmethod
    def from_profile(cls, column: CategoricalProfile) -> CategoricalReference:
        index = {value: i for i, value in enumerate(column.values)}
        expected = np.array([*column.counts, column.other, 0], dtype=np.int64)
        return cls(column, index, expected)

    @property
    def rows(self) -> int:
        return self.column.count

    @property
    def unknown_bucket(self) -> int:
        """Where current values outside the profiled categories go."""
        return len(self.index) + (0 if self.column.other else 1)

    def window(self, values: ColumnValues) -> CategoricalWindow:
        uniques, per_unique, missing = _distinct_counts(values)
        buckets = np.array([self._bucket(category_key(value)) for value in uniques], dtype=np.intp)
        known = buckets >= 0
        counts = np.bincount(buckets[known], weights=per_unique[known],
                             minlength=self.expected.size).astype(np.int64)
        unseen = int(np.count_nonzero(known & (buckets == len(self.index) + 1)))
        return CategoricalWindow(self, counts, missing + int(per_unique[~known].sum()), unseen)

    def _bucket(self, key: Category | None) -> int:
        if key is None:
            return -1
        return self.index.get(key, self.unknown_bucket)


@dataclass(frozen=True)
class CategoricalWindow:
    """Current counts per bucket; `unseen_values` counts distinct values new to the reference."""

    reference: CategoricalReference
    counts: np.ndarray
    missing: int
    unseen_values: int

    @property
    def rows(self) -> int:
        return int(self.counts.sum())

    def present(self) -> np.ndarray:
        """Buckets holding a value on either side (Evidently's union of keys)."""
        return (self.reference.expected > 0) | (self.counts > 0)

    def proportions(self) -> tuple[np.ndarray, np.ndarray]:
        """Reference and current shares of the present buckets."""
        keep = self.present()
        expected = self.reference.expected[keep] / max(self.reference.rows, 1)
        return expected, self.counts[keep] / max(self.rows, 1)

    def psi_proportions(self) -> tuple[np.ndarray, np.ndarray]:
        return self.proportions()


def _distinct_counts(values: ColumnValues) -> tuple[list[object], np.ndarray, int]:
    """Distinct values with their counts, and the null count, without sorting the window."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        table = pc.value_counts(values).flatten()
        uniques = table[0].to_pylist()
        counts = np.asarray(table[1].to_numpy(zero_copy_only=False), dtype=np.int64)
        return uniques, counts, 0
    # An object ndarray is hashed as it is: wrapping it in a Series would first convert it to
    # pandas' Arrow string dtype, which costs twice the counting.
    array = values if isinstance(values, np.ndarray | pd.Series) else as_series(values)
    codes, uniques = pd.factorize(array, use_na_sentinel=True)
    per_code = np.bincount(codes + 1, minlength=len(uniques) + 1)
    return list(uniques), per_code[1:], int(per_code[0])
