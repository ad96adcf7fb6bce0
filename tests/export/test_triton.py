"""`ferry export URI DIR --triton REPO`: a Triton model repository entry whose config.pbtxt
parses as Triton's ModelConfig (tritonclient's message) and says what ferry's own server says
for the same version over HTTP (`GET /v2/models/NAME/versions/N/config`) and gRPC.

The one deliberate difference: a tensor with only the batch axis (a [batch] label) is written
`dims: [1]` with `reshape { shape: [] }`, since Triton wants every tensor's dims non-empty;
ferry's server reports it with empty dims.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from bundles import register_family
from google.protobuf import json_format, text_format
from typer.testing import CliRunner

from ferry.cli import app
from ferry.export import export_bundle
from ferry.export.triton import config_text
from ferry.monitor.capture.settings import CaptureSettings
from ferry.registry import ModelVersion, Registry
from ferry.serve.batching import BatchSettings
from ferry.serve.server import RunningServer, serve_in_thread
from ferry.serve.settings import ServeSettings

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2",
                                       reason="tritonclient is a test extra")
grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient is a test extra")

FAMILIES = ("sklearn", "xgboost", "pytorch")
"""Columns with a string input and a string label; one tensor and an int64 label; one float
output of shape [batch, 1]."""
BATCHING = BatchSettings(max_batch_size=16, max_queue_delay_s=0.0005,
                         preferred_batch_sizes=(4, 8))


@dataclass(frozen=True)
class Served:
    registry: Registry
    versions: dict[str, ModelVersion]
    running: RunningServer
    repository: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The families exported to one Triton repository and served by ferry, both with the
    same batching settings."""
    root = tmp_path_factory.mktemp("triton")
    registry = Registry(f"sqlite:///{root / 'registry.db'}", artifacts_url=str(root / "art"))
    versions = {family: register_family(family, root / "sources", registry)[0]
                for family in FAMILIES}
    for family, version in versions.items():
        export_bundle(version.uri, root / "bundles" / family, registry=registry,
                      triton=root / "repository", batching=BATCHING)
    settings = ServeSettings(batching=BATCHING, capture=CaptureSettings(enabled=False),
                             access_log=False)
    running = serve_in_thread([v.uri for v in versions.values()], registry=registry,
                              settings=settings)
    yield Served(registry, versions, running, root / "repository")
    running.stop()
    registry.close()


