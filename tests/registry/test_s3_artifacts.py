"""Artifacts on S3 (FERRY_ARTIFACTS_URL=s3://...), against moto's S3 server on 127.0.0.1."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import ferry
from ferry.errors import CorruptArtifactError
from ferry.registry import Registry

BUCKET = "ferry-artifacts"


@pytest.fixture
def s3_url(moto_s3: str) -> str:
    boto3 = pytest.importorskip("boto3")
    boto3.client("s3", endpoint_url=moto_s3).create_bucket(Bucket=BUCKET)
    return f"s3://{BUCKET}/ferry"


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
