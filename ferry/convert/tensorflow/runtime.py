"""TensorFlow imported quietly and only when a TensorFlow model arrives.

TensorFlow prints start-up banners through its C++ logger unless `TF_CPP_MIN_LOG_LEVEL` is set
before the import, and tf2onnx logs every op it cannot shape; neither says anything about the
user's model, so both are turned down (a user's own setting wins).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from ferry.errors import UnknownFrameworkError

_QUIET_LOGGERS = ("tf2onnx", "tensorflow", "absl")


def tensorflow() -> Any:
    """The `tensorflow` module, imported with its C++ start-up logging turned down."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _load_triton_first()
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise UnknownFrameworkError(
            f"TensorFlow models need an extra: pip install 'ferry-ml[tensorflow]' ({exc})"
        ) from exc
    return tf


def _load_triton_first() -> None:
    """Import `triton` (PyTorch's compiler, installed with torch) before TensorFlow: both
    bundle LLVM, and importing triton after TensorFlow crashes the process (SIGSEGV in
    `triton/knobs.py`, as `torch.export` does on its first use); the other order works."""
    if "tensorflow" in sys.modules or "triton" in sys.modules:
        return
    if importlib.util.find_spec("triton") is not None:
        with suppress(Exception):
            importlib.import_module("triton")


def keras() -> Any:
    tensorflow()
    import keras as keras_module

    return keras_module


@contextmanager
def quiet_logs() -> Iterator[None]:
    """tf2onnx's and TensorFlow's Python loggers at ERROR while converting."""
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def as_tensor(array: Any, dtype: Any) -> Any:
    """`array` as a `tf.Tensor` of `dtype`; strings (str or bytes objects) as `tf.string`."""
    tf = tensorflow()
    if dtype == tf.string:
        return tf.constant(_texts(array), dtype=tf.string)
    return tf.constant(array, dtype=dtype)


def _texts(array: Any) -> Any:
    import numpy as np

    values = np.asarray(array)
    if values.dtype.kind == "O":
        return np.vectorize(lambda v: v if isinstance(v, bytes) else str(v).encode(),
                            otypes=[object])(values)
    return values
