"""The original Spark ML pipeline: saved as the zip of the folder Spark writes (JSON
metadata and Parquet data, no pickle), loaded back with `PipelineModel.load`, and run with
Spark's own `transform` on pandas rows, in their order.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ferry.errors import CorruptArtifactError, InvalidInputError, SampleMismatchError
from ferry.sparksession import active_or_local

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel

FORMAT = "sparkml-zip"
"""`SavedOriginal.format`: a zip of the folder `PipelineModel.write().save()` writes."""
ROW = "__ferry_row__"
"""A column added to the rows sent to Spark, to give the answers back in the rows' order."""
MODEL_FOLDER = "model"


def save_zip(model: PipelineModel) -> bytes:
    """The pipeline as Spark saves it, zipped (paths relative to the saved folder)."""
    active_or_local()
    with tempfile.TemporaryDirectory(prefix="ferry-spark-") as folder:
        path = Path(folder) / MODEL_FOLDER
        model.write().overwrite().save(path.as_uri())
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                archive.write(file, file.relative_to(path).as_posix())
        return buffer.getvalue()


def load_zip(data: bytes) -> PipelineModel:
    """The pipeline back from `save_zip`'s bytes (read into Spark, then the files removed)."""
    from pyspark.ml import PipelineModel

    active_or_local()
    with tempfile.TemporaryDirectory(prefix="ferry-spark-") as folder:
        path = Path(folder) / MODEL_FOLDER
        _extract(data, path)
        return PipelineModel.load(path.as_uri())


def load_folder(path: Path) -> PipelineModel:
    """A pipeline from the folder `PipelineModel.write().save()` wrote."""
    from pyspark.ml import PipelineModel

    if not (path / "metadata").is_dir():
        raise InvalidInputError(
            f"{path} is not a saved Spark ML model (no metadata folder): give the folder that"
            " PipelineModel.write().save() wrote")
    active_or_local()
    return PipelineModel.load(path.resolve().as_uri())


def _extract(data: bytes, path: Path) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise CorruptArtifactError(f"the stored Spark ML original is not a zip: {exc}") from exc
    with archive:
        for name in archive.namelist():
            parts = PurePosixPath(name).parts
            if PurePosixPath(name).is_absolute() or ".." in parts:
                raise CorruptArtifactError(
                    f"the stored Spark ML original holds a path outside its folder: {name!r}")
        archive.extractall(path)


def transformed(model: PipelineModel, frame: pd.DataFrame,
                columns: list[str]) -> dict[str, np.ndarray]:
    """`columns` of `model.transform(frame)`, one array per column in the frame's row
    order (vectors as rows of a 2-D array)."""
    if ROW in frame.columns:
        raise SampleMismatchError(f"the rows have a column named {ROW!r}, which ferry uses")
    spark = active_or_local()
    rows = frame.reset_index(drop=True).assign(**{ROW: np.arange(len(frame))})
    result = model.transform(spark.createDataFrame(rows)).select(ROW, *columns).toPandas()
    result = result.sort_values(ROW, kind="stable")
    return {column: _array(result[column]) for column in columns}


def _array(values: pd.Series) -> np.ndarray:
    """A column as numbers; Spark vectors (`DenseVector`, `SparseVector`) as 2-D rows."""
    first = values.iloc[0] if len(values) else None
    if hasattr(first, "toArray"):
        return np.stack([v.toArray() for v in values])
    return values.to_numpy()
