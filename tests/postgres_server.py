"""A throwaway PostgreSQL server in a temporary folder, for the tests.

Uses the server binaries of Debian's `postgresql` package. `initdb` refuses to run as root,
so as root the server runs as the `postgres` user (`runuser`), in a folder it owns.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 60


@dataclass
class PostgresServer:
    directory: Path
    port: int
    bindir: Path

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        _run_as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.directory / "data"),
                       "-m", "immediate", "-w", "stop"], check=False)
        shutil.rmtree(self.directory, ignore_errors=True)


def find_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def start_server() -> PostgresServer:
    """Start a server on a free loopback port; raises RuntimeError with the reason."""
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
    directory = Path(tempfile.mkdtemp(prefix="ferry-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    port = _free_port()
    data = directory / "data"
    _run_as_owner([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                   "--no-sync"])
    options = f"-h 127.0.0.1 -p {port} -k {directory} -c fsync=off -c max_connections=200"
    _run_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                   str(directory / "log"), "-w", "-t", str(START_TIMEOUT_S), "start"])
    return PostgresServer(directory=directory, port=port, bindir=bindir)


def _run_as_owner(command: list[str], check: bool = True) -> None:
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()[-500:]}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
