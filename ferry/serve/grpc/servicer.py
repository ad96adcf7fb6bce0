"""The Open Inference Protocol over gRPC (grpc.aio): `inference.GRPCInferenceService`.

Handlers only translate: decode the message, call the data plane, encode the answer. ferry's
errors become gRPC status codes here, at the edge:

    InvalidInputError                         INVALID_ARGUMENT
    RequestTooLargeError                      RESOURCE_EXHAUSTED
    NotFoundError                             NOT_FOUND
    UnauthorizedError                         UNAUTHENTICATED
    ModelNotReadyError, ServerOverloadedError UNAVAILABLE (overload adds `retry-after` metadata)
    InferenceTimeoutError                     DEADLINE_EXCEEDED
    InferenceError, anything else             INTERNAL (logged; the server keeps serving)

Messages larger than `max_message_bytes` are refused by gRPC itself with RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from ferry.errors import (
    FerryError,
    InferenceTimeoutError,
    InvalidInputError,
    ModelNotReadyError,
    NotFoundError,
    RequestTooLargeError,
    ServerOverloadedError,
    UnauthorizedError,
)
from ferry.serve import access
from ferry.serve.dataplane import DataPlane
from ferry.serve.grpc import codec
from ferry.serve.grpc.generated import inference_pb2 as pb
from ferry.serve.grpc.generated import inference_pb2_grpc
from ferry.serve.metrics import ServerMetrics

log = logging.getLogger("ferry.serve")

PROTOCOL = "grpc"
READY = "READY"
MAX_SEND_MESSAGE_BYTES = 2**31 - 1
"""What tritonclient.grpc accepts; responses are not limited by the request limit."""

_STATUS: tuple[tuple[type[FerryError], grpc.StatusCode], ...] = (
    (RequestTooLargeError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (UnauthorizedError, grpc.StatusCode.UNAUTHENTICATED),
    (ModelNotReadyError, grpc.StatusCode.UNAVAILABLE),
    (ServerOverloadedError, grpc.StatusCode.UNAVAILABLE),
    (InferenceTimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
)
_UNSUPPORTED_LOAD_PARAMETERS = ("config",)
_FILE_OVERRIDE = "file:"

Request = TypeVar("Request")
Response = TypeVar("Response")
Servicer = TypeVar("Servicer", bound="InferenceServicer")
Handler = Callable[[Servicer, Request, Any], Awaitable[Response]]


def status_of(exc: BaseException) -> grpc.StatusCode:
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


async def abort(context: Any, exc: Exception, rpc: str) -> NoReturn:
    """End the RPC with the status that fits `exc`."""
    code = status_of(exc)
    message = str(exc) if isinstance(exc, FerryError) else "internal server error"
    if code == grpc.StatusCode.INTERNAL:
        log.error("gRPC %s failed: %s", rpc, exc, exc_info=not isinstance(exc, FerryError))
    trailers: tuple[tuple[str, str], ...] = ()
    if isinstance(exc, ServerOverloadedError):
        trailers = (("retry-after", str(max(1, round(exc.retry_after_s)))),)
    elif isinstance(exc, UnauthorizedError):
        trailers = (("www-authenticate", "Bearer"),)
    await context.abort(code, message, trailing_metadata=trailers)
    raise AssertionError("ServicerContext.abort returns only by raising")  # pragma: no cover


def _rpc(handler: Handler[Servicer, Request, Response]) -> Handler[Servicer, Request, Response]:
    """Map whatever a handler raises to a gRPC status."""

    @functools.wraps(handler)
    async def wrapper(self: Servicer, request: Request, context: Any) -> Response:
        started, status = time.perf_counter(), grpc.StatusCode.OK
        try:
            return await handler(self, request, context)
        except Exception as exc:
            status = status_of(exc)
            await abort(context, exc, handler.__name__)
        finally:
            if access.enabled():
                access.log_request(protocol="grpc", method=handler.__name__,
                                   model=getattr(request, "model_name", None)
                                   or getattr(request, "name", None), status=status.name,
                                   duration_ms=round((time.perf_counter() - started) * 1000, 3),
                                   client=context.peer())

    return wrapper


def bearer_token(context: Any) -> str | None:
    """The token of an `authorization: Bearer ...` metadata entry, if the call has one."""
    for key, value in context.invocation_metadata() or ():
        if key.lower() == "authorization":
            text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            if text.lower().startswith("bearer "):
                return text[7:].strip() or None
    return None


class InferenceServicer(inference_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, dataplane: DataPlane, metrics: ServerMetrics | None = None):
        self.dataplane = dataplane
        self.metrics = metrics

    @_rpc
    async def ServerLive(self, request: pb.ServerLiveRequest,
                         context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self.dataplane.live())

    @_rpc
    async def ServerReady(self, request: pb.ServerReadyRequest,
                          context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.dataplane.server_ready())

    @_rpc
    async def ModelReady(self, request: pb.ModelReadyRequest,
                         context: Any) -> pb.ModelReadyResponse:
        name, version = codec.model_of(request.name, request.version, "name")
        try:
            ready = self.dataplane.model_ready(name, version)
        except (NotFoundError, ModelNotReadyError):
            ready = False
        return pb.ModelReadyResponse(ready=ready)

    @_rpc
    async def ServerMetadata(self, request: pb.ServerMetadataRequest,
                             context: Any) -> pb.ServerMetadataResponse:
        meta = self.dataplane.server_metadata()
        return pb.ServerMetadataResponse(name=meta.name, version=meta.version,
                                         extensions=list(meta.extensions))

    @_rpc
    async def ModelMetadata(self, request: pb.ModelMetadataRequest,
                            context: Any) -> pb.ModelMetadataResponse:
        name, version = codec.model_of(request.name, request.version, "name")
        meta = self.dataplane.model_metadata(name, version)
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta.name, versions=list(meta.versions), platform=meta.platform,
            inputs=[tensor(name=t.name, datatype=t.datatype, shape=list(t.shape))
                    for t in meta.inputs],
            outputs=[tensor(name=t.name, datatype=t.datatype, shape=list(t.shape))
                     for t in meta.outputs])

    @_rpc
    async def ModelInfer(self, request: pb.ModelInferRequest,
                         context: Any) -> pb.ModelInferResponse:
        started = time.perf_counter()
        name, label = request.model_name, request.model_version
        metrics = self.metrics
        if metrics is not None:
            metrics.inflight.labels(PROTOCOL).inc()
        try:
            model, version = codec.model_of(request.model_name, request.model_version)
            if metrics is not None:
                metrics.request_size.labels(PROTOCOL).observe(request.ByteSize())
            decoded = codec.decode_request(request)
            result = await self.dataplane.infer(model, version, decoded)
            label = result.model_version
            response = codec.encode_response(result, decoded,
                                             raw=codec.uses_raw_contents(request))
        except Exception as exc:
            if metrics is not None:
                metrics.requests.labels(name, label, PROTOCOL, status_of(exc).name).inc()
            raise
        finally:
            if metrics is not None:
                metrics.inflight.labels(PROTOCOL).dec()
        if metrics is not None:
            metrics.requests.labels(name, label, PROTOCOL, grpc.StatusCode.OK.name).inc()
            metrics.request_duration.labels(name, label, PROTOCOL).observe(
                time.perf_counter() - started)
            metrics.response_size.labels(PROTOCOL).observe(response.ByteSize())
        return response

    @_rpc
    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest,
                              context: Any) -> pb.RepositoryIndexResponse:
        index = pb.RepositoryIndexResponse.ModelIndex
        return pb.RepositoryIndexResponse(models=[
            index(name=row.name, version=row.version, state=row.state, reason=row.reason)
            for row in self.dataplane.repository_index()
            if not request.ready or row.state == READY])

    @_rpc
    async def RepositoryModelLoad(self, request: pb.RepositoryModelLoadRequest,
                                  context: Any) -> pb.RepositoryModelLoadResponse:
        for key in request.parameters:
            if key in _UNSUPPORTED_LOAD_PARAMETERS or key.startswith(_FILE_OVERRIDE):
                raise InvalidInputError(f"load parameter {key!r} is not supported: ferry loads"
                                        " models as registered, without config or file"
                                        " overrides")
        await self.dataplane.load(_model_name(request.model_name), bearer_token(context))
        return pb.RepositoryModelLoadResponse()

    @_rpc
    async def RepositoryModelUnload(self, request: pb.RepositoryModelUnloadRequest,
                                    context: Any) -> pb.RepositoryModelUnloadResponse:
        # `unload_dependents` (always sent by tritonclient) has nothing to act on: no ensembles.
        await self.dataplane.unload(_model_name(request.model_name), bearer_token(context))
        return pb.RepositoryModelUnloadResponse()


def _model_name(name: str) -> str:
    return codec.model_of(name, "")[0]


def create_server(dataplane: DataPlane, host: str, port: int, max_message_bytes: int,
                  metrics: ServerMetrics | None = None,
                  reuse_port: bool = False) -> tuple[grpc.aio.Server, int]:
    """A grpc.aio server for `dataplane`, bound but not started, and the port it bound.

    Call it from a coroutine on the event loop that will run the server (grpc.aio binds the
    server to the loop running at creation), then `await server.start()`; stop it with
    `await server.stop(grace_s)`. Port 0 binds any free port. Raises RuntimeError when the
    address cannot be bound (port reuse is off, so a port already in use fails here).
    """
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", MAX_SEND_MESSAGE_BYTES),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
    ])
    inference_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(dataplane, metrics), server)
    address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    bound: int = server.add_insecure_port(address)
    return server, bound
