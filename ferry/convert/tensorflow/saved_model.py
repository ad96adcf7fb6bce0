"""A TensorFlow SavedModel directory and the signature served from it.

`SavedModel("path/to/dir")` serves the `serving_default` signature, as TensorFlow Serving
does; `SavedModel(path, signature="classify")` another one. The directory is loaded once, on
first use, with `tf.saved_model.load` (graphs and variables, no Python code). Originals are
stored as a zip of the directory and unpacked into a private temporary directory when a
version is loaded again; the directory is removed when the object is collected.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import weakref
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ferry.convert.tensorflow.runtime import as_tensor, tensorflow
from ferry.errors import InvalidInputError, SampleMismatchError, UnsupportedModelError, one_line

DEFAULT_SIGNATURE = "serving_default"
"""The signature TensorFlow Serving answers when a request names none."""
MARKER = "saved_model.pb"


def is_saved_model(path: Path) -> bool:
    return path.is_dir() and (path / MARKER).is_file()


@dataclass
class SavedModel:
    """A SavedModel directory and the name of the signature to serve from it."""

    path: Path
    signature: str = DEFAULT_SIGNATURE
    _function: Any = field(default=None, init=False, repr=False, compare=False)
    _loaded: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if not is_saved_model(self.path):
            raise InvalidInputError(f"{self.path} is not a TensorFlow SavedModel directory"
                                    f" (it has no {MARKER})")

    @property
    def function(self) -> Any:
        """The signature's concrete function (loads the directory on first use)."""
        if self._function is None:
            self._loaded, self._function = _load_signature(self.path, self.signature)
        return self._function

    def input_specs(self) -> dict[str, Any]:
        """Input name -> `tf.TensorSpec`, as the signature declares them."""
        specs: dict[str, Any] = dict(self.function.structured_input_signature[1])
        return specs

    def output_names(self) -> list[str]:
        """Output names in the order tf2onnx lists the graph's outputs (sorted)."""
        return sorted(self.function.structured_outputs)

    def __call__(self, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        specs = self.input_specs()
        missing = sorted(set(specs) - set(inputs))
        if missing:
            raise SampleMismatchError(f"the signature {self.signature!r} needs inputs"
                                      f" {missing}; got {sorted(inputs)}")
        tensors = {name: as_tensor(inputs[name], spec.dtype) for name, spec in specs.items()}
        results = self.function(**tensors)
        return {name: np.asarray(value) for name, value in results.items()}


def _load_signature(path: Path, signature: str) -> tuple[Any, Any]:
    tf = tensorflow()
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:
        raise UnsupportedModelError(f"cannot load the SavedModel in {path}: {one_line(exc)}"
                                    ) from exc
    signatures = dict(getattr(loaded, "signatures", {}) or {})
    if signature not in signatures:
        known = ", ".join(sorted(signatures)) or "none"
        raise InvalidInputError(f"the SavedModel in {path} has no signature {signature!r}:"
                                f" use one of {known} (--signature NAME)")
    return loaded, signatures[signature]


def archive(directory: Path) -> bytes:
    """The directory as a zip, members in a fixed order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        for file in sorted(p for p in directory.rglob("*") if p.is_file()):
            zipped.write(file, file.relative_to(directory).as_posix())
    return buffer.getvalue()


def unpack(data: bytes, signature: str) -> SavedModel:
    """A SavedModel from `archive()`'s bytes, in a temporary directory removed with it."""
    directory = Path(tempfile.mkdtemp(prefix="ferry-savedmodel-"))
    with zipfile.ZipFile(io.BytesIO(data)) as zipped:
        zipped.extractall(directory)  # extractall drops absolute and `..` member paths
    model = SavedModel(directory, signature)
    weakref.finalize(model, shutil.rmtree, directory, True)
    return model
