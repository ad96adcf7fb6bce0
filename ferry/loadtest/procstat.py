"""CPU time of a server process and all its descendants, read from /proc (Linux).

Used to report server CPU microseconds per request: a cost per request that stays meaningful when
other processes share the machine, unlike throughput alone.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")


def process_exists(pid: int) -> bool:
    return (PROC / str(pid) / "stat").exists()


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, or None if it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text.rsplit(")", 1)[1].split()


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants, by scanning the parent of every process in /proc.

    (/proc/PID/task/TID/children lists only the children forked by that one thread, which misses
    workers forked by other threads.)
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir(PROC):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None and len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and its live descendants (all threads)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in process_tree(pid):
        fields = _stat_fields(member)
        if fields is not None and len(fields) > 12:
            total += int(fields[11]) + int(fields[12])
    return total / ticks
