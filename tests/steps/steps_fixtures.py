"""Steps for the steps tests: top-level functions in a file of their own, as users write them
(their source and imports are what ferry stores)."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

N_FEATURES = 64
LABELS = ("negative", "positive")
POSITIVE = ["good", "great", "fine", "lovely", "happy"]
NEGATIVE = ["bad", "awful", "poor", "sad", "broken"]


def tokenize(batch: Any) -> np.ndarray:
    """Texts to hashed bag-of-words counts (float32, N_FEATURES columns)."""
    texts = np.asarray(batch, dtype=object).reshape(-1)
    features = np.zeros((len(texts), N_FEATURES), dtype=np.float32)
    for row, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"row {row} is not text with words")
        for word in text.lower().split():
            features[row, zlib.crc32(word.encode()) % N_FEATURES] += 1.0
    return features


def label_names(outputs: dict[str, Any]) -> dict[str, Any]:
    """Class numbers to names."""
    return {**outputs, "label": np.asarray(["negative", "positive"])[outputs["label"]]}


def broken(batch: Any) -> Any:
    """A step with a bug."""
    return batch.no_such_attribute


def uses_helper(batch: Any) -> Any:
    """A step that calls another function of its module (refused: not stored with it)."""
    return tokenize(batch)


def fragile_tokenize(batch: Any) -> np.ndarray:
    """`tokenize` with a bug: it fails (not the input's fault) on the text "explode"."""
    texts = np.asarray(batch, dtype=object).reshape(-1)
    if "explode" in texts.tolist():
        raise RuntimeError("the step blew up")
    features = np.zeros((len(texts), N_FEATURES), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in str(text).lower().split():
            features[row, zlib.crc32(word.encode()) % N_FEATURES] += 1.0
    return features


def texts(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Short texts and their labels (1: positive words)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, rows)
    words = [rng.choice(POSITIVE if label else NEGATIVE, 3) for label in labels]
    return np.asarray([" ".join(w) for w in words], dtype=object), labels
