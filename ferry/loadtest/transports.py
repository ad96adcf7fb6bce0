"""How a pre-built request reaches the server: HTTP (JSON or binary body) or gRPC.

A `Transport` hands out `Session`s. An HTTP session is one keep-alive connection (reopened after a
failure); gRPC sessions all share one HTTP/2 channel, which multiplexes. `Session.send(i)` sends
request `i` of the pre-built pool and returns None on success or an error key: the HTTP status
code ("404"), the gRPC status name ("UNAVAILABLE"), "timeout" or "connection".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ferry.loadtest.httpclient import Endpoint, HttpConnection

TIMEOUT = "timeout"
CONNECTION = "connection"
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
MAX_SAMPLES = 3
GRPC_MAX_MESSAGE = 256 * 1024 * 1024


class Session(Protocol):
    """Sends requests one at a time."""

    async def send(self, index: int) -> str | None: ...

    def close(self) -> None: ...


class Transport(Protocol):
    """Opens sessions to one target; `start` runs inside the event loop before any send."""

    name: str
    error_samples: list[str]

    async def start(self) -> None: ...

    def session(self) -> Session: ...

    async def close(self) -> None: ...


class HttpTransport:
    """POSTs pre-encoded requests on keep-alive HTTP/1.1 connections."""

    def __init__(self, endpoint: Endpoint, requests: Sequence[bytes], timeout: float,
                 name: str = "http") -> None:
        self.endpoint = endpoint
        self.requests = list(requests)
        self.timeout = timeout
        self.name = name
        self.error_samples: list[str] = []

    async def start(self) -> None:
        return None

    def session(self) -> HttpSession:
        return HttpSession(self)

    async def close(self) -> None:
        return None

    def note(self, sample: str) -> None:
        if len(self.error_samples) < MAX_SAMPLES:
            self.error_samples.append(sample[:300])


class HttpSession:
    """One connection of an `HttpTransport`."""

    def __init__(self, transport: HttpTransport) -> None:
        self._transport = transport
        self._requests = transport.requests
        self._timeout = transport.timeout
        self._connection: HttpConnection | None = None

    async def send(self, index: int) -> str | None:
        connection = self._connection
        try:
            if connection is None or connection.closed:
                connection = self._connection = await self._transport.endpoint.connect()
            status, body = await connection.request(self._requests[index], self._timeout)
        except TimeoutError:
            self.close()
            return TIMEOUT
        except OSError as exc:  # ConnectionError is an OSError
            self.close()
            self._transport.note(f"{type(exc).__name__}: {exc}")
            return CONNECTION
        if status == 200:
            return None
        self._transport.note(f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}")
        return str(status)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class GrpcTransport:
    """Sends pre-serialized `ModelInferRequest`s on one grpc.aio channel (bytes in, bytes out)."""

    def __init__(self, address: str, requests: Sequence[bytes], timeout: float) -> None:
        self.address = address
        self.requests = list(requests)
        self.timeout = timeout
        self.name = "grpc"
        self.error_samples: list[str] = []
        self._channel: Any = None
        self._call: Any = None

    async def start(self) -> None:
        import grpc

        options = [("grpc.max_send_message_length", GRPC_MAX_MESSAGE),
                   ("grpc.max_receive_message_length", GRPC_MAX_MESSAGE)]
        channel = grpc.aio.insecure_channel(self.address, options=options)
        self._channel = channel
        self._call = channel.unary_unary(MODEL_INFER)  # no (de)serializers: raw bytes

    def session(self) -> GrpcSession:
        return GrpcSession(self)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    def note(self, sample: str) -> None:
        if len(self.error_samples) < MAX_SAMPLES:
            self.error_samples.append(sample[:300])


class GrpcSession:
    """A view of the shared channel; closing it closes nothing."""

    def __init__(self, transport: GrpcTransport) -> None:
        import grpc

        self._transport = transport
        self._call = transport._call
        self._rpc_error = grpc.aio.AioRpcError
        self._deadline = grpc.StatusCode.DEADLINE_EXCEEDED

    async def send(self, index: int) -> str | None:
        try:
            await self._call(self._transport.requests[index], timeout=self._transport.timeout)
        except self._rpc_error as exc:
            if exc.code() == self._deadline:
                return TIMEOUT
            self._transport.note(f"gRPC {exc.code().name}: {exc.details()}")
            return str(exc.code().name)
        return None

    def close(self) -> None:
        return None
