"""Run `ferry.optimizer` over the reference models and check the issue's goals.

    taskset -c 1 .venv/bin/python bench/optimize/run.py --home bench/out/optimize-home \
        --out bench/out/optimize

Each model (registered by bench/optimize/models.py into --home) is optimized with one thread,
pinned to the core taskset gives, every candidate timed against the original framework's own
predict in the same run. Validation rows with labels (written by models.py) go to the gate,
so accuracy is measured, not only agreement. Then every candidate that passed is timed again
in a run of its own (without the original), and the pick is compared with the fastest of that
second run: the goal is within 5 %.

The search's baseline is what ferry stores for the model (a LightGBM Booster, the exported
torch graph), not the object the user trained. So a framework check follows each search: the
chosen version, loaded with `ferry.load` as it is served, is timed at batch 1 against the
user's own call on the trained object that models.py kept under --home/originals
(`LGBMClassifier.predict_proba`, the eager nn.Module, ...), interleaved in one run on the same
rows, both with --threads threads. The issue's goals are judged on that speed-up. Writes
OUT/<model>/report.md (+ .png, .json), OUT/summary.json and OUT/summary.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

GOALS = {"lgbm": 15.0, "rf": 100.0, "mlp": 15.0, "digits_cnn": 15.0, "resnet18": 15.0,
         "minilm": 5.0}
"""Speed-up at batch 1 over the framework's own predict (the framework check), from issue 4."""
BATCH_SIZES = {"resnet18": (1,), "digits_cnn": (1, 64), "minilm": (1, 16)}
DEFAULT_BATCH_SIZES = (1, 64)
PICK_SHARE = 0.05
CHECK_ROWS = 8
"""Validation rows the framework check cycles over, one row per call."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", default="")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ["FERRY_HOME"] = str(args.home.resolve())
    import ferry
    from ferry.optimizer import optimize

    catalog = json.loads((args.home / "models.json").read_text())
    models = list(catalog["models"].values())
    wanted = {m for m in args.only.split(",") if m}
    summary: list[dict[str, Any]] = []
    for entry in models:
        name = entry["name"]
        if wanted and name not in wanted:
            continue
        started = time.perf_counter()
        print(f"== {name}", flush=True)
        result = optimize(entry.get("uri", name),
                          batch_sizes=BATCH_SIZES.get(name, DEFAULT_BATCH_SIZES),
                          threads=args.threads, validation=_validation(entry, args.home),
                          report=args.out / name / "report.md",
                          registry=ferry.Registry())
        row = _summarise(name, result, time.perf_counter() - started)
        row.update(_framework_check(entry, result, args.home, args.threads))
        summary.append(row)
        print(json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    machine = {"processor": _processor(), "python": sys.version.split()[0],
               "platform": platform.platform(), "affinity": sorted(os.sched_getaffinity(0))}
    (args.out / "summary.json").write_text(json.dumps({"machine": machine, "models": summary},
                                                      indent=2))
    (args.out / "summary.md").write_text(_markdown(machine, summary))
    print(_markdown(machine, summary))


def _validation(entry: dict[str, Any], home: Path) -> tuple[Any, Any] | None:
    """The held-out rows models.py saved, with their labels where the model has them."""
    saved = entry.get("validation") or {}
    if not saved.get("x"):
        return None
    x = np.load(_resolve(saved["x"], home), allow_pickle=False)
    y = np.load(_resolve(saved["y"], home), allow_pickle=False) if saved.get("y") else None
    return x, y


def _resolve(path: str, home: Path) -> Path:
    return Path(path) if Path(path).is_absolute() else home / path


def _summarise(name: str, result: Any, seconds: float) -> dict[str, Any]:
    from ferry.optimizer.search import Status
    from ferry.optimizer.timing import TimingSettings, time_interleaved

    size = result.batch_sizes[0]
    passed = [c for c in result.candidates if c.status == Status.PASSED and size in c.timings
              and c.built is not None]
    chosen = result.chosen
    retimed: dict[str, float] = {}
    if chosen is not None and passed:
        feeds = _feeds(result)
        calls = {c.label: _call(c.built.predictor, feeds) for c in passed}
        again = time_interleaved(calls, None, TimingSettings(repeats=3, slices=5,
                                                             min_slice_s=0.1))
        retimed = {label: timing.median_s for label, timing in again.items()}
    fastest = min(retimed, key=lambda label: retimed[label], default=None)
    pick_ratio = (retimed[chosen.label] / retimed[fastest]
                  if chosen is not None and fastest is not None else None)
    gate = chosen.verdict.to_dict() if chosen and chosen.verdict else None
    return {
        "model": name, "seconds": round(seconds, 1), "batch": size,
        "baseline_us": result.baseline[size].median_s * 1e6,
        "chosen": chosen.label if chosen else None,
        "chosen_us": chosen.timings[size].median_s * 1e6 if chosen else None,
        "speedup": chosen.timings[size].speedup if chosen else None,
        "speedups": {str(b): t.speedup for b, t in chosen.timings.items()} if chosen else {},
        "goal": GOALS.get(name), "fastest_passing_retimed": fastest,
        "pick_vs_fastest_retimed": pick_ratio, "retimed_us": {k: v * 1e6 for k, v in
                                                              retimed.items()},
        "gate": gate,
        "version": result.version.uri if result.version else None,
        "candidates": [{"name": c.label, "status": c.status, "precision": c.precision,
                        "speedup": c.timings[size].speedup if size in c.timings else None,
                        "reason": c.reason} for c in result.candidates],
    }


def _framework_check(entry: dict[str, Any], result: Any, home: Path,
                     threads: int) -> dict[str, Any]:
    """The served chosen version against the user's own call on the trained object.

    Both take the same batch-1 rows, cycling over the first validation rows; the served side
    gets its feeds built beforehand, as a server has them after parsing a request. Skipped
    (None) when the search registered nothing or models.py saved no framework object.
    """
    row: dict[str, Any] = {"framework_call": entry.get("framework_call"), "framework_us": None,
                           "served_us": None, "speedup_vs_framework": None}
    saved = _validation(entry, home)
    if result.version is None or not entry.get("framework_object") or saved is None:
        return row
    from threadpoolctl import threadpool_limits

    import ferry
    from ferry.optimizer.timing import TimingSettings, time_interleaved
    from ferry.runtime.feeds import to_feeds

    rows = [np.ascontiguousarray(saved[0][i:i + 1]) for i in range(min(CHECK_ROWS,
                                                                        len(saved[0])))]
    feeds = [to_feeds(result.version.signature, r) for r in rows]
    predictor = ferry.load(result.version.uri)
    with threadpool_limits(limits=threads), _torch_threads_kept():
        framework = _load_framework_object(entry, home, threads)
        calls = {"framework": _framework_timed(framework, rows),
                 "served": _call(predictor, feeds)}
        timings = time_interleaved(calls, "framework", TimingSettings(repeats=3, slices=5,
                                                                      min_slice_s=0.1))
    row.update({"framework_call": f"{entry['framework_call']}, {threads} thread"
                                  f"{'s' if threads > 1 else ''}",
                "framework_us": timings["framework"].median_s * 1e6,
                "served_us": timings["served"].median_s * 1e6,
                "speedup_vs_framework": timings["served"].speedup})
    return row


def _load_framework_object(entry: dict[str, Any], home: Path,
                           threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """models.py's loader; this script runs from its own folder, where models.py lives."""
    from models import load_framework_object

    return load_framework_object(entry["name"], home, entry, threads=threads)


