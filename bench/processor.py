"""The processor a benchmark ran on, as every RESULTS file records it (figures from different
processors are never compared)."""

from __future__ import annotations

import subprocess

FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16")


def processor() -> str:
    """`lscpu`'s model name, family and model, and which of `FLAGS` the CPU has."""
    fields = dict(line.split(":", 1) for line in subprocess.run(
        ["lscpu"], capture_output=True, text=True).stdout.splitlines() if ":" in line)
    flags = set(fields.get("Flags", "").split())
    wanted = [flag for flag in FLAGS if flag in flags]
    return (f"{fields.get('Model name', '').strip()}, family {fields.get('CPU family', '').strip()}"
            f" model {fields.get('Model', '').strip()}, flags {' '.join(wanted)}")
