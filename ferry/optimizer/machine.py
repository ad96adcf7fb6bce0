"""The machine the search runs on: processor, cores, feature flags, GPU. Timings only mean
something for the machine they were taken on, so every result records it."""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")
INTERESTING_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8",
                     "avx_vnni", "fma")


@dataclass(frozen=True)
class Machine:
    processor: str
    cores: int
    flags: frozenset[str] = field(default_factory=frozenset)
    gpu: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"processor": self.processor, "cores": self.cores, "gpu": self.gpu,
                "flags": sorted(f for f in self.flags if f in INTERESTING_FLAGS)}


def describe_machine() -> Machine:
    name, flags = platform.processor() or platform.machine(), frozenset[str]()
    if CPUINFO.exists():
        for line in CPUINFO.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                name = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = frozenset(value.split())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        os.cpu_count() or 1
    return Machine(processor=name, cores=cores, flags=flags, gpu=_has_gpu())


def _has_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None and Path("/dev/nvidia0").exists()
