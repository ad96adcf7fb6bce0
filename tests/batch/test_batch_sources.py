"""Every kind of input, read as a stream and scored into the same rows as `ferry.load`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from batch_data import (
    FEATURES,
    assert_scored,
    register_classifier,
    register_regressor,
    rows,
    run_rows,
    write,
    write_parts,
)

import ferry
from ferry.batch import batch
from ferry.batch.sources import PART_ROWS, Format, open_source


@pytest.fixture
def frame() -> pd.DataFrame:
    return register_classifier()


@pytest.mark.parametrize("shape", ["file.parquet", "folder", "glob", "file.csv", "file.jsonl",
                                   "csv-folder"])
def test_each_input_shape_is_scored_row_for_row(shape: str, frame: pd.DataFrame,
                                                tmp_path: Path) -> None:
    data = tmp_path / "data"
    if shape.startswith("file"):
        source = str(write(frame, data.with_suffix("." + shape.split(".")[1])))
    elif shape == "csv-folder":
        source = str(write_parts(frame, data, 3, ".csv"))
    else:
        write_parts(frame, data, 3)
        source = str(data) if shape == "folder" else str(data / "part-*.parquet")

    run = batch("churn", source, str(tmp_path / "out"), key="id", keep=["city"])

    assert_scored(run, frame)


def test_a_folder_skips_hidden_and_underscore_files(frame: pd.DataFrame, tmp_path: Path) -> None:
    data = write_parts(frame, tmp_path / "data", 2)
    (data / "_SUCCESS").write_text("")
    write(frame.head(10), data / ".partial.parquet")
    (data / "_staging").mkdir()
    write(frame.head(10), data / "_staging" / "x.parquet")

    source = open_source(str(data))

    assert source.format == Format.PARQUET
    assert [Path(p.path).name for p in source.parts] == ["part-000.parquet", "part-001.parquet"]


def test_row_groups_are_joined_into_parts_of_bounded_size(tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": range(PART_ROWS * 2 + 5), "x": 1.0})
    frame.to_parquet(tmp_path / "big.parquet", row_group_size=PART_ROWS // 4)

    source = open_source(str(tmp_path / "big.parquet"))

    assert [p.rows for p in source.parts] == [PART_ROWS, PART_ROWS, 5]
    assert source.rows == len(frame)


@pytest.fixture
def s3_folder(moto_s3: str) -> str:
    boto3 = pytest.importorskip("boto3")
    boto3.client("s3", endpoint_url=moto_s3).create_bucket(Bucket="lake")
    return "s3://lake"


def test_input_and_output_on_s3(frame: pd.DataFrame, s3_folder: str, tmp_path: Path) -> None:
    import s3fs

    local = write_parts(frame, tmp_path / "data", 2)
    fs = s3fs.S3FileSystem()
    fs.put(str(local) + "/", f"{s3_folder}/in/", recursive=True)

    run = batch("churn", f"{s3_folder}/in/", f"{s3_folder}/scores", key="id", workers=2)

    assert_scored(run, frame)
    assert fs.ls(f"{s3_folder}/scores", detail=False) == [f"lake/scores/run-{run.id}"]



def test_a_version_on_openvino_is_scored_on_openvino(tmp_path: Path) -> None:
    """What the optimizer registers for its `openvino-fp32` candidate, scored as served,
    with the recorded two threads set to the batch's one."""
    import dataclasses

    from ferry.batch.kernel import with_threads
    from ferry.registry import Registry, VersionDraft

    register_regressor("price")
    frame = rows()
    registry = Registry()
    parent = registry.get("price")
    fields = {f.name: getattr(parent, f.name) for f in dataclasses.fields(VersionDraft)
              if hasattr(parent, f.name)}
    draft = VersionDraft(**{**fields, "runtime": "openvino", "runtime_settings": {
        "openvino": {"precision": "f32", "threads": 2, "ir": False}}})
    variant = registry.create_version("price", draft)
    data = write(frame, tmp_path / "in.parquet")

    run = batch(variant.uri, str(data), str(tmp_path / "out"), key="id")

    got = run_rows(run)
    expected = ferry.load("price:1").predict(frame[FEATURES])
    np.testing.assert_allclose(got["prediction"], expected, rtol=1e-5, atol=1e-4)
    assert run.version == 2 and "proba_0" not in got
    assert with_threads(variant, 1).runtime_settings["openvino"]["threads"] == 1


def test_a_pipeline_with_a_text_column_reads_one_column_per_input(tmp_path: Path) -> None:
    """skl2onnx gives a pipeline of mixed columns one `[batch, 1]` input per column."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = rows()
    features = frame[["city", *FEATURES]]
    model = Pipeline([("prep", ColumnTransformer([("city", OneHotEncoder(), ["city"]),
                                                  ("num", StandardScaler(), FEATURES)])),
                      ("lr", LogisticRegression())]).fit(features, frame["x1"] > 0)
    ferry.register(model, "mixed", sample=features.head(50))
    data = write_parts(frame, tmp_path / "data", 2, ".csv")

    run = batch("mixed", str(data), str(tmp_path / "out"), key="id", workers=2)

    got = run_rows(run)
    np.testing.assert_array_equal(got["prediction"], model.predict(features))
    np.testing.assert_allclose(got["proba_True"], model.predict_proba(features)[:, 1],
                               rtol=1e-4, atol=1e-6)
