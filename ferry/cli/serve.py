"""`ferry serve`: the Open Inference Protocol server over HTTP and gRPC.

The server is imported when the command runs; its defaults come from `ferry.serve.defaults`,
which imports nothing, so `ferry --help` stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ferry.cli.output import command_line, handles_errors
from ferry.monitor.capture.settings import DEFAULT_ROWS_PER_S
from ferry.serve.defaults import (
    DEFAULT_GRPC_PORT,
    DEFAULT_HOST,
    DEFAULT_HTTP_PORT,
    DEFAULT_INSTANCES,
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_QUEUE_DELAY_S,
    DEFAULT_MAX_QUEUE_SIZE,
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_REQUEST_TIMEOUT_S,
    DEFAULT_STORED_REFRESH_S,
)
from ferry.uri import ModelURI


@handles_errors
def serve(
    uris: Annotated[list[str] | None, typer.Argument(
        help="Models to serve: NAME (latest and aliased versions), NAME:3 or NAME@ALIAS."
             " None: every registered model.")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = DEFAULT_HOST,
    http_port: Annotated[int, typer.Option(help="HTTP port.")] = DEFAULT_HTTP_PORT,
    grpc_port: Annotated[int, typer.Option(help="gRPC port (-1: no gRPC).")] = DEFAULT_GRPC_PORT,
    workers: Annotated[int, typer.Option(help="Processes sharing the ports.")] = 1,
    max_batch_size: Annotated[int, typer.Option(help="Rows per batched model call.")
                              ] = DEFAULT_MAX_BATCH_SIZE,
    max_queue_delay_ms: Annotated[float, typer.Option(
        help="Wait this long for a fuller batch when others are queued.")
    ] = DEFAULT_MAX_QUEUE_DELAY_S * 1000,
    preferred_batch_size: Annotated[list[int] | None, typer.Option(
        help="Batch sizes worth waiting for (repeatable).")] = None,
    max_queue_size: Annotated[int, typer.Option(help="Requests queued per model before 503.")
                              ] = DEFAULT_MAX_QUEUE_SIZE,
    instances: Annotated[int, typer.Option(help="Model calls that may run at once (threads)"
                                           " per model.")] = DEFAULT_INSTANCES,
    max_request_mb: Annotated[float, typer.Option(help="Largest request body (413 above).")
                              ] = DEFAULT_MAX_REQUEST_BYTES / 2**20,
    timeout_s: Annotated[float, typer.Option(help="Per-request timeout.")
                         ] = DEFAULT_REQUEST_TIMEOUT_S,
    admin_token: Annotated[str | None, typer.Option(
        envvar="FERRY_ADMIN_TOKEN", help="Bearer token required by load/unload.")] = None,
    access_log: Annotated[bool, typer.Option(help="One JSON line per request.")] = True,
    capture: Annotated[bool, typer.Option(
        help="Record every request (and a sample of its rows) in the monitoring store.")
    ] = True,
    capture_rows_per_s: Annotated[int, typer.Option(
        help="Rows kept per model version per second before reservoir sampling.")
    ] = DEFAULT_ROWS_PER_S,
    drift_every: Annotated[str, typer.Option(
        help="Judge drift of every served version this often (30s, 10m, 1h; 0: never).")
    ] = "10m",
    stored_refresh_s: Annotated[float, typer.Option(
        help="Look for a newer batch run behind stored predictions at most this often.")
    ] = DEFAULT_STORED_REFRESH_S,
    trust_code: Annotated[bool, typer.Option(
        help="Allow versions with stored Python pre/post steps (read them with `ferry show`"
             " first): serving them runs their code.")] = False,
) -> None:
    """Serve models from the registry over the Open Inference Protocol (HTTP and gRPC)."""
    from ferry.monitor.capture.settings import CaptureSettings
    from ferry.monitor.durations import parse_duration
    from ferry.serve import access
    from ferry.serve.batching import BatchSettings
    from ferry.serve.server import run
    from ferry.serve.settings import ServeSettings
    from ferry.serve.validation import at_least

    with command_line():  # the settings check the values typed: a mistake exits with 2
        for uri in uris or []:
            ModelURI.parse(uri)
        at_least("workers", workers, 1, "processes sharing the ports")
        batching = BatchSettings(max_batch_size=max_batch_size,
                                 max_queue_delay_s=max_queue_delay_ms / 1000,
                                 preferred_batch_sizes=tuple(preferred_batch_size or ()),
                                 max_queue_size=max_queue_size, instances=instances)
        settings = ServeSettings(host=host, http_port=http_port,
                                 grpc_port=None if grpc_port < 0 else grpc_port,
                                 max_request_bytes=int(max_request_mb * 2**20),
                                 request_timeout_s=timeout_s, admin_token=admin_token,
                                 access_log=access_log, batching=batching,
                                 capture=CaptureSettings(
                                     enabled=capture, sample_rows_per_s=capture_rows_per_s),
                                 drift_every_s=parse_duration(
                                     drift_every, "--drift-every", allow_zero=True
                                 ).total_seconds(),
                                 stored_refresh_s=stored_refresh_s, trust_code=trust_code)
    access.configure_logging(access_log)  # JSON lines on stderr (ferry.serve.access)
    run(uris or [], settings, workers=workers)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
