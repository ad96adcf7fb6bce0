"""TensorFlow Serving's REST API, so that TF Serving (and KServe V1) clients work unchanged.

    GET  /v1/models/{name}[/versions/{v} | /labels/{label}]            versions and their state
    GET  /v1/models/{name}[/versions/{v} | /labels/{label}]/metadata   the signature
    POST /v1/models/{name}[/versions/{v} | /labels/{label}]:predict    rows or columns

TF Serving's version labels are ferry's aliases; with neither, the `production` alias or the
newest version answers, as on the V2 paths. One Starlette route takes every path under
`/v1/models/` (a `{name}` parameter would swallow `:predict`) and `parse_target` reads it.
This module only translates: the data plane resolves the version and queues the request on
the batcher the V2 endpoints use, and the request recorder counts it in `/metrics` and the
statistics. Errors are `{"error": ...}` in TF Serving's words ("Servable not found for
request", "Unrecognized servable version label", "Malformed request"), ferry's hint after them.
The bodies are `ferry.serve.rest.tfserving_codec`'s.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ferry.errors import AliasNotFoundError, InvalidInputError, NotFoundError
from ferry.serve.dataplane import DataPlane
from ferry.serve.metrics import ServerMetrics
from ferry.serve.model import ServedModel
from ferry.serve.outcomes import classify
from ferry.serve.recorder import RequestRecord, RequestRecorder
from ferry.serve.rest import codec
from ferry.serve.rest.infer import PROTOCOL, read_limited_body
from ferry.serve.rest.tfserving_codec import (
    DEFAULT_SIGNATURE,
    decode_predict,
    encode_answer,
    loads,
)
from ferry.serve.types import TensorMetadata
from ferry.text import is_whole_number

PREFIX = "/v1/models/"
JSON = "application/json"
PREDICT_METHOD = "tensorflow/serving/predict"
MAX_VERSION_DIGITS = 19
"""TF Serving's versions are int64."""
TF_DATATYPES = {
    "BOOL": "DT_BOOL", "UINT8": "DT_UINT8", "UINT16": "DT_UINT16", "UINT32": "DT_UINT32",
    "UINT64": "DT_UINT64", "INT8": "DT_INT8", "INT16": "DT_INT16", "INT32": "DT_INT32",
    "INT64": "DT_INT64", "FP16": "DT_HALF", "FP32": "DT_FLOAT", "FP64": "DT_DOUBLE",
    "BYTES": "DT_STRING",
}
"""The Open Inference Protocol's datatypes as TensorFlow's `DataType` names."""
_PATH = re.compile(r"(?P<name>[^/:]+)"
                   r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
                   r"(?P<action>/metadata|:predict|:classify|:regress)?")


class Action(StrEnum):
    """What a path asks of the model, by the path's ending."""

    STATUS = ""
    METADATA = "/metadata"
    PREDICT = ":predict"
    CLASSIFY = ":classify"
    REGRESS = ":regress"

    @property
    def methods(self) -> tuple[str, ...]:
        return ("GET", "HEAD") if self in (Action.STATUS, Action.METADATA) else ("POST",)


@dataclass(frozen=True, slots=True)
class Target:
    """A `/v1/models/...` path, read."""

    name: str
    version: str | None
    """A version number or a label (alias), as the repository takes them; None: the default."""
    action: Action

    @property
    def servable(self) -> str:
        """The version asked for, in TF Serving's words."""
        if self.version is None:
            return f"Latest({self.name})"
        return f"Specific({self.name}, {self.version})"


def parse_target(method: str, path: str, full_path: str) -> Target:
    """What `path` (after `/v1/models/`) asks for; 400 as TF Serving's for anything else."""
    match = _PATH.fullmatch(path)
    action = Action(match["action"] or "") if match else None
    if match is None or action is None or method not in action.methods:
        raise InvalidInputError(f"Malformed request: {method} {full_path:.200}: see /docs for"
                                " the /v1/models paths")
    version, label = match["version"], match["label"]
    if version is not None and not _is_number(version):
        raise InvalidInputError(f"Failed to convert version: {version:.40} to numeric.")
    if label is not None and is_whole_number(label):
        raise InvalidInputError(f"version label {label:.40} is a number: ask for"
                                f" /versions/{label:.40}")
    return Target(match["name"], version or label, action)


def _is_number(version: str) -> bool:
    return version.isascii() and version.isdigit() and len(version) <= MAX_VERSION_DIGITS


@contextmanager
def servable_errors(target: Target) -> Iterator[None]:
    """The repository's lookup errors in TF Serving's words, with ferry's after them."""
    try:
        yield
    except AliasNotFoundError as exc:
        raise InvalidInputError(f"Unrecognized servable version label: {target.version};"
                                f" {exc}", model=target.name) from exc
    except NotFoundError as exc:
        raise NotFoundError(f"Servable not found for request: {target.servable}; {exc}",
                            model=target.name) from exc


