"""`ferry export URI DIR`: the bundle of every family, checked as its consumers read it.

Each family (`bundles.py`) is registered once per module and exported; the tests read the
bundle back in Python: the files, signature.json against the spec and the version, ONNX
Runtime on every golden case (the Python consumer), and the sample case against
`ferry.load`. Then the command line: unknown models, native versions, non-empty folders,
`--force`, `--json`, and a failed export that leaves nothing behind.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from bundles import FAMILIES, Trained, register_family
from sklearn.base import BaseEstimator, RegressorMixin
from typer.testing import CliRunner

import ferry
from ferry.cli import app
from ferry.data import head
from ferry.export import export_bundle
from ferry.registry import ModelVersion, Registry, Runtime, VersionDraft
from ferry.runtime.feeds import to_feeds

SIGNATURE_KEYS = {"format", "model", "version", "uri", "task", "layout", "inputs", "outputs",
                  "feature_names", "class_labels", "runtime", "ferry_version"}
FLOATING = {"float16", "float32", "float64"}
CASES = ["sample-rows", "row-0", "row-1", "row-2", "edge-min", "edge-max", "edge-zeros"]


@dataclass(frozen=True)
class Exported:
    """A family's registered version, its model, and its bundle."""

    version: ModelVersion
    trained: Trained
    bundle: Path


@dataclass(frozen=True)
class Families:
    registry: Registry
    urls: dict[str, str]
    exported: dict[str, Exported]
    root: Path


@pytest.fixture(scope="module")
def families(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Families]:
    """Every family registered in one registry of the module's own, and exported."""
    root = tmp_path_factory.mktemp("export")
    urls = {"FERRY_REGISTRY_URL": f"sqlite:///{root / 'registry.db'}",
            "FERRY_ARTIFACTS_URL": str(root / "artifacts")}
    registry = Registry(urls["FERRY_REGISTRY_URL"], artifacts_url=urls["FERRY_ARTIFACTS_URL"])
    exported = {}
    for family in FAMILIES:
        version, trained = register_family(family, root / "sources", registry)
        result = export_bundle(version.uri, root / "bundles" / family, registry=registry)
        exported[family] = Exported(version, trained, Path(result.directory))
    yield Families(registry, urls, exported, root)
    registry.close()


@pytest.fixture
def cli_registry(families: Families, monkeypatch: pytest.MonkeyPatch) -> Families:
    """The module's registry, as the command line finds it (FERRY_REGISTRY_URL)."""
    for key, value in families.urls.items():
        monkeypatch.setenv(key, value)
    return families


