"""Models from files, for `ferry register FILE`.

Each framework's own formats are safe to open (`.onnx`, `.pmml`, XGBoost `.json`/`.ubj`,
LightGBM `.txt`, PyTorch `.pt2` from `torch.export`, Keras `.keras` and `.h5`, a TensorFlow
SavedModel directory with the signature to serve). Pickles (`.pkl`, `.joblib`, `.pt`)
run code when loaded, so they are opened only when the user says they trust them.
"""

from __future__ import annotations

from pathlib import Path

import joblib

from ferry.convert import Converter, converter_for, frameworks
from ferry.errors import InvalidInputError, UnknownFrameworkError, UnsafeFileError, one_line

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
TORCH_PICKLE_SUFFIXES = (".pt", ".pth")


def read_model_file(path: Path, *, framework: str | None = None,
                    trust_pickle: bool = False, signature: str | None = None) -> object:
    """The model stored in `path` (`signature`: the one to serve from a SavedModel)."""
    if path.is_dir():
        return _read_directory(path, signature)
    if signature is not None:
        raise InvalidInputError(f"--signature is for TensorFlow SavedModel directories;"
                                f" {path.name} is a file")
    if not path.is_file():
        raise InvalidInputError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES + TORCH_PICKLE_SUFFIXES:
        _refuse_untrusted(path, trust_pickle)
        return _unpickle(path, torch=suffix in TORCH_PICKLE_SUFFIXES)
    converter = converter_for(framework) if framework else _converter_by_suffix(path)
    return converter.read_file(path)


def _read_directory(path: Path, signature: str | None) -> object:
    """A TensorFlow SavedModel directory, or a Spark ML pipeline saved with
    `model.write().save(path)` (the model formats that are directories)."""
    if (path / "metadata").is_dir() and (path / "stages").is_dir():
        return converter_for("sparkml").read_file(path)
    if not (path / "saved_model.pb").is_file():
        raise InvalidInputError(f"{path} is a directory but neither a TensorFlow SavedModel"
                                " (no saved_model.pb) nor a saved Spark ML pipeline: give a"
                                " model file")
    converter_for("tensorflow")  # a clear error when the extra is missing
    from ferry.convert.tensorflow import DEFAULT_SIGNATURE, SavedModel

    return SavedModel(path, signature or DEFAULT_SIGNATURE)


def _converter_by_suffix(path: Path) -> Converter:
    suffix = path.suffix.lower()
    for name in frameworks():
        try:
            converter = converter_for(name)
        except UnknownFrameworkError:
            continue
        if suffix in converter.file_suffixes:
            return converter
    raise InvalidInputError(
        f"cannot tell the framework of {path.name}: name it with --framework"
        f" ({', '.join(frameworks())}), or use .onnx, .pmml, .json, .txt, .pt2, .keras, .h5"
        " or a pickle"
    )


def _refuse_untrusted(path: Path, trust_pickle: bool) -> None:
    if not trust_pickle:
        raise UnsafeFileError(
            f"{path.name} is a pickle, which can run any code when loaded: pass --trust-pickle"
            " (trust_pickle=True) only if you trust whoever made it"
        )


def _unpickle(path: Path, *, torch: bool) -> object:
    try:
        if torch:
            import torch as torch_module

            return torch_module.load(path, weights_only=False)
        return joblib.load(path)
    except Exception as exc:
        raise InvalidInputError(
            f"cannot load {path.name}: {one_line(exc)} (is the file truncated or corrupt?)"
        ) from exc
