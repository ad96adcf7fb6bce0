"""The model configuration extension: how a served version runs, in the shape of Triton's
model configuration, and the `parameters.config` override a repository load may carry.

An override may set what ferry can honour at load time (the rest is the registered model's):

    {"max_batch_size": 16,
     "dynamic_batching": {"preferred_batch_size": [4, 8], "max_queue_delay_microseconds": 100,
                          "default_queue_policy": {"max_queue_size": 256}},
     "instance_group": [{"count": 2, "kind": "KIND_CPU"}]}

Numbers may be JSON strings ("16"), as protobuf's JSON mapping allows. Anything else is
refused with "failed to load", the phrase Triton's clients look for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from ferry.errors import InvalidInputError
from ferry.registry import Runtime
from ferry.serve.batching import BatchSettings
from ferry.serve.datatypes import BYTES
from ferry.serve.types import TensorMetadata
from ferry.text import is_whole_number

BACKEND = {Runtime.ONNX: ("onnxruntime_onnx", "onnxruntime"),
           Runtime.OPENVINO: ("openvino", "openvino"),
           Runtime.TL2CGEN: ("ferry_tl2cgen", "tl2cgen"),
           Runtime.NATIVE: ("ferry_native", "python"),
           Runtime.PIPELINE: ("ensemble", "")}
"""Runtime -> (platform, backend) as the configuration (and the model metadata) name them."""


def platform_of(runtime: str) -> tuple[str, str]:
    """The platform and backend names of a runtime (empty for one Triton has no name for)."""
    return BACKEND.get(runtime, ("", ""))
CONFIG_KEY = "config"
FILE_PREFIX = "file:"
_MAX_INT32 = 2**31 - 1
_SHOWN_KEY = 64
"""How much of a client's parameter name an error message repeats."""
_BATCHING_KEYS = ("preferred_batch_size", "max_queue_delay_microseconds",
                  "default_queue_policy", "preserve_ordering")


@dataclass(frozen=True, slots=True)
class ModelConfig:
    name: str
    platform: str
    backend: str
    inputs: tuple[TensorMetadata, ...]
    outputs: tuple[TensorMetadata, ...]
    batching: BatchSettings
    timeout_us: int

    def as_dict(self) -> dict[str, Any]:
        """The configuration as Triton's JSON (numbers as numbers, dims without the batch)."""
        batching = self.batching
        return {
            "name": self.name, "platform": self.platform, "backend": self.backend,
            "max_batch_size": batching.max_batch_size,
            "input": [_tensor(t) for t in self.inputs],
            "output": [_tensor(t) for t in self.outputs],
            "dynamic_batching": {
                "preferred_batch_size": list(batching.preferred_batch_sizes),
                "max_queue_delay_microseconds": round(batching.max_queue_delay_s * 1e6),
                "preserve_ordering": True,
                "default_queue_policy": {"max_queue_size": batching.max_queue_size,
                                         "default_timeout_microseconds": self.timeout_us}},
            "instance_group": [{"name": self.name, "count": batching.instances,
                                "kind": "KIND_CPU"}],
        }


def data_type(datatype: str) -> str:
    """The configuration's name of a protocol datatype (`FP32` -> `TYPE_FP32`)."""
    return "TYPE_STRING" if datatype == BYTES else f"TYPE_{datatype}"


def dims(tensor: TensorMetadata) -> list[int]:
    """A tensor's dims without its batch axis (ferry's tensors are all batched)."""
    return list(tensor.shape[1:])


def _tensor(tensor: TensorMetadata) -> dict[str, Any]:
    return {"name": tensor.name, "data_type": data_type(tensor.datatype), "dims": dims(tensor)}


# ---- load overrides ---------------------------------------------------------------------------

