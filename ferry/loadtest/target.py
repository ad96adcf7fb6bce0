"""Which server to load and how: parse a target, read its model's metadata, build the requests.

A target is an `http(s)://` URL of any Open Inference Protocol server, or with gRPC a
`host:port` (or `grpc://host:port`). Anything else is a registry URI for the CLI to serve.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ferry.errors import InvalidInputError
from ferry.loadtest.bodies import Batch, binary_body, grpc_body, json_body
from ferry.loadtest.httpclient import Endpoint
from ferry.loadtest.metadata import ModelInfo, TensorSpec, grpc_metadata, http_metadata
from ferry.loadtest.transports import GrpcTransport, HttpTransport, Transport

PROTOCOLS = ("http", "grpc")
_ADDRESS = re.compile(r"(?:grpc://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})/?")
_IP_OR_LOCAL = re.compile(r"\[.*\]|localhost|\d{1,3}(?:\.\d{1,3}){3}")


@dataclass(frozen=True)
class Target:
    """A server to load: protocol, where it listens, the model and the wire encoding."""

    protocol: str  # "http" or "grpc"
    location: str  # base URL (http) or host:port (grpc)
    model: str
    version: str | None = None
    binary: bool = False

    @property
    def encoding(self) -> str:
        if self.protocol == "grpc":
            return "gRPC raw_input_contents"
        return "HTTP binary tensors" if self.binary else "HTTP JSON"


def server_location(text: str, protocol: str) -> str | None:
    """The URL or gRPC address `text` names, or None if it is not one (a registry URI).

    With HTTP, `localhost:8000` or `127.0.0.1:8000` is read as `http://...`; other `name:N`
    text is a registry URI (`iris:3`). With gRPC any `host:port` is an address; write
    `models:/iris:3` for a registry version.
    """
    if protocol not in PROTOCOLS:
        raise InvalidInputError(f"unknown protocol {protocol!r}: use http or grpc")
    text = text.strip()
    if text.startswith(("http://", "https://")):
        if protocol == "grpc":
            raise InvalidInputError(f"{text} is an HTTP URL; with --protocol grpc give"
                                    " HOST:PORT of the gRPC server")
        try:
            Endpoint(text)
        except ValueError as exc:
            raise InvalidInputError(f"invalid URL {text!r}: give http://HOST:PORT") from exc
        return text.rstrip("/")
    match = _ADDRESS.fullmatch(text)
    if match is None or not 0 < int(match.group(2)) < 65536:
        if text.startswith("grpc://"):
            raise InvalidInputError(f"invalid gRPC address {text!r}: give grpc://HOST:PORT")
        return None
    host, port = match.group(1), match.group(2)
    if protocol == "grpc":
        return f"{host}:{port}"
    if _IP_OR_LOCAL.fullmatch(host):
        return f"http://{host}:{port}"
    return None


def discover(target: Target) -> ModelInfo:
    """The model's metadata, read from the target (raises a ferry error if it cannot)."""
    if target.protocol == "grpc":
        return grpc_metadata(target.location, target.model, target.version)
    return http_metadata(target.location, target.model, target.version)


def transport_factory(target: Target, inputs: Sequence[TensorSpec], batches: Sequence[Batch],
                      timeout: float) -> Callable[[], Transport]:
    """Encode every batch for the target's wire format; return a maker of its transport."""
    if target.protocol == "grpc":
        messages = [grpc_body(target.model, target.version, inputs, b) for b in batches]
        address = target.location
        return lambda: GrpcTransport(address, messages, timeout)
    endpoint = Endpoint(target.location)
    path = endpoint.model_path(target.model, target.version, "/infer")
    requests = []
    for batch in batches:
        if target.binary:
            body, header_length = binary_body(inputs, batch)
            headers = {"Content-Type": "application/octet-stream",
                       "Inference-Header-Content-Length": str(header_length)}
        else:
            body = json_body(inputs, batch)
            headers = {"Content-Type": "application/json"}
        requests.append(endpoint.post(path, body, headers))
    name = "http-binary" if target.binary else "http-json"
    return lambda: HttpTransport(endpoint, requests, timeout, name)