def parsed(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def servers_config(served: Served, version: ModelVersion) -> model_config_pb2.ModelConfig:
    """What ferry's server answers over HTTP, as Triton's message."""
    url = (f"{served.running.http_url}/v2/models/{version.name}/versions/{version.version}"
           "/config")
    with urllib.request.urlopen(url, timeout=30) as response:
        document = json.loads(response.read())
    return json_format.ParseDict(document, model_config_pb2.ModelConfig())


def with_batch_only_reshape(config: model_config_pb2.ModelConfig) -> None:
    """The server's config with [batch]-only tensors written as Triton wants them."""
    for tensor in (*config.input, *config.output):
        if not tensor.dims:
            tensor.dims.append(1)
            tensor.reshape.SetInParent()


def test_the_repository_has_one_folder_per_model_and_version(served: Served) -> None:
    for version in served.versions.values():
        folder = served.repository / version.name
        assert sorted(p.name for p in folder.iterdir()) == ["1", "config.pbtxt"]
        assert [p.name for p in (folder / "1").iterdir()] == ["model.onnx"]
        assert (folder / "1" / "model.onnx").read_bytes() == served.registry.read_artifact(
            version, "onnx")
    assert sorted(p.name for p in served.repository.iterdir()) == sorted(
        v.name for v in served.versions.values())


@pytest.mark.parametrize("family", FAMILIES)
def test_config_is_what_ferrys_server_reports(served: Served, family: str) -> None:
    version = served.versions[family]
    written = parsed(served.repository / version.name / "config.pbtxt")
    expected = servers_config(served, version)
    with_batch_only_reshape(expected)

    for field in ("name", "platform", "backend", "max_batch_size", "input", "output",
                  "dynamic_batching", "instance_group"):
        assert getattr(written, field) == getattr(expected, field), field
    assert written == expected


@pytest.mark.parametrize("family", FAMILIES)
def test_config_matches_the_grpc_model_config(served: Served, family: str) -> None:
    version = served.versions[family]
    client = grpcclient.InferenceServerClient(served.running.grpc_address)
    try:
        expected = client.get_model_config(version.name, str(version.version)).config
    finally:
        client.close()
    with_batch_only_reshape(expected)

    assert parsed(served.repository / version.name / "config.pbtxt") == expected


def test_config_follows_tritons_rules(served: Served) -> None:
    config = parsed(served.repository / "export-xgboost" / "config.pbtxt")

    assert (config.platform, config.max_batch_size) == ("onnxruntime_onnx", 16)
    assert [(t.name, model_config_pb2.DataType.Name(t.data_type), list(t.dims))
            for t in config.input] == [("X", "TYPE_FP32", [30])]
    label, probabilities = config.output
    assert (label.data_type, list(label.dims), list(label.reshape.shape)) == (
        model_config_pb2.TYPE_INT64, [1], [])
    assert label.HasField("reshape") and not probabilities.HasField("reshape")
    assert list(probabilities.dims) == [2]
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    strings = parsed(served.repository / "export-sklearn" / "config.pbtxt")
    assert [model_config_pb2.DataType.Name(t.data_type) for t in strings.input] == [
        "TYPE_FP32", "TYPE_FP32", "TYPE_STRING"]


def test_text_format_writes_what_protobuf_reads() -> None:
    config = {"name": "m \"q\"", "max_batch_size": 0, "input": [], "output": [
        {"name": "y", "data_type": "TYPE_BOOL", "dims": [-1, 3]}],
        "dynamic_batching": {"preferred_batch_size": [], "preserve_ordering": False}}

    message = text_format.Parse(config_text(config), model_config_pb2.ModelConfig())

    assert message.name == 'm "q"' and list(message.output[0].dims) == [-1, 3]
    assert message.output[0].data_type == model_config_pb2.TYPE_BOOL
    assert message.HasField("dynamic_batching")


def test_a_second_version_adds_its_folder_and_replaces_the_config(served: Served,
                                                                  tmp_path: Path) -> None:
    first = served.versions["pytorch"]
    second, _ = register_family("pytorch", tmp_path, served.registry)
    repository = tmp_path / "repository"
    export_bundle(first.uri, tmp_path / "b1", registry=served.registry, triton=repository)
    result = export_bundle(second.uri, tmp_path / "b2", registry=served.registry,
                           triton=repository)

    folder = repository / second.name
    assert sorted(p.name for p in folder.iterdir()) == ["1", "2", "config.pbtxt"]
    assert result.triton is not None
    assert Path(result.triton.model_file) == folder / "2" / "model.onnx"
    assert parsed(folder / "config.pbtxt").max_batch_size == BatchSettings().max_batch_size


def test_an_existing_version_folder_needs_force(served: Served, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERRY_REGISTRY_URL", str(served.registry.engine.url))
    monkeypatch.setenv("FERRY_ARTIFACTS_URL", str(served.repository.parent / "art"))
    uri = served.versions["xgboost"].uri
    runner = CliRunner()

    first = runner.invoke(app, ["export", uri, str(tmp_path / "b"), "--triton",
                                str(tmp_path / "repo"), "--json"])
    assert first.exit_code == 0, first.stderr
    config = Path(json.loads(first.stdout)["triton"]["config_file"])
    assert config == tmp_path / "repo" / "export-xgboost" / "config.pbtxt"

    again = runner.invoke(app, ["export", uri, str(tmp_path / "c"), "--triton",
                                str(tmp_path / "repo")])
    assert again.exit_code == 2 and "not empty" in again.stderr
    assert not (tmp_path / "c").exists()

    forced = runner.invoke(app, ["export", uri, str(tmp_path / "c"), "--triton",
                                 str(tmp_path / "repo"), "--force", "--max-batch-size", "4"])
    assert forced.exit_code == 0, forced.stderr
    assert parsed(config).max_batch_size == 4
