"""Perturbations for the robustness checks: a small change to one column's values.

A perturbation changes one column at a time, so a failure names the feature it came from
(Giskard's numerical detector works the same way). Two kinds, chosen by `invariant`:

Invariance tests (CheckList's INV, Giskard's defaults): the prediction should not change, and
the check fails when 5 % of the changed rows or more get another prediction.
    scale+1%, scale-1%   multiply by 1.01 / 0.99 (`PERTURBATION_FRACTION`)
    noise                add Gaussian noise at 0.01 x the column's standard deviation
Reported: the prediction may rightly change, so the share of rows that change is shown; the
check fails only when the model raises or outputs NaN, which a served model must not do.
    above-range, below-range   max + 10 % of the range / min - 10 % (`OUT_OF_RANGE_MARGIN`)
    missing          NaN, in columns whose data already holds missing values (a model need
                     not accept NaN where its input never has it; `Missing(always=True)`
                     tries every column)
    swap-category    another of the column's frequent values (`SwapCategory(invariant=True,
                     columns=(...))` for the columns that should not matter: CheckList's INV)
    unseen-category  a value the column never holds (`UNSEEN_CATEGORY`)

Numbers with `CATEGORICAL_MAX_UNIQUE` distinct values or fewer count as categories, as in the
drift profile: scaling a 0/1 flag by 1 % tests nothing. Integer columns stay integers (the
perturbed value is rounded), so a 1 % change that rounds away leaves those rows unchanged and
they are not counted.

A perturbation is any object with the four members of `Perturbation`; add one with
`perturbations=(*DEFAULT, MyPerturbation())`. Images (inputs of three or more dimensions) are
not perturbed yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from ferry.monitor.profile import CATEGORICAL_MAX_UNIQUE

PERTURBATION_FRACTION = 0.01
"""Giskard's `perturbation_fraction`: ±1 % scaling, noise at 1 % of the standard deviation."""
OUT_OF_RANGE_MARGIN = 0.10
"""How far outside the data's range the out-of-range values lie, as a share of the range."""
FREQUENT_CATEGORIES = 5
"""A category is swapped for one of the column's this many most frequent values."""
UNSEEN_CATEGORY = "__ferry_unseen__"
"""The value the unseen-category perturbation writes."""

Columns = tuple[str, ...] | None
"""The columns a perturbation is limited to; None: every column it fits."""


class Perturbation(Protocol):
    """One way of changing a column; `apply` keeps the index and the length."""

    @property
    def name(self) -> str: ...

    @property
    def invariant(self) -> bool:
        """True: the prediction must not change (gated); False: reported."""
        ...

    def applies_to(self, values: pd.Series) -> bool: ...

    def apply(self, values: pd.Series, rng: np.random.Generator) -> pd.Series: ...


@dataclass(frozen=True)
class Scale:
    """Multiply by `1 + fraction`."""

    fraction: float
    columns: Columns = None
    invariant: bool = True

    @property
    def name(self) -> str:
        return f"scale{self.fraction:+.0%}"

    def applies_to(self, values: pd.Series) -> bool:
        return _chosen(self.columns, values) and is_numeric(values)

    def apply(self, values: pd.Series, rng: np.random.Generator) -> pd.Series:
        return _like(values, values.astype(float) * (1 + self.fraction))


@dataclass(frozen=True)
class Noise:
    """Add Gaussian noise with `fraction` x the column's standard deviation."""

    fraction: float = PERTURBATION_FRACTION
    columns: Columns = None
    invariant: bool = True
    name: str = "noise"

    def applies_to(self, values: pd.Series) -> bool:
        return _chosen(self.columns, values) and is_numeric(values)

    def apply(self, values: pd.Series, rng: np.random.Generator) -> pd.Series:
        spread = self.fraction * float(values.std())
        return _like(values, values.astype(float) + rng.normal(0.0, spread, len(values)))


