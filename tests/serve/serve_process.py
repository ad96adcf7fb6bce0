"""`python -m ferry serve` in a subprocess, for the tests that need a real server process
(signals, workers, its memory): free ports, stderr read as it comes, readiness."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

STARTUP_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServeProcess:
    """`python -m ferry serve` in a subprocess; stderr read line by line as it comes."""

    process: subprocess.Popen[str]
    http_port: int
    grpc_port: int
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def all_lines(self) -> list[str]:
        """Every line of stderr, once the process has ended."""
        assert self.reader is not None
        self.reader.join(timeout=30)
        return self.lines

    def wait_for(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + STARTUP_S
        while not ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{what}: never happened; stderr:\n" + "\n".join(self.lines))
            time.sleep(0.1)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=30)
        try:
            connection.request(method, path, body=body,
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def ready(self) -> bool:
        try:
            return self.request("GET", "/v2/health/ready")[0] == 200
        except OSError:
            return False


def start_serve(home: Path, *args: str, **env_vars: str) -> ServeProcess:
    http_port, grpc_port = free_port(), free_port()
    env = {**os.environ, "FERRY_HOME": str(home), **env_vars,
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    process = subprocess.Popen(
        [sys.executable, "-m", "ferry", "serve", "--http-port", str(http_port), "--grpc-port",
         str(grpc_port), *args], env=env, stderr=subprocess.PIPE, text=True)
    served = ServeProcess(process, http_port, grpc_port)
    served.reader = threading.Thread(target=served.read_stderr, daemon=True)
    served.reader.start()
    served.wait_for(served.ready, "the server answering ready")
    return served