def read_json(path: Path) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{path.name} holds {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def from_json(tensor: dict[str, Any]) -> np.ndarray:
    """A bundle tensor as numpy, as a Python consumer builds it."""
    dtype = object if tensor["dtype"] == "string" else tensor["dtype"]
    return np.array(tensor["data"], dtype=dtype).reshape(tensor["shape"])


def assert_matches(got: np.ndarray, want: dict[str, Any], tolerance: dict[str, float],
                   where: str) -> None:
    """The spec's rule: shapes equal; floating values within atol + rtol * |want|; every
    other dtype exactly equal."""
    assert list(got.shape) == want["shape"], where
    if want["dtype"] in FLOATING:
        expected = np.asarray(want["data"], dtype=np.float64)
        error = np.abs(got.astype(np.float64).ravel() - expected)
        assert (error <= tolerance["atol"] + tolerance["rtol"] * np.abs(expected)).all(), where
    else:
        assert [str(v) if want["dtype"] == "string" else v for v in got.ravel().tolist()] == \
            want["data"], where


# -- the bundle of each family -------------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_the_bundle_holds_the_files_of_the_spec(families: Families, family: str) -> None:
    exported = families.exported[family]
    files = {path.name for path in exported.bundle.iterdir()}

    expected = {"model.onnx", "signature.json", "golden.json", "README.md"}
    assert files == (expected | {"model.pmml"} if family == "pmml" else expected)
    version = exported.version
    assert (exported.bundle / "model.onnx").read_bytes() == families.registry.read_artifact(
        version, "onnx")
    if family == "pmml":
        assert (exported.bundle / "model.pmml").read_bytes() == \
            families.registry.read_artifact(version, "original")
    assert not [p for p in exported.bundle.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("family", FAMILIES)
def test_signature_json_follows_the_spec_and_the_version(families: Families,
                                                         family: str) -> None:
    exported = families.exported[family]
    version, signature = exported.version, exported.version.signature
    document = read_json(exported.bundle / "signature.json")
    graph = ort.InferenceSession(str(exported.bundle / "model.onnx"))

    assert set(document) == SIGNATURE_KEYS
    assert (document["format"], document["model"], document["version"], document["uri"]) == (
        1, version.name, version.version, version.uri)
    assert (document["task"], document["layout"]) == (version.task, signature.layout)
    assert document["inputs"] == [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)}
                                  for s in signature.inputs]
    assert [o["name"] for o in document["outputs"]] == [o.name for o in graph.get_outputs()]
    roles = {s.name: s.role for s in signature.outputs}
    assert all(o["role"] == roles.get(o["name"]) for o in document["outputs"])
    assert document["feature_names"] == signature.to_dict()["feature_names"]
    assert document["class_labels"] == signature.to_dict()["class_labels"]
    assert document["runtime"]["graph_optimization"] == "all"
    model = onnx.load(exported.bundle / "model.onnx")
    assert document["runtime"]["opset"] == {
        ("" if i.domain == "ai.onnx" else i.domain): i.version for i in model.opset_import}
    assert document["ferry_version"] == ferry.__version__


