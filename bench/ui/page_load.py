"""Dashboard page-load benchmark: the models page and a version page of a registry of 100
models x 20 versions, each loaded N times by headless Chromium, timed by the browser.

    python bench/ui/page_load.py [--models 100] [--versions 20] [--loads 30] [--json OUT]
                                 [--home DIR]

The registry is built cheaply: one small scikit-learn model is registered with
`ferry.register` (converted, checked, stored), and every other version is a
`Registry.create_version` reusing its artifacts (the same sha256s), so 2,000 versions take
seconds. Each model gets `production` and `staging` aliases. `ferry ui` serves it from a
subprocess (FERRY_HOME pointing at the registry); Debian's Chromium, driven by Playwright,
loads each page `--loads` times after a few warm-up loads, in one browser context (the
stylesheet and script cached, as for a returning user) and, for comparison, in a fresh
context per load (nothing cached). From the Navigation Timing entry of every load:

- server: responseStart - requestStart (the request sent to the first byte of the answer);
- total: loadEventEnd - startTime (navigation start to the end of the load event: server
  time plus the browser's download, parse, style, layout and load of the assets).

The goal (issue 15): median total under 300 ms for each page on this machine. Prints a
Markdown table headed by the command and the processor; `--json OUT` also writes the numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests")]
from browser import CHROMIUM_FLAGS  # noqa: E402
from processor import processor  # noqa: E402

GOAL_MS = 300.0
WARMUP_LOADS = 3
START_TIMEOUT_S = 60.0
NAVIGATION = "() => performance.getEntriesByType('navigation')[0].toJSON()"
LOADED = "() => performance.getEntriesByType('navigation')[0].loadEventEnd > 0"


def build_registry(home: Path, models: int, versions: int) -> tuple[str, int]:
    """`models` models of `versions` versions each under `home`; a version page's path."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import ferry
    from ferry.registry import Registry, VersionDraft

    registry = Registry(f"sqlite:///{home / 'registry.db'}",
                        artifacts_url=str(home / "artifacts"), actor="bench")
    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    first = ferry.register(LogisticRegression(max_iter=300).fit(x, y), "model-000", sample=x,
                           metrics={"accuracy": 0.96}, registry=registry)
    names = {f.name for f in dataclasses.fields(VersionDraft)}
    draft = VersionDraft(**{name: getattr(first, name) for name in names})
    for index in range(models):
        name = f"model-{index:03d}"
        for number in range(2 if index == 0 else 1, versions + 1):
            registry.create_version(name, dataclasses.replace(
                draft, metrics={"accuracy": 0.9 + number / 1000},
                parent_version=number - 1 if number > 1 else None))
        registry.set_alias(name, "production", max(1, versions - 1))
        registry.set_alias(name, "staging", versions)
    registry.close()
    return f"/ui/models/model-{models // 2:03d}/{versions}", models * versions


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def ferry_ui(home: Path) -> Iterator[str]:
    """`ferry ui` on a free port over the registry in `home`, until the block ends."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ferry", "ui", "--port", str(port)],
        env={**os.environ, "FERRY_HOME": str(home)}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def wait_until_up(url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(f"{url}/", timeout=10) as answer:
                answer.read()
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def timed_load(page: Any, url: str) -> dict[str, float]:
    """Load `url` in `page`; the browser's server and total milliseconds."""
    page.goto(url, wait_until="load")
    page.wait_for_function(LOADED)
    entry = page.evaluate(NAVIGATION)
    return {"server": entry["responseStart"] - entry["requestStart"],
            "total": entry["loadEventEnd"] - entry["startTime"],
            "bytes": entry.get("transferSize", 0)}


def measure(browser: Any, url: str, loads: int, cached: bool) -> list[dict[str, float]]:
    """`loads` timed loads of `url` (after warm-up ones): in one context when `cached`,
    else each in a fresh context."""
    context = browser.new_context(viewport={"width": 1366, "height": 800})
    page = context.new_page()
    for _ in range(WARMUP_LOADS):
        timed_load(page, url)
    timings = []
    for _ in range(loads):
        if not cached:
            context.close()
            context = browser.new_context(viewport={"width": 1366, "height": 800})
            page = context.new_page()
        timings.append(timed_load(page, url))
    context.close()
    return timings


def summary(timings: list[dict[str, float]]) -> dict[str, float]:
    """Median and p90 of the server and total milliseconds."""
    figures: dict[str, float] = {}
    for key in ("server", "total"):
        values = sorted(t[key] for t in timings)
        figures[f"{key}_median_ms"] = statistics.median(values)
        figures[f"{key}_p90_ms"] = values[min(len(values) - 1, int(0.9 * len(values)))]
    figures["bytes"] = timings[-1]["bytes"]
    return figures


def run(pages: dict[str, str], loads: int) -> dict[str, dict[str, float]]:
    """Every page, cached and cold, in one headless Chromium."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise SystemExit("chromium is not installed (make check-system installs it)")
    results = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        for label, url in pages.items():
            for cached in (True, False):
                key = f"{label}, {'cached assets' if cached else 'fresh context'}"
                results[key] = summary(measure(browser, url, loads, cached))
        browser.close()
    return results


def table(results: dict[str, dict[str, float]]) -> str:
    lines = ["| page | server median | server p90 | total median | total p90 | page bytes |"
             " goal (< 300 ms total) |", "|---|---:|---:|---:|---:|---:|---|"]
    for key, f in results.items():
        verdict = "met" if f["total_median_ms"] < GOAL_MS else "MISSED"
        lines.append(f"| {key} | {f['server_median_ms']:.1f} ms | {f['server_p90_ms']:.1f} ms"
                     f" | {f['total_median_ms']:.1f} ms | {f['total_p90_ms']:.1f} ms"
                     f" | {int(f['bytes']):,} | {verdict} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--loads", type=int, default=30)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--home", type=Path, default=None,
                        help="Keep the registry in this folder and reuse it when it is there"
                             " (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ferry-ui-bench-") as scratch:
        home = args.home or Path(scratch)
        started = time.perf_counter()
        built_s: float | None = None
        if (home / "registry.db").exists():
            version_path = f"/ui/models/model-{args.models // 2:03d}/{args.versions}"
            total = args.models * args.versions
        else:
            version_path, total = build_registry(home, args.models, args.versions)
            built_s = time.perf_counter() - started
        load_before = os.getloadavg()
        with ferry_ui(home) as url:
            results = run({"models page (/)": f"{url}/",
                           f"version page ({version_path})": f"{url}{version_path}"},
                          args.loads)
        load_after = os.getloadavg()
    report(args, results, built_s, total, (load_before, load_after))


def report(args: argparse.Namespace, results: dict[str, dict[str, float]],
           built_s: float | None,
           total: int, load: tuple[tuple[float, ...], tuple[float, ...]]) -> None:
    command = shlex.join(["python", "bench/ui/page_load.py", *sys.argv[1:]])
    print(f"`{command}`\n\nProcessor: {processor()}; {os.cpu_count()} CPUs; load average"
          f" {load[0][0]:.2f} before, {load[1][0]:.2f} after.\n")
    built = "reused" if built_s is None else f"built in {built_s:.1f} s"
    print(f"Registry: {args.models} models x {args.versions} versions ({total} versions,"
          f" {built}); `ferry ui`; {args.loads} timed loads per row after {WARMUP_LOADS}"
          " warm-up loads.\n")
    print(table(results))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"processor": processor(), "models": args.models,
                                         "versions": args.versions, "loads": args.loads,
                                         "load_average": load, "results": results},
                                        indent=2))


if __name__ == "__main__":
    main()
