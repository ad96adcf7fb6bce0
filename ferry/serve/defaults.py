"""The server's default settings as plain constants, importable without the server itself
(numpy, the batcher): `ferry serve --help` shows them without loading the server.

`ferry.serve.settings` and `ferry.serve.batching` take their dataclasses' defaults from here.
"""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8000
DEFAULT_GRPC_PORT = 8001
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
"""Requests above this size are refused with 413 (gRPC: RESOURCE_EXHAUSTED)."""
DEFAULT_REQUEST_TIMEOUT_S = 30.0
DEFAULT_MAX_BATCH_SIZE = 64
DEFAULT_MAX_QUEUE_DELAY_S = 0.0
DEFAULT_MAX_QUEUE_SIZE = 1024
DEFAULT_INSTANCES = 1
DEFAULT_STORED_REFRESH_S = 2.0
"""How often, at most, stored predictions (`/v2/models/{name}/predictions`) ask the registry
for a newer completed batch run."""
