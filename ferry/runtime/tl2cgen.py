"""Predict with a tree ensemble compiled to a shared library by TL2cgen (`ferry optimize`).

A version whose `runtime` is `tl2cgen` records under `runtime_settings`:

    {"tl2cgen": {"threads": 1, "scores": "probabilities", "platform": "linux-x86_64",
                 "tl2cgen_version": "1.0.0"},
     "artifacts": {"model.so": "<sha256>"}}

- `threads`: the OpenMP threads a batch's rows are split over (1: the calling thread only).
- `scores`: what the library computes per row and how it becomes the signature's outputs:
  - `probabilities`: one column per class, in the order of `signature.class_labels`
    (random forests, multi-class boosters);
  - `positive`: one column, the probability of the second class; the first gets `1 - p`
    (binary boosters: XGBoost, LightGBM, scikit-learn gradient boosting);
  - `values`: regression values, shaped as the signature's value output (`[N, 1]` or `[N]`).
  A classifier's label output is `class_labels[argmax(probabilities)]`, typed as the
  signature says (int64, or strings as an object array, as ONNX Runtime gives them).
- `platform`: `sys.platform` and machine of the host that compiled the library; loading it
  elsewhere is refused with a message instead of failing inside `dlopen`.
- `tl2cgen_version`: the TL2cgen that generated the code (informational).

The library holds TL2cgen's generated code (`predict(union Entry*, int, leaf*)` per row, and
`get_num_feature`, `get_num_target`, `get_num_class`, `get_leaf_output_type`) and ferry's own
batch entry points, compiled in by `ferry.optimizer.candidates.trees`:

    int ferry_predict_f32(const float* rows, size_t n_rows, size_t n_cols, int threads,
                          leaf* out);
    int ferry_predict_f64(const double* rows, ...);   /* the same for float64 rows */

which fill TL2cgen's per-row input (NaN is a missing value), zero the row's output, call
`predict` and return non-zero only when memory runs out. They are called through ctypes:
TL2cgen's own Python predictor (a DMatrix and an output query per call) took 4-7 times as long
at batch 1 and up to twice as long at batch 64 on a 30-tree forest, with identical outputs.
The calls release the GIL and share nothing between them, so concurrent callers need no lock.
The library links the OpenMP runtime (libgomp.so.1); with `threads` above 1, load it after
any fork, not before (libgomp's thread pool does not survive a fork).

The library bytes (`read("model.so")`) are written to a private folder (mode 0o700), loaded
with `ctypes` and the folder removed at once (the mapping outlives the file). A library stays
loaded for the life of the process; loading the same bytes again reuses it.
"""

from __future__ import annotations

import ctypes
import hashlib
import platform
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from ferry.errors import SampleMismatchError, UnsupportedModelError, one_line
from ferry.registry.entities import ModelVersion
from ferry.runtime.feeds import Feeds
from ferry.runtime.onnx_runtime import SessionSettings
from ferry.runtime.predictor import GraphPredictor
from ferry.runtime.runtimes import recorded_settings
from ferry.signature import Role, Signature, Task, TensorSpec

TL2CGEN_SETTINGS = "tl2cgen"
"""Key of `runtime_settings` holding `Tl2cgenSettings` fields."""
LIBRARY = "model.so"
"""Artifact name of the compiled library."""
ENTRY_POINTS: dict[np.dtype[Any], str] = {np.dtype(np.float32): "ferry_predict_f32",
                                          np.dtype(np.float64): "ferry_predict_f64"}
"""ferry's batch entry point in the library, by the dtype of the rows it reads."""
LEAF_TYPES: dict[str, type[np.floating[Any]]] = {"float32": np.float32, "float64": np.float64}
"""`get_leaf_output_type()` to the dtype of the output buffer."""
FOLDER_MODE = 0o700


class Scores(StrEnum):
    PROBABILITIES = "probabilities"
    POSITIVE = "positive"
    VALUES = "values"


def this_platform() -> str:
    """Where a compiled library can be loaded: `linux-x86_64`, `darwin-arm64`, ..."""
    return f"{sys.platform}-{platform.machine().lower()}"


