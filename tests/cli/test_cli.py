"""The `ferry` command line, as a user types it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from ferry.cli import app

runner = CliRunner()


def ferry_cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def iris_files(tmp_path: Path) -> dict[str, Path]:
    data = load_iris(as_frame=True)
    model = LogisticRegression(max_iter=500).fit(data.data, data.target)
    files = {"pickle": tmp_path / "iris.joblib", "sample": tmp_path / "iris.csv",
             "onnx": tmp_path / "iris.onnx", "json_rows": tmp_path / "rows.json"}
    joblib.dump(model, files["pickle"])
    data.data.to_csv(files["sample"], index=False)
    onnx_model = to_onnx(model, data.data.to_numpy()[:1].astype(np.float32),
                         options={"zipmap": False})
    files["onnx"].write_bytes(onnx_model.SerializeToString())
    files["json_rows"].write_text(data.data.iloc[:3].to_json(orient="records"))
    return files


def test_register_then_inspect_alias_history_and_predict(iris_files: dict[str, Path],
                                                        tmp_path: Path) -> None:
    code, out, err = ferry_cli("register", str(iris_files["pickle"]), "--name", "iris",
                               "--trust-pickle", "--sample", str(iris_files["sample"]),
                               "--metric", "accuracy=0.97", "--tag", "team=search")
    assert code == 0, err
    assert "registered iris:1" in out

    code, out, _ = ferry_cli("models", "--json")
    assert [m["name"] for m in json.loads(out)] == ["iris"]

    code, out, _ = ferry_cli("show", "iris:1", "--json")
    shown = json.loads(out)
    assert shown["metrics"] == {"accuracy": 0.97}
    assert shown["tags"] == {"team": "search"}
    assert shown["conversion_check"]["passed"] is True
    assert shown["signature"]["inputs"][0]["shape"] == [-1, 4]

    assert ferry_cli("register", str(iris_files["onnx"]), "--name", "iris")[0] == 0
    assert ferry_cli("alias", "set", "iris", "production", "1")[0] == 0
    assert ferry_cli("alias", "set", "iris", "production", "2")[0] == 0
    assert ferry_cli("alias", "set", "iris", "production", "1")[0] == 0  # rollback

    code, out, _ = ferry_cli("history", "iris", "--json")
    moves = [(e["event"], e["from_version"], e["to_version"]) for e in json.loads(out)
             if e["alias"] == "production"]
    assert moves == [("alias_set", None, 1), ("alias_moved", 1, 2), ("alias_moved", 2, 1)]

    output = tmp_path / "predictions.csv"
    code, _, err = ferry_cli("predict", "iris@production", "--input",
                             str(iris_files["sample"]), "--output", str(output))
    assert code == 0, err
    predictions = pd.read_csv(output)
    assert list(predictions.columns) == ["prediction", "proba_0", "proba_1", "proba_2"]
    assert len(predictions) == 150

    code, out, _ = ferry_cli("predict", "iris", "--input", str(iris_files["json_rows"]), "--json")
    assert code == 0
    assert len(json.loads(out)) == 3

    code, out, _ = ferry_cli("versions", "iris", "--json")
    assert [(v["version"], v["framework"], v["aliases"]) for v in json.loads(out)] == [
        (1, "sklearn", ["production"]), (2, "onnx", [])]


USAGE, FAILURE = 2, 1


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["show", "nope"], "no model named 'nope'", FAILURE),
        (["show", "bad name"], "invalid model name", USAGE),
        (["show", "iris:0"], "invalid version", USAGE),
        (["register", "missing.onnx", "--name", "x"], "no such file", USAGE),
        (["register", "{pickle}", "--name", "x", "--sample", "missing.csv"], "no such file",
         USAGE),
        (["register", "{pickle}", "--name", "x"], "--trust-pickle", USAGE),
        (["register", "{pickle}", "--name", "../x", "--trust-pickle"], "invalid model name",
         USAGE),
        (["register", "{pickle}", "--name", "x", "--framework", "keras"], "unknown framework",
         USAGE),
        (["register", "{garbage}", "--name", "x"], "garbage.onnx", FAILURE),
        (["register", "{truncated}", "--name", "x", "--trust-pickle"], "truncated", FAILURE),
        (["register", "{pickle}", "--name", "x", "--trust-pickle", "--sample", "{bad_sample}"],
         "columns", FAILURE),
        (["register", "{pickle}", "--name", "x", "--trust-pickle", "--metric", "acc=high"],
         "must be a number", USAGE),
        (["predict", "nope", "--input", "{sample}"], "no model named", FAILURE),
        (["predict", "iris", "--input", "missing.csv"], "no such file", USAGE),
        (["alias", "set", "nope", "production", "1"], "no model named", FAILURE),
        (["alias", "set", "iris", "bad alias", "1"], "invalid alias", USAGE),
        (["gc", "--grace", "-1"], "--grace", USAGE),
    ],
)
def test_errors_are_one_line_exit_2_for_usage_and_1_for_failures(
        iris_files: dict[str, Path], tmp_path: Path, args: list[str], message: str,
        code: int) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not an onnx model at all\xff" * 10)
    truncated = tmp_path / "truncated.joblib"
    truncated.write_bytes(iris_files["pickle"].read_bytes()[:100])
    bad_sample = tmp_path / "bad.csv"
    pd.DataFrame({"colour": ["red", "blue"]}).to_csv(bad_sample, index=False)
    paths = {**{k: str(v) for k, v in iris_files.items()}, "garbage": str(garbage),
             "truncated": str(truncated), "bad_sample": str(bad_sample)}
    args = [a.format(**paths) for a in args]

    exit_code, _, err = ferry_cli(*args)

    assert exit_code == code, err
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_failed_registration_leaves_registry_as_it_was(iris_files: dict[str, Path],
                                                       tmp_path: Path) -> None:
    assert ferry_cli("register", str(iris_files["onnx"]), "--name", "iris")[0] == 0
    before = ferry_cli("versions", "iris", "--json")[1]
    bad_sample = tmp_path / "bad.csv"
    pd.DataFrame({"x": [1.0]}).to_csv(bad_sample, index=False)

    code, _, _ = ferry_cli("register", str(iris_files["pickle"]), "--name", "iris",
                           "--trust-pickle", "--sample", str(bad_sample))

    assert code == 1
    assert ferry_cli("versions", "iris", "--json")[1] == before


def test_gc_removes_orphans(iris_files: dict[str, Path], ferry_home: Path) -> None:
    assert ferry_cli("register", str(iris_files["onnx"]), "--name", "iris")[0] == 0
    orphan = ferry_home / "artifacts" / "sha256" / "ab" / ("ab" + "0" * 62)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"left by a registration that died")

    code, out, _ = ferry_cli("gc", "--grace", "0", "--json")

    assert code == 0
    assert json.loads(out)["removed"] == [orphan.name]
    assert not orphan.exists()
    assert ferry_cli("predict", "iris", "--input", str(iris_files["sample"]), "--json")[0] == 0


def test_installed_entry_point_reports_errors_without_traceback(ferry_home: Path) -> None:
    env = {**os.environ, "FERRY_HOME": str(ferry_home)}
    result = subprocess.run([sys.executable, "-m", "ferry", "show", "nope@production"],
                            capture_output=True, text=True, env=env, timeout=120)

    assert result.returncode == 1
    assert result.stderr.strip() == "error: no model named 'nope': `ferry models` lists them"


def _xgboost_file(directory: Path, x: np.ndarray, y: np.ndarray) -> Path:
    from xgboost import XGBClassifier

    path = directory / "model.json"
    XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1).fit(x, y).save_model(path)
    return path


def _lightgbm_file(directory: Path, x: np.ndarray, y: np.ndarray) -> Path:
    from lightgbm import LGBMClassifier

    path = directory / "model.txt"
    LGBMClassifier(n_estimators=10, n_jobs=1, verbose=-1).fit(x, y).booster_.save_model(path)
    return path


def _torch_file(directory: Path, x: np.ndarray, y: np.ndarray) -> Path:
    import torch

    module = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 8), torch.nn.ReLU(),
                                 torch.nn.Linear(8, 3)).eval()
    example = torch.from_numpy(x[:4])
    program = torch.export.export(module, (example,),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    path = directory / "model.pt2"
    torch.export.save(program, str(path))
    return path


@pytest.mark.parametrize("make_file", [_xgboost_file, _lightgbm_file, _torch_file],
                         ids=["xgboost-json", "lightgbm-txt", "torch-pt2"])
def test_register_framework_files_with_npy_sample(make_file: object, tmp_path: Path) -> None:
    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    path = make_file(tmp_path, x, y)  # type: ignore[operator]
    sample = tmp_path / "sample.npy"
    np.save(sample, x)

    code, out, err = ferry_cli("register", str(path), "--name", "model", "--sample", str(sample))
    assert code == 0, err
    code, out, err = ferry_cli("predict", "model", "--input", str(sample), "--json")

    assert code == 0, err
    assert len(json.loads(out)) == len(x)
    shown = json.loads(ferry_cli("show", "model", "--json")[1])
    assert shown["conversion_check"]["passed"] is True
    assert shown["runtime"] == "onnx"
