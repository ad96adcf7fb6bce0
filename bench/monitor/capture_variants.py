"""Variants of the capture against each other on a shared core: each variant's server, and
the last one's (the baseline), loaded at the same time, each one's requests per second of
its own CPU time compared with the baseline's.

    .venv/bin/python bench/monitor/capture_variants.py --out bench/out/variants \\
        "new:" "old:PYTHONPATH=/tmp/old" "off:--no-capture"

A variant is `name:` then comma-separated settings: `KEY=VALUE` sets an environment
variable of its server (`PYTHONPATH=<worktree>` serves another commit's code), `--flag` or
`--flag=value` is passed to `ferry serve`. Each server gets its own copy of a FERRY_HOME
with the example model (so each writes its own monitoring store), runs pinned to core 0
for the whole benchmark, and is driven by its own `ferry bench` (c=32, 1-row JSON) pinned
to core 1. The servers share core 0 in the same seconds, so the host's speed, which
changes from minute to minute, cancels out of the ratios; with more servers each serves
fewer requests a second, which over-weights what the capture does per second rather than
per request (bench/monitor/RESULTS.md). The medians over `--rounds` are the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "bench" / "monitor"))
import capture_cost  # noqa: E402
from pinned_server import start_pinned_server  # noqa: E402
from processor import processor  # noqa: E402


@dataclass
class Variant:
    name: str
    env: dict[str, str]
    flags: list[str] = field(default_factory=list)
    server: tuple[subprocess.Popen[bytes], int] | None = None

    @classmethod
    def parse(cls, spec: str, env: dict[str, str]) -> Variant:
        name, _, settings = spec.partition(":")
        variant = cls(name, dict(env))
        for item in filter(None, settings.split(",")):
            if item.startswith("--"):
                variant.flags += item.split("=", 1)
            else:
                key, _, value = item.partition("=")
                variant.env[key] = value
        return variant


def start(variants: list[Variant], out: Path) -> None:
    """Each variant's server, on its own copy of a FERRY_HOME with the example model."""
    template = out / "home"
    if not template.exists():
        subprocess.run([sys.executable, "-m", "ferry.example"], check=True,
                       env={**os.environ, "FERRY_HOME": str(template)}, capture_output=True)
    for index, variant in enumerate(variants):
        home = out / f"home-{index}"
        shutil.rmtree(home, ignore_errors=True)
        shutil.copytree(template, home)
        variant.env["FERRY_HOME"] = str(home)
        variant.server = start_pinned_server(capture_cost.MODEL, variant.env, *variant.flags,
                                              ready_within_s=60)


def one_round(variants: list[Variant], duration: float) -> dict[str, float]:
    """Requests per CPU-second of each server, all loaded at once."""
    figures = capture_cost.loaded_at_once({v.name: (v.env, *_server(v)) for v in variants},
                                          duration)
    return {name: figure["req_per_cpu_s"] for name, figure in figures.items()}


def _server(variant: Variant) -> tuple[subprocess.Popen[bytes], int]:
    assert variant.server is not None
    return variant.server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("variants", nargs="+", help="name:KEY=VALUE,--flag=value (the last"
                        " one is the baseline)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    variants = [Variant.parse(spec, dict(os.environ)) for spec in args.variants]
    try:
        start(variants, args.out.resolve())
        rounds = measured(variants, args)
    finally:
        for variant in variants:
            if variant.server is not None:
                variant.server[0].terminate()
                variant.server[0].wait(timeout=60)
    summary = {"processor": processor(), "baseline": variants[-1].name, "rounds": rounds,
               "ratios": {v.name: statistics.median(r["ratios"][v.name] for r in rounds)
                          for v in variants}}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "rounds"}, indent=2))


def measured(variants: list[Variant],
             args: argparse.Namespace) -> list[dict[str, dict[str, float]]]:
    for variant in variants:  # every server warm before the first round
        env, (_, port) = variant.env, _server(variant)
        capture_cost.load(env, port, 2.0)
    rounds = []
    for _ in range(args.rounds):
        rates = one_round(variants, args.duration)
        baseline = rates[variants[-1].name]
        figures = {"req_per_cpu_s": rates,
                   "ratios": {name: rate / baseline for name, rate in rates.items()}}
        print(json.dumps(figures), flush=True)
        rounds.append(figures)
    return rounds


if __name__ == "__main__":
    main()