@dataclass(frozen=True)
class Tl2cgenSettings:
    """How a version runs its compiled library; recorded as `runtime_settings["tl2cgen"]`."""

    threads: int = 1
    scores: str = Scores.PROBABILITIES
    platform: str = ""
    """Empty: unknown (loaded anywhere)."""
    tl2cgen_version: str = ""

    def __post_init__(self) -> None:
        if self.scores not in set(Scores):
            raise UnsupportedModelError(
                f"unknown TL2cgen scores {self.scores!r}: use one of"
                f" {', '.join(Scores)}, or upgrade ferry to load this version")
        if self.threads < 1:
            raise UnsupportedModelError(
                f"TL2cgen needs at least one thread, the version records {self.threads}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "scores": str(self.scores)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tl2cgenSettings:
        return recorded_settings(cls, data, "TL2cgen")


# --- the loaded library -----------------------------------------------------------------------

@dataclass(frozen=True)
class Library:
    """A compiled ensemble loaded into the process: its entry points and output shape."""

    handle: ctypes.CDLL
    entries: dict[np.dtype[Any], Callable[..., int]]
    n_features: int
    n_targets: int
    width: int
    """Output values per row: targets times the largest class count."""
    leaf_dtype: type[np.floating[Any]]

    @classmethod
    def of(cls, handle: ctypes.CDLL) -> Library:
        try:
            entries = {dtype: _entry(handle, name) for dtype, name in ENTRY_POINTS.items()}
            handle.get_num_feature.restype = ctypes.c_int32
            handle.get_num_target.restype = ctypes.c_int32
            handle.get_leaf_output_type.restype = ctypes.c_char_p
            targets = int(handle.get_num_target())
            classes = np.zeros(max(targets, 1), dtype=np.int32)
            handle.get_num_class(classes.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)))
            leaf = handle.get_leaf_output_type().decode()
        except AttributeError as exc:
            raise UnsupportedModelError(
                f"the library lacks an entry point ferry calls ({one_line(exc)}): run"
                " `ferry optimize` again to rebuild it") from exc
        if leaf not in LEAF_TYPES:
            raise UnsupportedModelError(f"the library computes in {leaf}, which ferry lacks")
        return cls(handle, entries, int(handle.get_num_feature()), targets,
                   targets * int(classes.max()), LEAF_TYPES[leaf])

    def predict(self, rows: np.ndarray, threads: int) -> np.ndarray:
        """Scores `[N, width]` for a C-ordered float32 or float64 matrix."""
        out = np.empty((rows.shape[0], self.width), dtype=self.leaf_dtype)
        status = self.entries[rows.dtype](rows.ctypes.data, rows.shape[0], rows.shape[1],
                                          threads, out.ctypes.data)
        if status != 0:
            raise MemoryError("the compiled ensemble could not allocate its row buffer")
        return out


def _entry(handle: ctypes.CDLL, name: str) -> Callable[..., int]:
    function = getattr(handle, name)
    function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int,
                         ctypes.c_void_p]
    function.restype = ctypes.c_int
    return function


_LIBRARIES: dict[str, Library] = {}
_LIBRARIES_LOCK = threading.Lock()


def load_library(library: bytes) -> Library:
    """`library` loaded into the process, once per distinct content."""
    key = hashlib.sha256(library).hexdigest()
    with _LIBRARIES_LOCK:
        if key not in _LIBRARIES:
            _LIBRARIES[key] = Library.of(_dlopen(library))
        return _LIBRARIES[key]


def _dlopen(library: bytes) -> ctypes.CDLL:
    """Load `library` from a private temporary file, removed once loaded."""
    folder = Path(tempfile.mkdtemp(prefix="ferry-tl2cgen-"))
    try:
        folder.chmod(FOLDER_MODE)
        path = folder / LIBRARY
        path.write_bytes(library)
        return ctypes.CDLL(str(path))
    except OSError as exc:
        raise UnsupportedModelError(
            f"the compiled ensemble cannot be loaded ({one_line(exc)}): run"
            " `ferry optimize` again to rebuild it") from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- the predictor ----------------------------------------------------------------------------

class Tl2cgenPredictor(GraphPredictor):
    """Runs a compiled tree ensemble; `load()` loads the library into the process."""

    def __init__(self, library: bytes, signature: Signature, task: Task, *,
                 settings: Tl2cgenSettings | None = None, model: str = "", version: int = 0):
        super().__init__(signature, task, model=model, version=version)
        self.library = library
        self.settings = settings or Tl2cgenSettings()
        self.library_: Library | None = None
        self._input = _single_input(signature)
        self._mapping = _OutputMapping.of(signature, Scores(self.settings.scores))

    def load(self) -> Tl2cgenPredictor:
        recorded = self.settings.platform
        if recorded and recorded != this_platform():
            raise UnsupportedModelError(
                f"this TL2cgen library was compiled for {recorded}, this machine is"
                f" {this_platform()}: serve the version on {recorded}, or run"
                " `ferry optimize` again on this machine")
        library = load_library(self.library)
        self._check(library)
        self.library_ = library
        return self

    def _check(self, library: Library) -> None:
        shape = self._input.shape
        width = shape[-1] if len(shape) == 2 and shape[-1] > 0 else library.n_features
        if library.n_features != width:
            raise UnsupportedModelError(
                f"the compiled ensemble reads {library.n_features} features, the signature"
                f" gives {width}: the artifact does not belong to this version")
        if library.n_targets != 1:
            raise UnsupportedModelError(
                f"the compiled ensemble has {library.n_targets} targets; ferry serves"
                " single-target models only")
        if self._mapping.scores == Scores.POSITIVE and library.width != 1:
            raise UnsupportedModelError(
                f"the compiled ensemble gives {library.width} scores per row where the"
                " settings say one (`positive`)")

    def run_feeds(self, feeds: Feeds) -> dict[str, np.ndarray]:
        """Outputs by the signature's names, for the signature's one input matrix."""
        library = self.library_ or self.load().library_
        assert library is not None
        rows = _rows(feeds[self._input.name], self._input.name)
        if rows.shape[1] != library.n_features:
            raise SampleMismatchError(
                f"input {self._input.name!r} has {rows.shape[1]} features, the model takes"
                f" {library.n_features}", model=self.model, version=self.version)
        return self._mapping.outputs(library.predict(rows, self.settings.threads))


