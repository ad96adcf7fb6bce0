"""Run the server: HTTP (uvicorn) and gRPC (grpc.aio) on one asyncio loop per process, the
registry poll that drives hot reload, graceful shutdown, and several worker processes that
share the ports (SO_REUSEPORT) to use every core.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import uvicorn

from ferry.registry import Registry
from ferry.runtime.onnx_runtime import SessionSettings
from ferry.serve.dataplane import DataPlane
from ferry.serve.metrics import ServerMetrics
from ferry.serve.repository import ModelRepository
from ferry.serve.rest.app import create_app
from ferry.serve.rest.protocol import protocol_class
from ferry.serve.settings import ServeSettings

log = logging.getLogger("ferry.serve")
STARTUP_TIMEOUT_S = 120.0
PARENT_CHECK_S = 1.0


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
        self.repository = ModelRepository(self.registry, settings.batching,
                                          self.metrics.batch_observer, session)
        self.dataplane = DataPlane(self.repository, settings)
        self.http_port = 0
        self.grpc_port: int | None = None
        self._uvicorn: uvicorn.Server | None = None
        self._grpc: object | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if self.uris:
            for uri in self.uris:
                await self.repository.add(uri)
        else:
            await self.repository.add_all()
        await self._start_http()
        await self._start_grpc()
        self._tasks.append(asyncio.create_task(self._poll()))
        self.dataplane.ready = True
        log.info("serving %s on http://%s:%s (gRPC %s)", ", ".join(self.repository.names())
                 or "no models", self.settings.host, self.http_port, self.grpc_port)

    async def _start_http(self) -> None:
        asgi = create_app(self.dataplane, self.metrics, self.settings.access_log)
        sock = bind(self.settings.host, self.settings.http_port, self.reuse_port)
        self.http_port = sock.getsockname()[1]
        config = uvicorn.Config(asgi, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=int(self.settings.shutdown_grace_s),
                                loop="none", http=protocol_class(asgi.calls))
        self._uvicorn = uvicorn.Server(config)
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
                                     reuse_port=self.reuse_port)
        await server.start()
        self._grpc, self.grpc_port = server, port

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            try:
                await self.repository.refresh()
            except Exception:
                log.exception("registry poll failed; serving what is loaded")

    async def wait(self) -> None:
        """Until uvicorn stops (a signal, or `stop()`)."""
        if self._tasks:
            await self._tasks[0]

    async def stop(self) -> None:
        """Stop taking requests, finish the ones in flight, unload."""
        self.dataplane.ready = False
        if self._grpc is not None:
            await self._grpc.stop(self.settings.shutdown_grace_s)  # type: ignore[attr-defined]
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        for task in self._tasks:
            if task is not self._tasks[0]:
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.repository.close()


async def _serve(uris: Sequence[str], settings: ServeSettings, reuse_port: bool) -> None:
    server = Server(uris, settings, reuse_port=reuse_port)
    await server.start()
    try:
        await server.wait()
    finally:
        await server.stop()


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (it comes with uvicorn[standard]), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _run_loop(coroutine: Any) -> None:
    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(coroutine)


def run(uris: Sequence[str], settings: ServeSettings, workers: int = 1) -> None:
    """Serve until interrupted; with `workers` > 1, that many processes share the ports."""
    if workers <= 1:
        _run_loop(_serve(uris, settings, reuse_port=False))
        return
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=_worker, args=(list(uris), settings, os.getpid()),
                                daemon=True) for _ in range(workers - 1)]
    for child in children:
        child.start()

    def stop_children(signum: int, _frame: object) -> None:
        """uvicorn re-raises the signal once it has shut down: stop the workers, then exit."""
        _stop(children, settings.shutdown_grace_s)
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop_children)
    try:
        _run_loop(_serve(uris, settings, reuse_port=True))
    finally:
        _stop(children, settings.shutdown_grace_s)


def _stop(children: list[Any], grace_s: float) -> None:
    for child in children:
        if child.is_alive():
            child.terminate()
    for child in children:
        child.join(timeout=grace_s)


def _worker(uris: list[str], settings: ServeSettings, parent: int) -> None:
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    with contextlib.suppress(KeyboardInterrupt):
        _run_loop(_serve(uris, settings, reuse_port=True))


def _exit_with_parent(parent: int) -> None:
    """A worker whose parent died (even by SIGKILL) stops too, instead of holding the port."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


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
