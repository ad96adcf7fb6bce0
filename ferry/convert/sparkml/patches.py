"""What ferry changes in onnxmltools' Spark ML tree converters while they run.

- Categorical splits. Spark sends a row left when a categorical feature (a StringIndexer's
  index, say, which Spark marks nominal) is one of the split's categories; onnxmltools
  1.16 reads only the first category and compares `x <= category`, which sends other
  categories the wrong way. Its tree code already turns a split whose value is a list of
  categories into a chain of `BRANCH_EQ` nodes: the tree reader is wrapped so that
  categorical splits give that list.
- Tidy. onnxmltools saves every tree to a folder under `tempfile.tempdir` (or a Spark temp
  folder) to read its nodes back, and never removes it: in local mode ferry saves it to a
  temporary folder of its own, collects the nodes and removes the folder.
- Quiet. The linear classifier's converter prints its attributes to stdout: captured.

The wrappers replace module attributes for the conversion's duration, so conversions take
a lock.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

TREE_MODULES = ("decision_tree_classifier", "decision_tree_regressor",
                "random_forest_classifier", "random_forest_regressor")
"""onnxmltools' Spark ML converters that read trees (GBTs go through the regressor's)."""
_PACKAGE = "onnxmltools.convert.sparkml.operator_converters"
_READER = "sparkml_tree_dataset_to_sklearn"
_SAVER = "save_read_sparkml_model_data"
_lock = threading.Lock()


@contextlib.contextmanager
def conversion() -> Iterator[None]:
    """onnxmltools' Spark ML conversion with the changes above, one at a time."""
    with _lock, _quiet(), _wrapped(_READER, _with_categories), _wrapped(_SAVER, _saved_here):
        yield


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with contextlib.redirect_stdout(io.StringIO()):
        yield


@contextlib.contextmanager
def _wrapped(name: str, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]
             ) -> Iterator[None]:
    """Each tree module's function `name` replaced by `wrap(function)`, then restored."""
    modules = tree_modules()
    originals = [getattr(module, name) for module in modules]
    for module, original in zip(modules, originals, strict=True):
        setattr(module, name, wrap(original))
    try:
        yield
    finally:
        for module, original in zip(modules, originals, strict=True):
            setattr(module, name, original)


def _saved_here(saver: Callable[..., Any]) -> Callable[..., Any]:
    """`saver` (save a tree, read its nodes back as a Spark DataFrame), in a temporary
    folder removed once the nodes are collected; as it is outside local mode, where the
    executors write the files somewhere else."""
    def save_read(spark: SparkSession, tree: Any) -> Any:
        if not str(spark.conf.get("spark.master", "")).startswith("local"):
            return saver(spark, tree)
        with tempfile.TemporaryDirectory(prefix="ferry-spark-tree-") as folder:
            path = Path(folder) / "tree"
            tree.write().overwrite().save(path.as_uri())
            return _Collected(spark.read.parquet((path / "data").as_uri()).toPandas())

    return save_read


def _with_categories(reader: Callable[..., Any]) -> Callable[..., Any]:
    """`reader`, giving each categorical split's left categories as its threshold."""
    def read(tree_frame: Any, is_classifier: bool) -> Any:
        nodes = tree_frame.toPandas()
        tree = reader(_Collected(nodes), is_classifier)
        ordered = nodes.sort_values("id")  # as `reader` orders them
        for position, split in enumerate(ordered["split"]):
            if _categorical(split):
                tree.threshold[position] = [float(c) for c in split["leftCategoriesOrThreshold"]]
        return tree

    return read


def _categorical(split: Any) -> bool:
    """Spark's split record: `numCategories` is -1 for a threshold (and at leaves)."""
    return split is not None and int(split["numCategories"]) >= 0


class _Collected:
    """A Spark DataFrame's rows already collected, for a reader that collects them."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def toPandas(self) -> pd.DataFrame:
        return self.frame

    def count(self) -> int:
        return len(self.frame)


def tree_modules() -> list[ModuleType]:
    """The onnxmltools modules whose tree reader `conversion()` wraps."""
    return [importlib.import_module(f"{_PACKAGE}.{name}") for name in TREE_MODULES]
