"""The server's settings in one place, with their defaults as named constants."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ferry.serve.batching import BatchSettings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8000
DEFAULT_GRPC_PORT = 8001
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
"""Requests above this size are refused with 413 (gRPC: RESOURCE_EXHAUSTED)."""
DEFAULT_REQUEST_TIMEOUT_S = 30.0
DEFAULT_POLL_INTERVAL_S = 0.5
"""How often the server re-reads the registry for alias moves (hot reload within 2 s)."""
DEFAULT_SHUTDOWN_GRACE_S = 10.0
DEFAULT_INTRA_OP_THREADS = 1
"""ONNX Runtime threads per model call when the version records none: batching, instances
and worker processes spread load over cores; one thread per call avoids spinning pools
competing with the event loop."""
SERVER_NAME = "ferry"


@dataclass(frozen=True)
class ServeSettings:
    host: str = DEFAULT_HOST
    http_port: int = DEFAULT_HTTP_PORT
    grpc_port: int | None = DEFAULT_GRPC_PORT
    """None: no gRPC server."""
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S
    shutdown_grace_s: float = DEFAULT_SHUTDOWN_GRACE_S
    admin_token: str | None = field(default_factory=lambda: os.environ.get("FERRY_ADMIN_TOKEN"))
    """Bearer token that the repository endpoints (load/unload) require, when set."""
    access_log: bool = True
    intra_op_threads: int = DEFAULT_INTRA_OP_THREADS
    batching: BatchSettings = field(default_factory=BatchSettings)
