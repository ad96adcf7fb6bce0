"""Bad input: usage mistakes exit 2 before scoring, naming the column and the type wanted;
a corrupt file or a repeated key fails the run cleanly and leaves earlier results alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from batch_data import FEATURES, register_classifier, write, write_parts
from typer.testing import CliRunner

from ferry.batch import RunStatus
from ferry.batch.sinks import open_sink
from ferry.cli import app
from ferry.registry import Registry


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def ferry_batch(*args: str) -> Result:
    """`ferry batch churn ARGS` in this process, as the command line runs it."""
    result = CliRunner().invoke(app, ["batch", "churn", *args])
    return Result(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def frame() -> pd.DataFrame:
    return register_classifier()


@pytest.mark.parametrize(("change", "flags", "message"), [
    (lambda f: f.drop(columns="x3"), [], "input lacks column 'x3', which the model takes as"
                                        " float32"),
    (lambda f: f.assign(x2="high"), [], "input column 'x2' is string; the model takes it as"
                                       " float32"),
    (lambda f: f, ["--key", "customer"], "--key customer: the input has no such column"),
    (lambda f: f, ["--keep", "nope"], "--keep nope: the input has no such column"),
    (lambda f: f.assign(prediction=1), ["--keep", "prediction"], "would hide an output column"),
    (lambda f: f, ["--workers", "0"], "--workers and --threads must be 1 or more"),
    (lambda f: f, ["--engine", "dask"], "--engine dask: use one of local, spark"),
    (lambda f: f, ["--output", "postgresql+psycopg://127.0.0.1/db"], "name the table"),
])
def test_usage_mistakes_exit_2_before_scoring(change: object, flags: list[str], message: str,
                                              frame: pd.DataFrame, tmp_path: Path) -> None:
    data = write(change(frame), tmp_path / "in.parquet")  # type: ignore[operator]

    result = ferry_batch("--input", str(data), *flags)

    assert result.returncode == 2, result.stderr
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    assert Registry().runs("churn") == []


def test_a_missing_input_exits_2(frame: pd.DataFrame, tmp_path: Path) -> None:
    result = ferry_batch("--input", str(tmp_path / "nothing.parquet"))
    assert result.returncode == 2 and "no such file or folder" in result.stderr


def test_a_corrupt_file_fails_the_run_names_the_file_and_keeps_earlier_results(
        frame: pd.DataFrame, tmp_path: Path) -> None:
    data = write_parts(frame, tmp_path / "data", 3, ".csv")
    assert ferry_batch("--input", str(data), "--key", "id").returncode == 0
    [good] = Registry().runs("churn")
    bad = data / "part-002.csv"
    bad.write_text(bad.read_text() + "1,2,oops,4\n\"unterminated\n")

    result = ferry_batch("--input", str(data), "--key", "id")

    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot read" in result.stderr and "part-002.csv" in result.stderr
    failed, completed = Registry().runs("churn")
    assert failed.status == RunStatus.FAILED and "part-002.csv" in (failed.error or "")
    assert completed.id == good.id
    sink = open_sink(good.output, "churn")
    assert sink.runs() == {good.id} and sink.read(good.id).num_rows == len(frame)


def test_a_repeated_key_is_reported_and_nothing_is_published(frame: pd.DataFrame,
                                                             tmp_path: Path) -> None:
    repeated = pd.concat([frame, frame.head(3)])
    data = write(repeated, tmp_path / "in.parquet")

    result = ferry_batch("--input", str(data), "--key", "id")

    assert result.returncode == 1
    assert "--key id repeats in the input: 3 keys appear more than once" in result.stderr
    [failed] = Registry().runs("churn")
    assert failed.status == RunStatus.FAILED
    assert open_sink(failed.output, "churn").runs() == set()


def test_a_model_without_feature_names_reads_f_columns(tmp_path: Path) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    import ferry
    from ferry.batch import batch

    x = np.random.default_rng(0).normal(size=(200, 3))
    ferry.register(LogisticRegression().fit(x, x[:, 0] > 0), "plain", sample=x[:20])
    data = write(pd.DataFrame(x, columns=["f0", "f1", "f2"]).assign(id=range(200)),
                 tmp_path / "in.parquet")

    run = batch("plain", str(data), str(tmp_path / "out"), key="id")

    got = open_sink(run.output, "plain").read(run.id).to_pandas().sort_values("id")
    np.testing.assert_array_equal(got["prediction"], ferry.load("plain").predict(x))
    assert FEATURES[0] not in got