@contextmanager
def _torch_threads_kept() -> Iterator[None]:
    """Put torch's thread count back after the check, for the next model's search."""
    if "torch" not in sys.modules:
        yield
        return
    import torch

    before = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _framework_timed(framework: Callable[[np.ndarray], np.ndarray],
                     rows: list[np.ndarray]) -> Callable[[int], object]:
    def timed(i: int) -> object:
        return framework(rows[i % len(rows)])

    return timed


def _call(predictor: Any, feeds: list[dict[str, np.ndarray]]) -> Any:
    def timed(i: int) -> object:
        return predictor.run_feeds(feeds[i % len(feeds)])

    return timed


def _feeds(result: Any) -> list[dict[str, np.ndarray]]:
    from ferry.data import sample_from_parquet
    from ferry.registry import Registry
    from ferry.runtime.feeds import to_feeds

    registry = Registry()
    rows = sample_from_parquet(registry.read_artifact(result.source, "sample"))
    size = result.batch_sizes[0]
    return [to_feeds(result.source.signature, rows[i * size:(i + 1) * size])
            for i in range(max(1, min(8, len(rows) // size)))]


def _processor() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _markdown(machine: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    lines = [f"Processor: {machine['processor']}; cores used: {machine['affinity']};"
             f" Python {machine['python']}", "",
             "Baselines, both at batch 1: \"stored original\" is ferry's own baseline in the"
             " search, the model as ferry stores it (a LightGBM Booster, the exported torch"
             " graph), and the in-search speed-up is against it. \"framework\" is the call the"
             " user makes on the object they trained (`predict_proba` of the scikit-learn or"
             " LightGBM wrapper, the eager nn.Module), timed interleaved with the chosen version"
             " as `ferry.load` serves it, and \"met\" judges the issue's goal on that speed-up.",
             "",
             "| model | batch | stored original µs | chosen | chosen µs | in-search speed-up |"
             " framework call | framework µs | served µs | speed-up vs framework | goal | met |"
             " gate | pick vs fastest (re-timed) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        speed, goal = row["speedup"], row["goal"]
        versus = row.get("speedup_vs_framework")
        met = "-" if versus is None or goal is None else ("yes" if versus >= goal else "no")
        gate = row["gate"]
        gate_text = "-" if gate is None else "; ".join(
            f"{m['metric']} {m['value']:.4g}" for m in gate["measures"] if m["bound"] is not None)
        pick = row["pick_vs_fastest_retimed"]
        lines.append(f"| {row['model']} | {row['batch']} | {row['baseline_us']:,.1f} |"
                     f" {row['chosen']} | {row['chosen_us'] or 0:,.1f} |"
                     f" {speed or 0:.2f}x | {row.get('framework_call') or '-'} |"
                     f" {_number(row.get('framework_us'), ',.1f')} |"
                     f" {_number(row.get('served_us'), ',.1f')} |"
                     f" {_number(versus, '.2f', 'x')} | {goal}x | {met} | {gate_text} |"
                     f" {_number(pick, '.3f')} |")
    return "\n".join(lines) + "\n"


def _number(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


if __name__ == "__main__":
    main()
