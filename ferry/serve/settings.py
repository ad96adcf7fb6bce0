"""The server's settings in one place, with their defaults as named constants."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ferry.errors import InvalidInputError
from ferry.monitor.capture.settings import CaptureSettings
from ferry.serve import validation
from ferry.serve.batching import BatchSettings
from ferry.serve.defaults import (
    DEFAULT_GRPC_PORT,
    DEFAULT_HOST,
    DEFAULT_HTTP_PORT,
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_REQUEST_TIMEOUT_S,
    DEFAULT_STORED_REFRESH_S,
)

DEFAULT_POLL_INTERVAL_S = 0.5
"""How often the server re-reads the registry for alias moves (hot reload within 2 s)."""
DEFAULT_SHUTDOWN_GRACE_S = 10.0
DEFAULT_INTRA_OP_THREADS = 1
"""ONNX Runtime threads per model call when the version records none: batching, instances
and worker processes spread load over cores; one thread per call avoids spinning pools
competing with the event loop."""
DEFAULT_DRIFT_EVERY_S = 600.0
"""Ten minutes between the server's drift runs: a model answering a request a second fills a
window past the 200 rows a test needs, and a shift shows within the hour."""
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
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    drift_every_s: float = DEFAULT_DRIFT_EVERY_S
    """Seconds between drift runs over every served version with a reference profile
    (`ferry.serve.drift_schedule`); 0: none. Needs the capture."""
    stored_refresh_s: float = DEFAULT_STORED_REFRESH_S
    """Seconds between checks for a newer batch run behind `/v2/models/{name}/predictions`
    (`ferry.batch.stored`)."""
    trust_code: bool = False
    """Load versions with stored Python pre/post steps (`ferry.steps`), running their code;
    without it such a version fails to load, naming `--trust-code`."""

    def __post_init__(self) -> None:
        if not self.host:
            raise InvalidInputError("host must be an address to listen on, such as 127.0.0.1"
                                    " or 0.0.0.0 (every interface)")
        validation.port("http_port", self.http_port)
        validation.port("grpc_port", self.grpc_port)
        validation.at_least("max_request_bytes", self.max_request_bytes, 1,
                            "the largest request body")
        validation.positive("request_timeout_s", self.request_timeout_s, "per request")
        validation.positive("poll_interval_s", self.poll_interval_s, "registry polls")
        validation.not_negative("shutdown_grace_s", self.shutdown_grace_s,
                                "seconds to finish requests in flight at shutdown")
        validation.at_least("intra_op_threads", self.intra_op_threads, 0,
                            "threads per model call; 0: ONNX Runtime's default")
        validation.not_negative("drift_every_s", self.drift_every_s,
                                "seconds between drift runs; 0: none")
        validation.positive("stored_refresh_s", self.stored_refresh_s,
                            "between checks for a newer batch run")
