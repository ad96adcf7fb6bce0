"""The Open Inference Protocol over gRPC (grpc.aio): `inference.GRPCInferenceService`, with
Triton's model repository, statistics and model configuration extensions.

Handlers only translate: decode the message, call the data plane, encode the answer. What an
error means is decided once for every transport by `ferry.serve.outcomes.classify` (its table
gives each gRPC status); inference requests are counted and logged by the same
`RequestRecorder` as HTTP's. Messages larger than `max_message_bytes` are refused by gRPC
itself with RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from ferry.errors import ModelNotReadyError, NotFoundError
from ferry.serve import access
from ferry.serve.dataplane import DataPlane
from ferry.serve.grpc import codec
from ferry.serve.grpc.extensions import config_message, statistics_message
from ferry.serve.grpc.generated import inference_pb2 as pb
from ferry.serve.grpc.generated import inference_pb2_grpc
from ferry.serve.metrics import ServerMetrics
from ferry.serve.outcomes import STATUS, Failure, Outcome, classify
from ferry.serve.recorder import RequestRecord, RequestRecorder

PROTOCOL = "grpc"
STATUS_NAMES = {outcome: status.grpc for outcome, status in STATUS.items()}
READY = "READY"
MAX_SEND_MESSAGE_BYTES = 2**31 - 1
"""What tritonclient.grpc accepts; responses are not limited by the request limit."""

Request = TypeVar("Request")
Response = TypeVar("Response")
Servicer = TypeVar("Servicer", bound="InferenceServicer")
Handler = Callable[[Servicer, Request, Any], Awaitable[Response]]


MAX_STATUS_MESSAGE = 2048
"""Characters of an error message sent as the status details. They travel as metadata,
which clients cap at 8 KiB: a message that echoes a long client value would otherwise reach
the client as RESOURCE_EXHAUSTED instead of the error."""


async def abort(context: Any, failure: Failure) -> NoReturn:
    """End the RPC with the status and message of `failure` (bounded)."""
    message = failure.message
    if len(message) > MAX_STATUS_MESSAGE:
        message = message[:MAX_STATUS_MESSAGE - 3] + "..."
    await context.abort(grpc.StatusCode[failure.status.grpc], message,
                        trailing_metadata=failure.headers)
    raise AssertionError("ServicerContext.abort returns only by raising")  # pragma: no cover


def _rpc(handler: Handler[Servicer, Request, Response]) -> Handler[Servicer, Request, Response]:
    """Map whatever a handler raises to a gRPC status, and log the call."""

    @functools.wraps(handler)
    async def wrapper(self: Servicer, request: Request, context: Any) -> Response:
        started, status = time.perf_counter(), Outcome.OK
        try:
            return await handler(self, request, context)
        except Exception as exc:
            failure = classify(exc)
            status = failure.outcome
            await abort(context, failure)
        finally:
            if access.enabled():
                access.log_request(protocol=PROTOCOL, method=handler.__name__,
                                   model=getattr(request, "model_name", None)
                                   or getattr(request, "name", None),
                                   status=STATUS_NAMES[status],
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
    def __init__(self, dataplane: DataPlane, metrics: ServerMetrics,
                 access_log: bool = True):
        self.dataplane = dataplane
        self.recorder = RequestRecorder(metrics, PROTOCOL, access_log, dataplane.capture)

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

    async def ModelInfer(self, request: pb.ModelInferRequest,
                         context: Any) -> pb.ModelInferResponse:
        record = self.recorder.open("ModelInfer", "", context.peer())
        record.model = request.model_name
        try:
            response = await self._infer(request, record)
        except asyncio.CancelledError:
            self.recorder.abandoned(record)
            raise
        except Exception as exc:
            failure = classify(exc)
            self.recorder.failed(record, failure)
            await abort(context, failure)
        self.recorder.succeeded(record, response.ByteSize())
        return response

    async def _infer(self, request: pb.ModelInferRequest,
                     record: RequestRecord) -> pb.ModelInferResponse:
        name, version = codec.model_of(request.model_name, request.model_version)
        served = self.dataplane.served(name, version)
        self.recorder.resolved(record, served, request.ByteSize())
        decoded = codec.decode_request(request)
        record.request_id = decoded.id or ""  # kept if the model refuses the request
        pending = self.dataplane.begin_infer(served, decoded)
        self.recorder.queued(record, pending, version)
        await pending.future
        return codec.encode_response(pending.response(), decoded)

    @_rpc
    async def ModelConfig(self, request: pb.ModelConfigRequest,
                          context: Any) -> pb.ModelConfigResponse:
        name, version = codec.model_of(request.name, request.version, "name")
        return pb.ModelConfigResponse(
            config=config_message(self.dataplane.model_config(name, version)))

    @_rpc
    async def ModelStatistics(self, request: pb.ModelStatisticsRequest,
                              context: Any) -> pb.ModelStatisticsResponse:
        stats = self.dataplane.statistics(request.name, request.version or None)
        return pb.ModelStatisticsResponse(model_stats=[statistics_message(s) for s in stats])

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
        await self.dataplane.load(_model_name(request.model_name), bearer_token(context),
                                  codec.decode_parameters(request.parameters, "parameters"))
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
                  metrics: ServerMetrics, reuse_port: bool = False,
                  access_log: bool = True) -> tuple[grpc.aio.Server, int]:
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
        InferenceServicer(dataplane, metrics, access_log), server)
    address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    bound: int = server.add_insecure_port(address)
    return server, bound