@dataclass(frozen=True)
class OutOfRange:
    """Every row set just past the column's largest (`above`) or smallest value."""

    above: bool = True
    margin: float = OUT_OF_RANGE_MARGIN
    columns: Columns = None
    invariant: bool = False

    @property
    def name(self) -> str:
        return "above-range" if self.above else "below-range"

    def applies_to(self, values: pd.Series) -> bool:
        return _chosen(self.columns, values) and is_numeric(values)

    def apply(self, values: pd.Series, rng: np.random.Generator) -> pd.Series:
        low, high = float(values.min()), float(values.max())
        step = self.margin * (high - low)
        value = high + step if self.above else low - step
        if pd.api.types.is_integer_dtype(values.dtype):
            value = np.ceil(value) if self.above else np.floor(value)
        return _like(values, pd.Series(value, index=values.index))


@dataclass(frozen=True)
class Missing:
    """Every row's value missing (NaN, the marker pandas and scikit-learn read as missing)."""

    always: bool = False
    """Also columns whose data holds no missing value."""
    columns: Columns = None
    invariant: bool = False
    name: str = "missing"

    def applies_to(self, values: pd.Series) -> bool:
        return _chosen(self.columns, values) and (self.always or bool(values.isna().any()))

    def apply(self, values: pd.Series, rng: np.random.Generator) -> pd.Series:
        return values.where(np.zeros(len(values), dtype=bool))


@dataclass(frozen=True)
class SwapCategory:
    """Each row's category swapped for another of the column's `top` most frequent ones."""

    top: int = FREQUENT_CATEGORIES
    columns: Columns = None
    invariant: bool = False
    name: str = "swap-category"

    def applies_to(self, values: pd.Series) -> bool:
        return (_chosen(self.columns, values) and is_categorical(values)
                and values.nunique() >= 2)

    def apply(self, values: pd.Series, rng: np.random.Generator) -> pd.Series:
        frequent = values.value_counts().index.to_numpy()[: self.top]
        own = pd.Index(frequent).get_indexer(values)
        known = own >= 0
        pick = rng.integers(0, np.where(known, len(frequent) - 1, len(frequent)))
        pick = pick + (known & (pick >= own))
        return pd.Series(frequent[pick], index=values.index).astype(values.dtype)


@dataclass(frozen=True)
class UnseenCategory:
    """Every row set to a category the column never holds."""

    value: str = UNSEEN_CATEGORY
    columns: Columns = None
    invariant: bool = False
    name: str = "unseen-category"

    def applies_to(self, values: pd.Series) -> bool:
        return _chosen(self.columns, values) and is_text(values)

    def apply(self, values: pd.Series, rng: np.random.Generator) -> pd.Series:
        if isinstance(values.dtype, pd.CategoricalDtype):
            values = values.cat.add_categories([self.value])
        return pd.Series(self.value, index=values.index, dtype=values.dtype)


DEFAULT: tuple[Perturbation, ...] = (
    Scale(PERTURBATION_FRACTION),
    Scale(-PERTURBATION_FRACTION),
    Noise(),
    OutOfRange(above=True),
    OutOfRange(above=False),
    Missing(),
    SwapCategory(),
    UnseenCategory(),
)
"""What `ferry test` runs, in this order."""


def is_numeric(values: pd.Series) -> bool:
    """Numbers (not bools) with more than `CATEGORICAL_MAX_UNIQUE` distinct values."""
    return (pd.api.types.is_numeric_dtype(values.dtype)
            and not pd.api.types.is_bool_dtype(values.dtype)
            and values.nunique() > CATEGORICAL_MAX_UNIQUE)


def is_text(values: pd.Series) -> bool:
    """Strings, pandas categories or Python objects."""
    return (isinstance(values.dtype, pd.CategoricalDtype) or values.dtype == object
            or pd.api.types.is_string_dtype(values.dtype))


def is_categorical(values: pd.Series) -> bool:
    """Text, bools, and numbers with few distinct values."""
    return (is_text(values) or pd.api.types.is_bool_dtype(values.dtype)
            or (pd.api.types.is_numeric_dtype(values.dtype) and not is_numeric(values)))


def _chosen(columns: Columns, values: pd.Series) -> bool:
    return columns is None or values.name in columns


def _like(values: pd.Series, changed: pd.Series) -> pd.Series:
    """`changed` in `values`' dtype: integers are rounded, so an integer column stays one."""
    if pd.api.types.is_integer_dtype(values.dtype):
        changed = changed.round()
    return changed.astype(values.dtype)