def load_tl2cgen(version: ModelVersion, read: Callable[[str], bytes],
                 default_session: SessionSettings | None) -> GraphPredictor:
    """The loader registered for `Runtime.TL2CGEN`; `default_session` does not apply."""
    recorded = version.runtime_settings.get(TL2CGEN_SETTINGS) or {}
    return Tl2cgenPredictor(read(LIBRARY), version.signature, version.task,
                            settings=Tl2cgenSettings.from_dict(recorded),
                            model=version.name, version=version.version).load()


def _single_input(signature: Signature) -> TensorSpec:
    if len(signature.inputs) != 1:
        raise UnsupportedModelError(
            f"a compiled ensemble takes one numeric matrix; this signature has"
            f" {len(signature.inputs)} inputs: serve the version on ONNX Runtime")
    return signature.inputs[0]


def _rows(values: np.ndarray, name: str) -> np.ndarray:
    """The input as a C-ordered float32 or float64 matrix (anything else becomes float32)."""
    array = np.asarray(values)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise SampleMismatchError(
            f"input {name!r} must be a matrix [rows, features], got shape {array.shape}")
    dtype = array.dtype if array.dtype in ENTRY_POINTS else np.dtype(np.float32)
    return np.ascontiguousarray(array, dtype=dtype)


@dataclass(frozen=True)
class _OutputMapping:
    """Turns the library's scores `[N, width]` into the signature's outputs."""

    scores: Scores
    label: TensorSpec | None
    probabilities: TensorSpec | None
    value: TensorSpec | None
    labels: np.ndarray | None
    """The class labels, typed as the label output; None: class indices."""

    @classmethod
    def of(cls, signature: Signature, scores: Scores) -> _OutputMapping:
        label, value = signature.output(Role.LABEL), signature.output(Role.VALUE)
        probabilities = signature.output(Role.PROBABILITIES)
        if scores == Scores.VALUES and value is None:
            raise UnsupportedModelError(
                "the signature has no value output for the compiled ensemble's values")
        if scores != Scores.VALUES and label is None and probabilities is None:
            raise UnsupportedModelError(
                "the signature has no label or probabilities output for the compiled"
                " ensemble's class scores")
        labels = None
        if label is not None and signature.class_labels is not None:
            labels = np.asarray(signature.class_labels, dtype=label.numpy_dtype())
        return cls(scores, label, probabilities, value, labels)

    def outputs(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        if self.scores == Scores.VALUES:
            assert self.value is not None
            return {self.value.name: _values(raw, self.value)}
        probabilities = self._probabilities(raw)
        outputs: dict[str, np.ndarray] = {}
        if self.label is not None:
            index = np.argmax(probabilities, axis=1)
            outputs[self.label.name] = (index.astype(np.int64) if self.labels is None
                                        else self.labels[index])
        if self.probabilities is not None:
            outputs[self.probabilities.name] = probabilities
        return outputs

    def _probabilities(self, raw: np.ndarray) -> np.ndarray:
        if self.scores == Scores.POSITIVE:
            probabilities = np.empty((raw.shape[0], 2), dtype=np.float32)
            probabilities[:, 1] = raw[:, 0]
            np.subtract(1.0, raw[:, 0], out=probabilities[:, 0], casting="unsafe")
            return probabilities
        return raw.astype(np.float32, copy=False)


def _values(raw: np.ndarray, spec: TensorSpec) -> np.ndarray:
    values = raw.astype(np.float32, copy=False)
    if len(spec.shape) == 1 and values.shape[1] == 1:
        return values[:, 0]
    return values
