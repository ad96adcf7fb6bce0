"""What a model expects: its inputs' names, datatypes and shapes, read from the target server.

REST: `GET {url}/v2/models/{name}[/versions/{v}]`; gRPC: `ModelMetadata`. An unreachable server
or an unknown model raises a ferry error with one line saying which, so the CLI exits with 2.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from ferry.errors import InvalidInputError, ModelNotFoundError, one_line
from ferry.loadtest.httpclient import Endpoint

METADATA_TIMEOUT_S = 10.0


class TargetError(InvalidInputError):
    """The target server cannot be reached or does not speak the Open Inference Protocol."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output as model metadata describes it; -1 marks a variable dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelInfo:
    """A model's metadata: the tensors it takes and returns."""

    name: str
    version: str | None
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "platform": self.platform,
                "inputs": [_spec_dict(s) for s in self.inputs],
                "outputs": [_spec_dict(s) for s in self.outputs]}


def _spec_dict(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}


def http_metadata(base_url: str, model: str, version: str | None,
                  timeout: float = METADATA_TIMEOUT_S) -> ModelInfo:
    """Model metadata over REST."""
    endpoint = Endpoint(base_url)
    url = endpoint.origin + endpoint.model_path(model, version)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:200].decode("utf-8", "replace").strip()
        if exc.code == 404:
            raise ModelNotFoundError(
                f"model {_which(model, version)} not found at {base_url} (HTTP 404: {detail})",
                model=model) from exc
        raise TargetError(f"{url} answered HTTP {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TargetError(f"cannot reach {base_url}: {one_line(Exception(reason))}") from exc
    except ValueError as exc:
        raise TargetError(f"{url} did not answer with JSON model metadata") from exc
    return _from_json(payload, model, version, url)


def _from_json(payload: Any, model: str, version: str | None, url: str) -> ModelInfo:
    try:
        inputs = tuple(_tensor(t) for t in payload["inputs"])
        outputs = tuple(_tensor(t) for t in payload.get("outputs") or [])
    except (KeyError, TypeError, ValueError) as exc:
        raise TargetError(f"{url} did not answer with V2 model metadata (inputs with name,"
                          f" datatype and shape): {one_line(exc)}") from exc
    if not inputs:
        raise TargetError(f"model {_which(model, version)} declares no inputs at {url}")
    return ModelInfo(name=str(payload.get("name") or model), version=version,
                     platform=str(payload.get("platform") or ""), inputs=inputs,
                     outputs=outputs)


def _tensor(item: Any) -> TensorSpec:
    return TensorSpec(name=str(item["name"]), datatype=str(item["datatype"]).upper(),
                      shape=tuple(int(d) for d in item["shape"]))


def grpc_metadata(address: str, model: str, version: str | None,
                  timeout: float = METADATA_TIMEOUT_S) -> ModelInfo:
    """Model metadata over gRPC (`inference.GRPCInferenceService/ModelMetadata`)."""
    import grpc

    pb, pbg = grpc_modules()
    request = pb.ModelMetadataRequest(name=model, version=version or "")
    with grpc.insecure_channel(address) as channel:
        try:
            reply = pbg.GRPCInferenceServiceStub(channel).ModelMetadata(request, timeout=timeout)
        except grpc.RpcError as exc:
            code, detail = exc.code(), one_line(Exception(exc.details() or ""))
            if code == grpc.StatusCode.NOT_FOUND:
                raise ModelNotFoundError(f"model {_which(model, version)} not found at"
                                         f" {address} (gRPC NOT_FOUND: {detail})",
                                         model=model) from exc
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise TargetError(f"cannot reach gRPC server {address}: {detail}") from exc
            raise TargetError(f"{address} answered gRPC {code.name}: {detail}") from exc
    inputs = tuple(TensorSpec(t.name, t.datatype.upper(), tuple(t.shape)) for t in reply.inputs)
    outputs = tuple(TensorSpec(t.name, t.datatype.upper(), tuple(t.shape))
                    for t in reply.outputs)
    if not inputs:
        raise TargetError(f"model {_which(model, version)} declares no inputs at {address}")
    return ModelInfo(name=reply.name or model, version=version, platform=reply.platform,
                     inputs=inputs, outputs=outputs)


def grpc_modules() -> tuple[Any, Any]:
    """The V2 gRPC message and stub modules (package `inference`), from tritonclient."""
    try:
        from tritonclient.grpc import service_pb2, service_pb2_grpc
    except ImportError as exc:
        raise InvalidInputError("gRPC needs tritonclient and grpcio: pip install"
                                " tritonclient grpcio") from exc
    return service_pb2, service_pb2_grpc


def _which(model: str, version: str | None) -> str:
    return f"{model!r} version {version!r}" if version else repr(model)
