"""Every kind of input, read as a stream and scored into the same rows as `ferry.load`."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from batch_data import assert_scored, register_classifier, write, write_parts

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
def s3_folder(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server_module = pytest.importorskip("moto.server", reason="moto[server] is a test extra")
    boto3 = pytest.importorskip("boto3")
    s3fs = pytest.importorskip("s3fs", reason="s3fs is the s3 extra")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="lake")
    s3fs.S3FileSystem.clear_instance_cache()
    yield "s3://lake"
    server.stop()


def test_input_and_output_on_s3(frame: pd.DataFrame, s3_folder: str, tmp_path: Path) -> None:
    import s3fs

    local = write_parts(frame, tmp_path / "data", 2)
    fs = s3fs.S3FileSystem()
    fs.put(str(local) + "/", f"{s3_folder}/in/", recursive=True)

    run = batch("churn", f"{s3_folder}/in/", f"{s3_folder}/scores", key="id", workers=2)

    assert_scored(run, frame)
    assert fs.ls(f"{s3_folder}/scores", detail=False) == [f"lake/scores/run-{run.id}"]
