"""Artifacts on S3 (FERRY_ARTIFACTS_URL=s3://...), against moto's S3 server on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import ferry
from ferry.errors import CorruptArtifactError
from ferry.registry import Registry

BUCKET = "ferry-artifacts"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def s3_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server_module = pytest.importorskip("moto.server", reason="moto[server] is a test extra")
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("s3fs", reason="s3fs is the s3 extra")
    port = _free_port()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    yield f"s3://{BUCKET}/ferry"
    server.stop()


def test_register_and_load_with_artifacts_on_s3(s3_url: str, tmp_path: object) -> None:
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    registry = Registry(f"sqlite:///{tmp_path}/registry.db", artifacts_url=s3_url)

    version = ferry.register(model, "iris", sample=x, registry=registry)
    predicted = ferry.load("iris", registry=registry).predict(x)

    np.testing.assert_array_equal(predicted, model.predict(x))
    stored = {a.sha256 for a in registry.artifacts.stored()}
    assert {version.original_sha256, version.onnx_sha256, version.sample_sha256} <= stored

    registry.artifacts.fs.pipe_file(registry.artifacts.path(version.onnx_sha256 or ""), b"bad")
    with pytest.raises(CorruptArtifactError, match="iris:1"):
        ferry.load("iris:1", registry=registry)