def load_override(name: str, parameters: dict[str, Any],
                  base: BatchSettings) -> BatchSettings | None:
    """The batch settings a repository load asks for, or None when it asks for none."""
    for key in parameters:
        if key.startswith(FILE_PREFIX):
            shown = key if len(key) <= _SHOWN_KEY else key[:_SHOWN_KEY] + "..."
            raise _refused(name, f"failed to poll from model repository: parameter {shown!r}:"
                                 " file overrides are not supported; ferry loads the registered"
                                 " version (register a new one instead)")
    if CONFIG_KEY not in parameters:
        return None
    try:
        return _apply(name, _config_document(name, parameters[CONFIG_KEY]), base)
    except InvalidInputError as exc:  # BatchSettings' own checks say what is out of range
        if str(exc).startswith("failed to load"):
            raise
        raise _refused(name, str(exc)) from None


def _config_document(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    try:
        document = json.loads(value) if isinstance(value, str) else value
    except ValueError as exc:
        raise _refused(name, f"parameters.config is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise _refused(name, "parameters.config must be a JSON object such as"
                             ' {"max_batch_size": 16}')
    return document


def _apply(name: str, config: dict[str, Any], base: BatchSettings) -> BatchSettings:
    unknown = sorted(set(config) - {"name", "max_batch_size", "dynamic_batching",
                                    "instance_group"})
    if unknown:
        raise _refused(name, f"parameters.config field {unknown[0]!r} cannot be overridden:"
                             " ferry honours max_batch_size, dynamic_batching and"
                             " instance_group")
    if config.get("name", name) != name:
        raise _refused(name, f"parameters.config names model {config['name']!r}")
    settings = base
    if "max_batch_size" in config:
        settings = replace(settings, max_batch_size=_int(name, config, "max_batch_size", 1))
    if "dynamic_batching" in config:
        settings = _batching(name, config["dynamic_batching"], settings)
    if "instance_group" in config:
        settings = replace(settings, instances=_instances(name, config["instance_group"]))
    return settings


def _batching(name: str, value: Any, settings: BatchSettings) -> BatchSettings:
    if not isinstance(value, dict) or set(value) - set(_BATCHING_KEYS):
        raise _refused(name, "dynamic_batching may set " + ", ".join(_BATCHING_KEYS))
    if "max_queue_delay_microseconds" in value:
        delay = _int(name, value, "max_queue_delay_microseconds", 0)
        settings = replace(settings, max_queue_delay_s=delay / 1e6)
    if "preferred_batch_size" in value:
        sizes = value["preferred_batch_size"]
        if not isinstance(sizes, list):
            raise _refused(name, "dynamic_batching.preferred_batch_size must be a list")
        settings = replace(settings, preferred_batch_sizes=tuple(
            _int(name, {"preferred_batch_size": s}, "preferred_batch_size", 1) for s in sizes))
    policy = value.get("default_queue_policy")
    if policy is not None:
        if not isinstance(policy, dict) or "max_queue_size" not in policy:
            raise _refused(name, "default_queue_policy may set max_queue_size")
        settings = replace(settings, max_queue_size=_int(name, policy, "max_queue_size", 1))
    return settings


def _instances(name: str, groups: Any) -> int:
    if not isinstance(groups, list) or not groups:
        raise _refused(name, "instance_group must be a non-empty list of {\"count\": N}")
    total = 0
    for group in groups:
        if not isinstance(group, dict) or group.get("kind", "KIND_CPU") not in (
                "KIND_CPU", "KIND_AUTO"):
            raise _refused(name, "instance_group entries run on the CPU: {\"count\": N,"
                                 " \"kind\": \"KIND_CPU\"}")
        total += _int(name, group, "count", 1)
    return total


def _int(name: str, holder: dict[str, Any], key: str, minimum: int) -> int:
    value = holder[key]
    if isinstance(value, str) and is_whole_number(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not (
            minimum <= value <= _MAX_INT32):
        raise _refused(name, f"{key} must be an integer >= {minimum}, got {holder[key]!r}")
    return value


def _refused(name: str, reason: str) -> InvalidInputError:
    return InvalidInputError(f"failed to load '{name}': {reason}", model=name)
