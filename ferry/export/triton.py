"""A Triton model repository: `REPO/NAME/VERSION/model.onnx` and `REPO/NAME/config.pbtxt`.

The configuration is the one ferry's server reports for the version (`GET
/v2/models/NAME/config`, `ferry.serve.model_config`), on platform `onnxruntime_onnx`, written
in protobuf's text format. One difference: a tensor with only the batch axis (a label of shape
[batch]) has no dims once the batch axis is dropped, and Triton wants every tensor to have
some, so it is written `dims: [1]` with `reshape: { shape: [] }`, as Triton documents.

The text is written here, not by protobuf: Triton's ModelConfig message comes with
tritonclient, which ferry does not require (its tests parse the text with it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferry.errors import InvalidInputError
from ferry.export.staging import check_target, write_directory, write_file
from ferry.registry import ModelVersion, Runtime
from ferry.serve.batching import BatchSettings
from ferry.serve.datatypes import from_signature
from ferry.serve.defaults import DEFAULT_REQUEST_TIMEOUT_S
from ferry.serve.model_config import ModelConfig, platform_of
from ferry.serve.types import TensorMetadata
from ferry.signature import TensorSpec

MODEL_FILE = "model.onnx"
CONFIG_FILE = "config.pbtxt"
_ENUMS = frozenset({"data_type", "kind"})
"""Fields whose values are protobuf enum names (written without quotes)."""


@dataclass(frozen=True)
class TritonExport:
    """Where the version went in the repository."""

    repository: str
    model_directory: str
    model_file: str
    config_file: str


def triton_config(version: ModelVersion, batching: BatchSettings) -> dict[str, Any]:
    """The version's Triton configuration, as a dict in the shape of Triton's JSON."""
    platform, backend = platform_of(Runtime.ONNX)
    signature = version.signature
    config = ModelConfig(version.name, platform, backend, _metadata(signature.inputs),
                         _metadata(signature.outputs), batching,
                         round(DEFAULT_REQUEST_TIMEOUT_S * 1e6)).as_dict()
    for tensor in (*config["input"], *config["output"]):
        if not tensor["dims"]:
            tensor["dims"], tensor["reshape"] = [1], {"shape": []}
    return config


def _metadata(specs: tuple[TensorSpec, ...]) -> tuple[TensorMetadata, ...]:
    """The tensors as the server describes them (protocol datatypes)."""
    return tuple(TensorMetadata(s.name, from_signature(s.dtype), s.shape) for s in specs)


def config_text(config: Mapping[str, Any]) -> str:
    """`config` in protobuf's text format (config.pbtxt)."""
    return "\n".join(_fields(config, "")) + "\n"


def _fields(message: Mapping[str, Any], indent: str) -> list[str]:
    lines = []
    for key, value in message.items():
        if isinstance(value, Mapping):
            lines += [f"{indent}{key} {{", *_fields(value, indent + "  "), f"{indent}}}"]
        elif isinstance(value, list) and value and isinstance(value[0], Mapping):
            for item in value:
                lines += [f"{indent}{key} {{", *_fields(item, indent + "  "), f"{indent}}}"]
        elif isinstance(value, list):
            lines.append(f"{indent}{key}: [{', '.join(_scalar(key, v) for v in value)}]")
        else:
            lines.append(f"{indent}{key}: {_scalar(key, value)}")
    return lines


def _scalar(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if key in _ENUMS else json.dumps(value)
    return str(value)


def version_directory(repository: Path, version: ModelVersion) -> Path:
    """Triton's version folders are numbers: ferry's version number."""
    return repository / version.name / str(version.version)


def check_repository(repository: Path, version: ModelVersion, *, force: bool) -> None:
    """Refuse a version folder that already holds files, unless `force` replaces it."""
    if repository.exists() and not repository.is_dir():
        raise InvalidInputError(f"{repository} exists and is not a directory: give the Triton"
                                " model repository's directory")
    check_target(version_directory(repository, version), force=force, marker=MODEL_FILE)


def write_repository(repository: Path, version: ModelVersion, model_bytes: bytes,
                     batching: BatchSettings, *, force: bool = False) -> TritonExport:
    """Add the version to a Triton model repository: its model.onnx in a folder named by
    its version number, and the model's config.pbtxt (replaced: Triton keeps one per model)."""
    check_repository(repository, version, force=force)
    text = config_text(triton_config(version, batching))
    folder = version_directory(repository, version)
    write_directory(folder, {MODEL_FILE: model_bytes}, force=force, marker=MODEL_FILE)
    write_file(folder.parent / CONFIG_FILE, text.encode())
    return TritonExport(str(repository), str(folder.parent), str(folder / MODEL_FILE),
                        str(folder.parent / CONFIG_FILE))