@pytest.mark.parametrize("family", FAMILIES)
def test_onnx_runtime_reproduces_every_golden_case(families: Families, family: str) -> None:
    """The Python consumer: every case's every output, within the recorded tolerance."""
    bundle = families.exported[family].bundle
    golden = read_json(bundle / "golden.json")
    session = ort.InferenceSession(str(bundle / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]

    assert (golden["format"], golden["tolerance"]) == (1, {"rtol": 1e-4, "atol": 1e-5})
    assert [case["name"] for case in golden["cases"]] == CASES
    for case in golden["cases"]:
        feeds = {name: from_json(tensor) for name, tensor in case["inputs"].items()}
        got = dict(zip(names, session.run(names, feeds), strict=True))
        assert sorted(case["outputs"]) == sorted(names)
        for name, want in case["outputs"].items():
            assert_matches(got[name], want, golden["tolerance"], f"{case['name']}/{name}")


@pytest.mark.parametrize("family", FAMILIES)
def test_the_sample_case_is_what_ferry_load_predicts(families: Families, family: str) -> None:
    exported = families.exported[family]
    version = exported.version
    case = read_json(exported.bundle / "golden.json")["cases"][0]
    rows = head(ferry.load_sample(version.uri, registry=families.registry), 20)
    predictor = ferry.load(version.uri, registry=families.registry)

    by_role = {spec.role: spec.name for spec in version.signature.outputs}
    assert case["inputs"] == {name: {"dtype": _dtype(a), "shape": list(a.shape),
                                     "data": a.ravel().tolist()}
                              for name, a in to_feeds(version.signature, rows).items()}
    for role, values in predictor.outputs(rows).items():
        want = case["outputs"][by_role.get(role, next(iter(case["outputs"])))]
        assert_matches(np.asarray(values).reshape(want["shape"]), want,
                       {"rtol": 1e-5, "atol": 1e-6}, str(role))


def _dtype(array: np.ndarray) -> str:
    return "string" if array.dtype == object else str(array.dtype)


def test_edge_rows_take_each_columns_extremes_and_the_first_category(
        families: Families) -> None:
    exported = families.exported["sklearn"]
    rows = exported.trained.rows
    cases = {c["name"]: c["inputs"] for c in
             read_json(exported.bundle / "golden.json")["cases"]}

    for column in ("age", "monthly_spend"):
        values = rows[column].to_numpy(dtype=np.float32)
        assert cases["edge-min"][column]["data"] == [float(values.min())]
        assert cases["edge-max"][column]["data"] == [float(values.max())]
        assert cases["edge-zeros"][column]["data"] == [0.0]
    for kind in ("min", "max", "zeros"):
        assert cases[f"edge-{kind}"]["plan"] == {"dtype": "string", "shape": [1, 1],
                                                 "data": [rows["plan"].iloc[0]]}


def test_the_readme_describes_the_signature(families: Families) -> None:
    text = (families.exported["sklearn"].bundle / "README.md").read_text()

    assert text.startswith("# export-sklearn:1")
    for part in ("`plan`: string [batch, 1]", "`probabilities`: float32 [batch, 2]",
                 "`churn`, `stay`", "examples/node", "examples/web", "examples/java",
                 "atol + rtol"):
        assert part in text


def test_rows_with_missing_values_are_left_out_of_the_cases(families: Families,
                                                            tmp_path: Path) -> None:
    """NaN has no JSON form: golden cases take the rows whose numbers are all finite."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    model = make_pipeline(SimpleImputer(), LinearRegression()).fit(x, x.sum(axis=1))
    holes = x.copy()
    holes[[0, 2], 1] = np.nan
    version = ferry.register(model, "holes", sample=holes,
                             registry=families.registry)

    export_bundle(version.uri, tmp_path / "b", registry=families.registry)

    golden = read_json(tmp_path / "b" / "golden.json")
    names = [case["name"] for case in golden["cases"]]
    assert names == ["sample-rows", "row-1", "row-3", "row-4", *CASES[4:]]
    assert golden["cases"][0]["inputs"]["X"]["shape"] == [18, 2]
    assert golden["cases"][4]["inputs"]["X"]["data"] == [2.0, 3.0]


def test_image_inputs_get_sample_rows_and_no_edge_rows(families: Families,
                                                       tmp_path: Path) -> None:
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(),
                                 torch.nn.Linear(2 * 6 * 6, 3)).eval()
    images = np.random.default_rng(0).random((30, 1, 8, 8), dtype=np.float32)
    version = ferry.register(module, "images", example_input=images,
                             registry=families.registry)

    export_bundle(version.uri, tmp_path / "b", registry=families.registry)

    golden = read_json(tmp_path / "b" / "golden.json")
    assert [case["name"] for case in golden["cases"]] == CASES[:4]
    assert golden["cases"][0]["inputs"]["input"]["shape"] == [20, 1, 8, 8]
    assert golden["cases"][0]["outputs"]["output"]["shape"] == [20, 3]


def test_a_version_optimized_for_another_runtime_exports_its_onnx_form(
        families: Families, tmp_path: Path) -> None:
    parent = families.exported["xgboost"].version
    recorded = {f.name: getattr(parent, f.name) for f in fields(VersionDraft)}
    draft = VersionDraft(**recorded | {"runtime": Runtime.OPENVINO,
                                       "parent_version": parent.version})
    version = families.registry.create_version(parent.name, draft)

    export_bundle(version.uri, tmp_path / "b", registry=families.registry)

    runtime = read_json(tmp_path / "b" / "signature.json")["runtime"]
    assert runtime["optimized_for"] == "openvino" and "ONNX form" in runtime["note"]
    assert (tmp_path / "b" / "model.onnx").read_bytes() == families.registry.read_artifact(
        parent, "onnx")


def test_ferry_export_is_the_export_function(families: Families, tmp_path: Path) -> None:
    result = ferry.export(families.exported["pytorch"].version.uri, tmp_path / "b",
                          registry=families.registry)

    assert result.cases == tuple(CASES) and result.triton is None
    assert result.files == ("model.onnx", "signature.json", "golden.json", "README.md")


# -- the command line -----------------------------------------------------------------------

def ferry_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), prog_name="ferry")
    return result.exit_code, result.stdout, result.stderr


class NativeOnly(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """A model no converter knows: registered with force=True, it runs natively."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> NativeOnly:
        self.n_features_in_ = x.shape[1]
        return self

    def predict(self, x: Any) -> np.ndarray:
        return np.asarray(x, dtype=np.float64).sum(axis=1)


def test_json_prints_the_result(cli_registry: Families, tmp_path: Path) -> None:
    code, out, err = ferry_cli("export", "export-lightgbm", str(tmp_path / "b"), "--json")

    assert code == 0, err
    printed = json.loads(out)
    assert (printed["uri"], printed["directory"]) == ("export-lightgbm:1", str(tmp_path / "b"))
    assert printed["cases"] == CASES and printed["triton"] is None
    assert (tmp_path / "b" / "golden.json").is_file()


def test_an_unknown_model_exits_1(cli_registry: Families, tmp_path: Path) -> None:
    code, _, err = ferry_cli("export", "nope", str(tmp_path / "b"))

    assert code == 1 and "no model named 'nope'" in err
    assert not (tmp_path / "b").exists()


def test_a_native_version_is_refused(cli_registry: Families, tmp_path: Path) -> None:
    x = np.ones((5, 2))
    version = ferry.register(NativeOnly().fit(x, x[:, 0]), "native", sample=x, force=True,
                             registry=cli_registry.registry)
    assert version.runtime == Runtime.NATIVE

    code, _, err = ferry_cli("export", version.uri, str(tmp_path / "b"))

    assert code == 1
    assert "runs natively" in err and "no model.onnx" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "b").exists()


