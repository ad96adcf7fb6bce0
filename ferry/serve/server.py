"""Run the server: HTTP (uvicorn) and gRPC (grpc.aio) on one asyncio loop per process, the
registry poll that drives hot reload, and graceful shutdown; several worker processes that
share the ports (SO_REUSEPORT) run under `ferry.serve.supervisor`.

Shutdown (SIGTERM or SIGINT, or `Server.stop()`): the server turns not ready, both protocols
stop taking requests and finish every one in flight (within `shutdown_grace_s`, HTTP and gRPC
at once), then the models are unloaded. The signals are handled here, not by uvicorn: its
handlers would drain HTTP alone and then re-raise the signal, killing the process with gRPC
calls still in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import signal
import socket
import threading
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import uvicorn

from ferry.monitor.capture.settings import CaptureSettings
from ferry.registry import Registry
from ferry.runtime.onnx_runtime import SessionSettings
from ferry.serve.dataplane import DataPlane
from ferry.serve.metrics import ServerMetrics
from ferry.serve.repository import ModelRepository
from ferry.serve.rest.app import create_app
from ferry.serve.rest.protocol import protocol_class
from ferry.serve.rest.upload import UploadDeadline
from ferry.serve.settings import ServeSettings
from ferry.serve.tally import FLUSH_INTERVAL_S
from ferry.serve.validation import at_least

if TYPE_CHECKING:
    from ferry.serve.capture import RecorderCapture

KEEP_ALIVE_S = 5.0
"""An HTTP connection idle this long after its last answer is closed (uvicorn's default)."""
log = logging.getLogger("ferry.serve")
STARTUP_TIMEOUT_S = 120.0
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def bind(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket. Its protocol is named (IPPROTO_TCP) so that asyncio turns on
    TCP_NODELAY for accepted connections; without it every keep-alive response waits ~40 ms
    for the client's delayed ACK."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class _Uvicorn(uvicorn.Server):
    """uvicorn's server without its signal handlers (see the module docstring)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Server:
    """One process's server. `start()` loads the models and opens the ports."""

    def __init__(self, uris: Sequence[str], settings: ServeSettings,
                 registry: Registry | None = None, reuse_port: bool = False):
        self.uris = list(uris)
        self.settings = settings
        self.registry = registry or Registry()
        self.reuse_port = reuse_port
        self.metrics = ServerMetrics()
        session = SessionSettings(intra_op_threads=settings.intra_op_threads,
                                  inter_op_threads=1, spinning=False)
        self.capture = self._capture(settings.capture)
        self.repository = ModelRepository(
            self.registry, settings.batching, self.metrics.batch_observer, session,
            trust_code=settings.trust_code, observe_stage=self.metrics.stage_observer,
            sample=None if self.capture is None else self.capture.batch_sampler)
        self.dataplane = DataPlane(self.repository, settings, self.capture,
                                   None if self.capture is None else self.capture.store)
        self.http_port = 0
        self.grpc_port: int | None = None
        self._uvicorn: uvicorn.Server | None = None
        self._grpc: Any = None
        """A started `grpc.aio.Server` (grpc is imported only when gRPC is on)."""
        self._tasks: list[asyncio.Task[None]] = []

    def _capture(self, settings: CaptureSettings) -> RecorderCapture | None:
        if not settings.enabled:
            return None
        from ferry.serve.capture import open_capture

        metrics = self.metrics
        return open_capture(settings, lambda reason: metrics.count(metrics.capture_dropped,
                                                                   reason).inc())

    async def start(self) -> None:
        if self.uris:
            for uri in self.uris:
                await self.repository.add(uri)
        else:
            await self.repository.add_all()
        await self._start_http()
        await self._start_grpc()
        self._tasks.append(asyncio.create_task(self._poll()))
        self._tasks.append(asyncio.create_task(self._flush_metrics()))
        self._start_drift_schedule()
        _freeze_heap()
        self.dataplane.ready = True
        log.info("serving %s on http://%s:%s (gRPC %s)", ", ".join(self.repository.names())
                 or "no models", self.settings.host, self.http_port, self.grpc_port)

    def _start_drift_schedule(self) -> None:
        """Judge drift every `drift_every_s` on what the capture sampled (none without it)."""
        if self.capture is None or not self.settings.drift_every_s:
            return
        from ferry.serve.drift_schedule import DriftSchedule

        schedule = DriftSchedule(self.repository, self.registry, self.capture.store,
                                 self.metrics, self.settings)
        self._tasks.append(asyncio.create_task(schedule.run()))

    async def _start_http(self) -> None:
        asgi = create_app(self.dataplane, self.metrics, self.settings.access_log)
        sock = bind(self.settings.host, self.settings.http_port, self.reuse_port)
        self.http_port = sock.getsockname()[1]
        timeout_s = self.settings.request_timeout_s
        config = uvicorn.Config(UploadDeadline(asgi, timeout_s), log_level="warning",
                                log_config=None, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=math.ceil(
                                    self.settings.shutdown_grace_s),
                                loop="none", http=protocol_class(asgi.calls, timeout_s),
                                # typed int, used as seconds by call_later (a float works)
                                timeout_keep_alive=KEEP_ALIVE_S)  # type: ignore[arg-type]
        self._uvicorn = _Uvicorn(config)
        self._tasks.append(asyncio.create_task(self._uvicorn.serve(sockets=[sock])))
        while not self._uvicorn.started:
            if self._tasks[-1].done():
                self._tasks[-1].result()
            await asyncio.sleep(0.01)

    async def _start_grpc(self) -> None:
        if self.settings.grpc_port is None:
            return
        from ferry.serve.grpc.servicer import create_server

        server, port = create_server(self.dataplane, self.settings.host, self.settings.grpc_port,
                                     self.settings.max_request_bytes, metrics=self.metrics,
                                     reuse_port=self.reuse_port,
                                     access_log=self.settings.access_log)
        await server.start()
        self._grpc, self.grpc_port = server, port

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            try:
                await self.repository.refresh()
            except Exception:
                log.exception("registry poll failed; serving what is loaded")

    async def _flush_metrics(self) -> None:
        """Add the request path's tallies to the metrics (other workers' scrapes see them)."""
        try:
            while True:
                await asyncio.sleep(FLUSH_INTERVAL_S)
                self.metrics.flush()
        finally:
            self.metrics.flush()

    async def wait(self) -> None:
        """Until uvicorn stops (`stop()`, or a failure, which this raises). Cancelling the
        wait leaves uvicorn running."""
        if self._tasks:
            await asyncio.shield(self._tasks[0])

    async def stop(self) -> None:
        """Stop taking requests, finish the ones in flight on both protocols (within the
        shutdown grace), then stop the registry poll and unload the models."""
        self.dataplane.ready = False
        await asyncio.gather(self._stop_http(), self._stop_grpc())
        for task in self._tasks[1:]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.repository.close(self.settings.shutdown_grace_s)
        self.dataplane.close()
        if self.capture is not None:  # every request is answered: write what they left
            await asyncio.to_thread(self.capture.close)

    async def _stop_http(self) -> None:
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True  # uvicorn waits for the connections in flight
            await asyncio.gather(self._tasks[0], return_exceptions=True)

    async def _stop_grpc(self) -> None:
        if self._grpc is not None:
            await self._grpc.stop(self.settings.shutdown_grace_s)


GC_THRESHOLDS = (50_000, 10, 10)
"""Collect the youngest generation after 50,000 more live objects, not 700 (CPython's
default). Python frees most of a request's objects by reference counting at once; what stays
alive is what waits in queues for a moment (the batcher's, the capture's: a second of
requests). With the default, those waiting objects start a collection every few requests and
are walked again and again as they age into the older generations: with capture on that cost
the event loop 40 µs of CPU per request (bench/monitor/RESULTS.md). Cyclic garbage waits a
little longer for its collection; a few megabytes at most."""


def _freeze_heap() -> None:
    """Move everything alive after start-up (the models, their runtimes, the libraries) out of
    the garbage collector's sight (`gc.freeze`), so the request path pays for collections of
    what it allocates itself, and collect the young generation less often (`GC_THRESHOLDS`).
    Without the freeze, the references a request leaves queued for a moment trigger full
    collections that walk the whole heap (+35 µs of CPU per request with capture on)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _serve(uris: Sequence[str], settings: ServeSettings, reuse_port: bool) -> None:
    server = Server(uris, settings, reuse_port=reuse_port)
    await server.start()
    with _stop_on_signals() as stopping:
        try:
            await _first_of(server.wait(), stopping.wait())
            log.info("stopping: finishing the requests in flight (up to %s s)",
                     settings.shutdown_grace_s)
        finally:
            await server.stop()


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[asyncio.Event]:
    """An event that SIGTERM and SIGINT set while the block runs (later ones change nothing:
    the shutdown in progress finishes within its grace)."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in SIGNALS:
        loop.add_signal_handler(signum, stopping.set)
    try:
        yield stopping
    finally:
        for signum in SIGNALS:
            loop.remove_signal_handler(signum)


async def _first_of(*awaitables: Awaitable[Any]) -> None:
    """Until one of `awaitables` is done (raising what it raised); the others are cancelled."""
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
    for task in done:
        task.result()


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (it comes with uvicorn[standard]), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def serve_process(uris: Sequence[str], settings: ServeSettings, reuse_port: bool = False) -> None:
    """Serve in this process until SIGTERM or SIGINT, then shut down gracefully."""
    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(_serve(uris, settings, reuse_port))


def run(uris: Sequence[str], settings: ServeSettings, workers: int = 1) -> None:
    """Serve until SIGTERM or SIGINT; with `workers` > 1, that many processes share the ports
    under a supervisor (`ferry.serve.supervisor`)."""
    at_least("workers", workers, 1, "processes sharing the ports")
    if workers == 1:
        serve_process(uris, settings)
        return
    from ferry.serve.supervisor import supervise

    supervise(uris, settings, workers)


@dataclass
class RunningServer:
    """A server on a thread of its own (tests, `ferry bench URI`)."""

    server: Server
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    @property
    def http_url(self) -> str:
        return f"http://{self.server.settings.host}:{self.server.http_port}"

    @property
    def grpc_address(self) -> str:
        return f"{self.server.settings.host}:{self.server.grpc_port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(
            timeout=STARTUP_TIMEOUT_S)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=STARTUP_TIMEOUT_S)


def serve_in_thread(uris: Sequence[str], host: str = "127.0.0.1", http_port: int = 0,
                    grpc_port: int | None = 0, registry: Registry | None = None,
                    settings: ServeSettings | None = None) -> RunningServer:
    """Start a server on a background thread and return once it answers."""
    settings = replace(settings or ServeSettings(), host=host, http_port=http_port,
                       grpc_port=grpc_port)
    loop = new_loop()
    server = Server(uris, settings, registry)
    thread = threading.Thread(target=loop.run_forever, name="ferry-server", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=STARTUP_TIMEOUT_S)
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        raise
    return RunningServer(server, loop, thread)
