"""Image robustness: noise, blur, brightness and occlusion on scikit-learn's digits (8x8)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner
from zoo import torch_cnn

import ferry
from ferry.cli import app
from ferry.gate.checks import Scores, Verdict
from ferry.gate.images import image_checks, is_image_input, occlusion


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, LogisticRegression]:
    data = load_digits()
    images = data.images.astype(np.float32)[:, None, :, :]  # [batch, 1, 8, 8]
    model = LogisticRegression(max_iter=2000).fit(images.reshape(len(images), -1), data.target)
    return images, model


def test_a_linear_model_keeps_its_answers_under_noise_brightness_and_occlusion(
        digits: tuple[np.ndarray, LogisticRegression]) -> None:
    images, model = digits
    checks = {c.name: c for c in image_checks(
        lambda batch: Scores(model.predict(batch.reshape(len(batch), -1))), images)}

    for name in ("noise", "brightness+10%", "occlusion"):
        assert checks[f"robustness.image.{name}"].verdict is Verdict.PASSED, checks[name]
    assert {c.detail["images"] for c in checks.values()} == {1000}


def test_a_model_reading_the_last_digit_of_its_input_fails_the_noise_check(
        digits: tuple[np.ndarray, LogisticRegression]) -> None:
    images, _ = digits

    def fragile(batch: np.ndarray) -> Scores:
        return Scores((np.floor(batch.mean(axis=(1, 2, 3)) * 100) % 2).astype(int))

    noise = next(c for c in image_checks(fragile, images) if c.name.endswith(".noise"))
    assert noise.verdict is Verdict.FAILED and noise.detail["severity"] == "major"
    assert noise.candidate is not None and noise.candidate >= 0.10


def test_a_model_that_raises_on_perturbed_images_fails_without_an_exception(
        digits: tuple[np.ndarray, LogisticRegression]) -> None:
    images, model = digits

    def strict(batch: np.ndarray) -> Scores:
        if batch.min() < 0:
            raise ValueError("negative pixels")
        return Scores(model.predict(batch.reshape(len(batch), -1)))

    checks = {c.name: c for c in image_checks(strict, images)}
    noise = checks["robustness.image.noise"]
    assert noise.verdict is Verdict.FAILED and "negative pixels" in noise.detail["error"]
    assert "error" not in checks["robustness.image.brightness+10%"].detail


def test_occlusion_darkens_one_square_per_image_in_either_layout() -> None:
    rng = np.random.default_rng(0)
    channels_first = np.full((3, 3, 16, 16), 5.0)
    channels_first[:, :, 0, 0] = 1.0
    channels_last = np.moveaxis(channels_first, 1, -1).copy()

    for images, spatial in ((channels_first, (2, 3)), (channels_last, (1, 2))):
        out = occlusion(images, rng)
        darkened = (out == 1.0) & (images != 1.0)
        per_image = darkened.reshape(3, -1).sum(axis=1)
        assert list(per_image) == [2 * 2 * 3] * 3  # a 2x2 square in each of 3 channels
        assert darkened.any(axis=tuple(a for a in range(4) if a not in (0, *spatial))).sum() \
            == 3 * 4
    assert is_image_input((-1, 1, 8, 8)) and not is_image_input((-1, 30))


def test_the_same_seed_gives_the_same_checks(
        digits: tuple[np.ndarray, LogisticRegression]) -> None:
    images, model = digits

    def run() -> list[float | None]:
        return [c.candidate for c in image_checks(
            lambda batch: Scores(model.predict(batch.reshape(len(batch), -1))), images)]

    assert run() == run()


def test_ferry_test_perturbs_a_registered_image_model(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A PyTorch CNN on digits, registered, then `ferry test --data images.npy`."""
    monkeypatch.setenv("FERRY_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FERRY_REGISTRY_URL", raising=False)
    monkeypatch.delenv("FERRY_ARTIFACTS_URL", raising=False)
    case = torch_cnn()
    ferry.register(case.model, "digits-cnn", **case.register_kwargs)
    np.save(tmp_path / "images.npy", case.held_out)
    np.savez(tmp_path / "table.npz", other=case.held_out)

    result = CliRunner().invoke(app, ["test", "digits-cnn:1", "--data",
                                      str(tmp_path / "images.npy"), "--no-stress", "--json"])

    names = {c["name"] for c in json.loads(result.stdout)["checks"]}
    assert {"robustness.image.noise", "robustness.image.occlusion"} <= names, result.stderr
    assert result.exit_code in (0, 1)
    again = CliRunner().invoke(app, ["test", "digits-cnn:1", "--data",
                                     str(tmp_path / "table.npz"), "--no-stress", "--json"])
    assert again.exit_code == result.exit_code
    ferry.register(LogisticRegression().fit(np.eye(3), [0, 1, 2]), "flat",
                   sample=np.eye(3))
    refused = CliRunner().invoke(app, ["test", "flat:1", "--data", str(tmp_path / "images.npy")])
    assert refused.exit_code == 2 and "does not take images" in refused.stderr
