"""Robustness of image models: noise, blur, brightness and occlusion must not flip predictions.

The tabular perturbations (`perturb.py`) change one column of a table; an image model takes one
tensor of rank 3 or more (`[batch, channels, height, width]` or `[batch, height, width,
channels]`), so each perturbation here changes whole images, mildly enough that a person would
give the same answer: Gaussian noise at 2 % of the pixel range, a Gaussian blur of one pixel,
brightness up by 10 % of the range, and a square of an eighth of the image's side set to the
darkest value. Each is an invariance test with Giskard's thresholds: a check fails when 5 % or
more of the images change their prediction, and is "major" at 10 %.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ferry.gate.checks import Check, Kind, Scores, Verdict
from ferry.gate.robustness import (
    DEFAULT_FAIL_THRESHOLD,
    DEFAULT_MAJOR_THRESHOLD,
    DEFAULT_MAX_ROWS,
)

PredictImages = Callable[[np.ndarray], Scores]
Perturb = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def is_image_input(shape: Sequence[int]) -> bool:
    """Rank 4 (a batch of images with channels) or rank 3 (a batch of grey images)."""
    return len(shape) in (3, 4)


def _spatial_axes(images: np.ndarray) -> tuple[int, ...]:
    """Height and width: the last two axes, unless the last is a small channel axis."""
    if images.ndim == 4 and images.shape[-1] in (1, 3, 4) and images.shape[1] not in (1, 3, 4):
        return (1, 2)
    return (images.ndim - 2, images.ndim - 1)


def _span(images: np.ndarray) -> float:
    return float(np.nanmax(images) - np.nanmin(images)) or 1.0


def noise(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return images + rng.normal(0, 0.02 * _span(images), images.shape).astype(images.dtype)


def blur(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sigma = [1.0 if axis in _spatial_axes(images) else 0.0 for axis in range(images.ndim)]
    return np.asarray(ndimage.gaussian_filter(images, sigma=sigma), dtype=images.dtype)


def brightness(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return images + np.asarray(0.1 * _span(images), dtype=images.dtype)


def occlusion(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A square of an eighth of the side, at a random place in each image, set to the
    darkest value."""
    out = images.copy()
    height_axis, width_axis = _spatial_axes(images)
    height, width = images.shape[height_axis], images.shape[width_axis]
    side = max(1, min(height, width) // 8)
    darkest = np.nanmin(images)
    for index in range(len(images)):
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        window = [slice(None)] * images.ndim
        window[0] = slice(index, index + 1)
        window[height_axis], window[width_axis] = slice(top, top + side), slice(left, left + side)
        out[tuple(window)] = darkest
    return out


IMAGE_PERTURBATIONS: dict[str, Perturb] = {"noise": noise, "blur": blur,
                                           "brightness+10%": brightness, "occlusion": occlusion}
"""Registered by name; pass your own dict to `image_checks` to add or replace."""


@dataclass(frozen=True)
class ImageSettings:
    max_images: int = DEFAULT_MAX_ROWS
    seed: int = 0
    fail_threshold: float = DEFAULT_FAIL_THRESHOLD
    major_threshold: float = DEFAULT_MAJOR_THRESHOLD


def image_checks(predict: PredictImages, images: np.ndarray,
                 perturbations: dict[str, Perturb] | None = None,
                 settings: ImageSettings | None = None) -> list[Check]:
    """One invariance check per perturbation on up to `max_images` images (seeded sample)."""
    settings = settings or ImageSettings()
    rng = np.random.default_rng(settings.seed)
    if len(images) > settings.max_images:
        images = images[rng.choice(len(images), settings.max_images, replace=False)]
    before = np.asarray(predict(images).prediction)
    return [_check(name, perturb, predict, images, before, settings)
            for name, perturb in (perturbations or IMAGE_PERTURBATIONS).items()]


def _check(name: str, perturb: Perturb, predict: PredictImages, images: np.ndarray,
           before: np.ndarray, settings: ImageSettings) -> Check:
    rng = np.random.default_rng([settings.seed, sum(map(ord, name))])
    try:
        after = np.asarray(predict(perturb(images, rng)).prediction)
    except Exception as exc:  # the model's failure on perturbed images is the finding
        return Check(f"robustness.image.{name}", Kind.ROBUSTNESS, None, None,
                     "the model takes perturbed images", Verdict.FAILED,
                     {"error": f"{type(exc).__name__}: {exc}"})
    flipped = np.flatnonzero(after != before)
    rate = len(flipped) / len(images)
    severity = "major" if rate >= settings.major_threshold else "medium"
    return Check(f"robustness.image.{name}", Kind.ROBUSTNESS, rate, settings.fail_threshold,
                 f"fail rate < {settings.fail_threshold:.0%}",
                 Verdict.FAILED if rate >= settings.fail_threshold else Verdict.PASSED,
                 {"images": len(images), "flipped": flipped[:100].tolist(),
                  "severity": severity if rate >= settings.fail_threshold else None})
