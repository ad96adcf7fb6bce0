"""`ferry serve` for a benchmark: in its own process, pinned to core 0 (`taskset -c 0`), so
a client pinned to the other core measures one server core."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_pinned_server(model: str, env: dict[str, str], *extra: str,
                        ready_within_s: float = 120.0) -> tuple[subprocess.Popen[bytes], int]:
    """The server process and its HTTP port, once `/v2/health/ready` answers."""
    port = free_port()
    args = ["taskset", "-c", "0", str(BIN / "ferry"), "serve", model, "--http-port", str(port),
            "--grpc-port", "-1", "--no-access-log", *extra]
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + ready_within_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1):
                return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not become ready")