class TFServingAPI:
    """The `/v1/models/...` endpoints, answered by the data plane."""

    def __init__(self, dataplane: DataPlane, recorder: RequestRecorder):
        self.dataplane = dataplane
        self.recorder = recorder

    async def handle(self, request: Request) -> Response:
        target = parse_target(request.method, request.path_params["path"], request.url.path)
        if target.action == Action.STATUS:
            return _json(self.status(target))
        if target.action == Action.METADATA:
            return _json(self.metadata(target))
        if target.action != Action.PREDICT:
            raise InvalidInputError(f"{target.action} is not supported (it takes tf.Example"
                                    " inputs): only :predict is")
        return await self.predict(request, target)

    def status(self, target: Target) -> dict[str, Any]:
        """Every loaded version of the model, or the one asked for."""
        with servable_errors(target):
            if target.version is None:
                versions = self.dataplane.model_metadata(target.name).versions
            else:
                versions = (self.dataplane.served(target.name, target.version).version_label,)
        return {"model_version_status": [_available(version) for version in versions]}

    def metadata(self, target: Target) -> dict[str, Any]:
        with servable_errors(target):
            served = self.dataplane.served(target.name, target.version)
        return metadata_document(served)

    async def predict(self, request: Request, target: Target) -> Response:
        """Counted and logged like a V2 inference request (the recorder closes it once)."""
        client = request.client.host if request.client else ""
        record = self.recorder.open("POST", request.url.path, client)
        record.model = target.name
        try:
            payload = await self._predict(request, target, record)
        except asyncio.CancelledError:
            self.recorder.abandoned(record)
            raise
        except Exception as exc:
            return self._failed(record, exc)
        self.recorder.succeeded(record, len(payload))
        return Response(payload, media_type=JSON)

    async def _predict(self, request: Request, target: Target, record: RequestRecord) -> bytes:
        body = await read_limited_body(request.receive, dict(request.scope["headers"]),
                                       self.dataplane.settings.max_request_bytes)
        with servable_errors(target):
            served = self.dataplane.served(target.name, target.version)
        self.recorder.resolved(record, served, len(body))
        call = decode_predict(loads(body), served.input_metadata)
        pending = self.dataplane.begin_infer(served, call.request)
        self.recorder.queued(record, pending, target.version)
        await pending.future
        return encode_answer(pending.response(), call.format)

    def _failed(self, record: RequestRecord, exc: Exception) -> Response:
        failure = classify(exc)
        body = codec.dumps({"error": failure.message})
        self.recorder.failed(record, failure, len(body))
        return Response(body, failure.status.http, dict(failure.headers), media_type=JSON)


def _json(document: dict[str, Any]) -> Response:
    return Response(codec.dumps(document), media_type=JSON)


def _available(version: str) -> dict[str, Any]:
    """A loaded version, as TF Serving's `ModelVersionStatus` (ferry lists only loaded ones)."""
    return {"version": version, "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}


def metadata_document(served: ServedModel) -> dict[str, Any]:
    """The version's one signature as TF Serving's JSON `SignatureDefMap`."""
    signature = {"inputs": _tensor_infos(served.input_metadata),
                 "outputs": _tensor_infos(served.output_metadata),
                 "method_name": PREDICT_METHOD}
    return {"model_spec": {"name": served.name, "signature_name": "",
                           "version": served.version_label},
            "metadata": {"signature_def": {"signature_def": {DEFAULT_SIGNATURE: signature}}}}


def _tensor_infos(tensors: tuple[TensorMetadata, ...]) -> dict[str, Any]:
    """`TensorInfo`s by name; sizes are strings, as protobuf's JSON writes int64."""
    return {tensor.name: {
        "dtype": TF_DATATYPES.get(tensor.datatype, "DT_INVALID"),
        "tensor_shape": {"dim": [{"size": str(size), "name": ""} for size in tensor.shape],
                         "unknown_rank": False},
        "name": f"{tensor.name}:0"} for tensor in tensors}


def tfserving_routes(dataplane: DataPlane, metrics: ServerMetrics) -> list[Route]:
    """The route for `create_app`. Its recorder shares the server's metrics with the V2 one
    (same series); the access log middleware already writes these requests' lines."""
    api = TFServingAPI(dataplane, RequestRecorder(metrics, PROTOCOL, access_log=False,
                                                  capture=dataplane.capture))
    return [Route(PREFIX + "{path:path}", api.handle, methods=["GET", "POST"])]