def test_a_non_empty_directory_needs_force(cli_registry: Families, tmp_path: Path) -> None:
    target = tmp_path / "b"
    target.mkdir()
    (target / "notes.txt").write_text("mine")

    code, _, err = ferry_cli("export", "export-xgboost", str(target))
    assert code == 2 and "not empty" in err and "--force" in err
    code, _, err = ferry_cli("export", "export-xgboost", str(target), "--force")
    assert code == 2 and "holds no signature.json" in err
    assert (target / "notes.txt").read_text() == "mine"

    (target / "notes.txt").unlink()
    assert ferry_cli("export", "export-xgboost", str(target))[0] == 0
    assert ferry_cli("export", "export-xgboost", str(target))[0] == 2
    code, out, err = ferry_cli("export", "export-pmml", str(target), "--force")
    assert code == 0, err
    assert "exported export-pmml:1" in out
    assert read_json(target / "signature.json")["model"] == "export-pmml"
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


def test_a_failed_export_leaves_nothing(cli_registry: Families, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import ferry.export.staging

    def broken_disk(self: Path, data: bytes) -> int:
        if self.name == "golden.json":
            raise OSError("no space left on device")
        return original(self, data)

    original = Path.write_bytes
    monkeypatch.setattr(ferry.export.staging.Path, "write_bytes", broken_disk)
    uri = cli_registry.exported["sklearn"].version.uri

    with pytest.raises(OSError, match="no space"):
        export_bundle(uri, tmp_path / "b", registry=cli_registry.registry)
    assert list(tmp_path.iterdir()) == []

    monkeypatch.undo()
    export_bundle(uri, tmp_path / "b", registry=cli_registry.registry)
    before = (tmp_path / "b" / "golden.json").read_bytes()
    monkeypatch.setattr(ferry.export.staging.Path, "write_bytes", broken_disk)
    with pytest.raises(OSError):
        export_bundle(uri, tmp_path / "b", registry=cli_registry.registry, force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["b"]
    assert (tmp_path / "b" / "golden.json").read_bytes() == before


def test_batching_options_need_triton(cli_registry: Families, tmp_path: Path) -> None:
    code, _, err = ferry_cli("export", "export-xgboost", str(tmp_path / "b"),
                             "--max-batch-size", "8")

    assert code == 2 and "--triton" in err
    code, _, err = ferry_cli("export", "export-xgboost", str(tmp_path / "b"),
                             "--triton", str(tmp_path / "repo"), "--max-batch-size", "0")
    assert code == 2 and "max_batch_size" in err
    assert not (tmp_path / "b").exists()


def test_help_names_the_options() -> None:
    code, out, _ = ferry_cli("export", "--help")

    assert code == 0
    text = " ".join(out.split())
    for flag in ("--triton", "--force", "--no-force", "--json", "--max-batch-size"):
        assert flag in text
