"""`ferry monitor` end to end over a million stored rows (issue 11: at most 5 s, query included).

    python bench/monitor/monitor_e2e.py --out DIR [--rows 1000000] [--per-second 500]
                                        [--runs 3] [--cpu 0]

A fresh FERRY_HOME under DIR; a scikit-learn Pipeline (one-hot for 5 string columns, scaling
for 15 numeric ones, logistic regression) registered as "wide" with a sample, so the version
has its reference profile. `--rows` rows of the same distribution then go into the embedded
store the way the server's capture puts them there: the model's outputs computed by the
registered ONNX graph, columns named by `ferry.monitor.columns`, requests of 10 rows passed
through the capture's own `Sampler`, one block of `--per-second` rows per second, the seconds
ending a minute before now. The store is read back to check the count.

Then `ferry monitor wide --since 1h --json` runs `--runs` times as a subprocess pinned to one
CPU with taskset (wall clock from exec to exit: interpreter start, imports, query, tests,
results written, JSON printed); a fresh interpreter that only imports what the CLI imports,
as many times; and `ferry.monitor("wide", since="1h")` in-process on the same CPU as many
times, then once more under cProfile. Prints the processor, each run, rows judged and the
verdict; writes DIR/results.json, DIR/profile.txt (the profiled call's functions by
cumulative time) and the last CLI run's output as DIR/monitor.json.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

for _pool in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_pool, "1")  # before numpy loads its BLAS
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from drift_bench import processor  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

import ferry  # noqa: E402
from ferry.monitor.api import MonitorReport  # noqa: E402
from ferry.monitor.capture.sampler import GivenRows, Sampler  # noqa: E402
from ferry.monitor.columns import input_columns, output_columns  # noqa: E402
from ferry.monitor.events import SampledRows  # noqa: E402
from ferry.monitor.store import MonitoringStore, open_store  # noqa: E402
from ferry.runtime.feeds import to_feeds  # noqa: E402
from ferry.runtime.predictor import GraphPredictor  # noqa: E402

MODEL = "wide"
NUMERIC, CATEGORICAL = 15, 5
CATEGORIES = ("north", "south", "east", "west", "centre", "islands")
TRAINING_ROWS = 5000
REQUEST_ROWS = 10
"""Rows per simulated request: a second's block holds rows of per_second / 10 requests."""
PREDICT_ROWS = 100_000
"""Rows scored and turned into columns at once, so the whole set is never in memory twice."""
SINCE = "1h"
IMPORTS = "import ferry.cli, ferry.monitor.api, ferry.cli.monitor"
GOAL_SECONDS = 5.0


@dataclass(frozen=True)
class Figures:
    """What one benchmark run measured."""

    rows_stored: int
    store_seconds: float
    cli_seconds: tuple[float, ...]
    import_seconds: tuple[float, ...]
    """The CLI's start alone: a fresh interpreter importing what `ferry monitor` imports."""
    in_process_seconds: tuple[float, ...]
    profiled_seconds: float
    rows_judged: int
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "cli_median_seconds": statistics.median(self.cli_seconds),
                "goal_seconds": GOAL_SECONDS, "goal_met": self.goal_met}

    @property
    def goal_met(self) -> bool:
        return statistics.median(self.cli_seconds) <= GOAL_SECONDS


def make_frame(rows: int, seed: int) -> pd.DataFrame:
    """15 numeric columns of a few shapes and 5 string columns of skewed shares."""
    rng = np.random.default_rng(seed)
    numeric = {f"num_{i}": rng.normal(i, 1 + i % 3, rows) for i in range(NUMERIC)}
    shares = np.arange(len(CATEGORIES), 0, -1) / sum(range(1, len(CATEGORIES) + 1))
    strings = {f"cat_{i}": np.asarray(CATEGORIES, dtype=object)[
        rng.choice(len(CATEGORIES), rows, p=shares)] for i in range(CATEGORICAL)}
    return pd.DataFrame(numeric | strings)


def train(frame: pd.DataFrame) -> Pipeline:
    """A label that depends on two numeric columns and one string column, so it is learnable."""
    target = (frame["num_0"] + frame["num_1"] - 1 + (frame["cat_0"] == "north") > 0)
    strings = [f"cat_{i}" for i in range(CATEGORICAL)]
    numbers = [f"num_{i}" for i in range(NUMERIC)]
    encoder = ColumnTransformer([("strings", OneHotEncoder(handle_unknown="ignore"), strings),
                                 ("numbers", StandardScaler(), numbers)])
    return make_pipeline(encoder, LogisticRegression(max_iter=500)).fit(frame, target.astype(int))


def captured_columns(predictor: GraphPredictor, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The rows as the server's capture sees them: the input tensors and the graph's outputs,
    flattened into sampled columns."""
    feeds = to_feeds(predictor.signature, frame)
    outputs = predictor.run_feeds(feeds)
    return {**input_columns(predictor.signature, feeds),
            **output_columns(predictor.signature, outputs)}


def seconds_blocks(columns: dict[str, np.ndarray], first_second: int,
                   per_second: int) -> Iterator[list[SampledRows]]:
    """Requests of `REQUEST_ROWS` rows, `per_second` rows a second, through the capture's
    sampler: what its writer thread appends once a second."""
    sampler = Sampler(per_second, seed=0)
    count = len(next(iter(columns.values())))
    for offset in range(0, count, per_second):
        second = first_second + offset // per_second
        for start in range(offset, min(count, offset + per_second), REQUEST_ROWS):
            part = {name: values[start:start + REQUEST_ROWS] for name, values in columns.items()}
            sampler.add(MODEL, 1, GivenRows(second + 0.5, f"req-{second}-{start}", part))
        yield sampler.take(second + 1, final=False)


def fill_store(store: MonitoringStore, predictor: GraphPredictor, rows: int,
               per_second: int) -> float:
    """Append `rows` captured rows ending a minute ago; seconds taken by the appends only."""
    first_second = int(time.time()) - 60 - rows // per_second
    spent = 0.0
    for batch, start in enumerate(range(0, rows, PREDICT_ROWS)):
        frame = make_frame(min(PREDICT_ROWS, rows - start), seed=100 + batch)
        columns = captured_columns(predictor, frame)
        for blocks in seconds_blocks(columns, first_second + start // per_second, per_second):
            began = time.perf_counter()
            store.append_samples(blocks)
            spent += time.perf_counter() - began
    return spent


def stored_rows(store: MonitoringStore) -> int:
    return store.samples(MODEL, 1, since=datetime.now(UTC) - timedelta(hours=1)).num_rows


def pinned_run(cpu: int, command: list[str]) -> tuple[float, str]:
    """Wall clock of `command` in a fresh process pinned to `cpu`, and its output."""
    began = time.perf_counter()
    done = subprocess.run(["taskset", "-c", str(cpu), *command], capture_output=True,
                          text=True, check=True)
    return time.perf_counter() - began, done.stdout


def cli_run(cpu: int) -> tuple[float, dict[str, Any]]:
    """`ferry monitor` as a user runs it, and its JSON."""
    ferry_cli = Path(sys.executable).with_name("ferry")
    seconds, output = pinned_run(cpu, [str(ferry_cli), "monitor", MODEL, "--since", SINCE,
                                       "--json"])
    return seconds, json.loads(output)


def import_run(cpu: int) -> float:
    """The part of a CLI run spent starting: the interpreter and the modules it loads."""
    return pinned_run(cpu, [sys.executable, "-c", IMPORTS])[0]


def in_process_run() -> float:
    began = time.perf_counter()
    ferry.monitor(MODEL, since=SINCE)
    return time.perf_counter() - began


def profiled_monitor(out: Path) -> tuple[float, MonitorReport]:
    """`ferry.monitor` in this process under cProfile; the top of the profile to a file."""
    profiler = cProfile.Profile()
    began = time.perf_counter()
    report = profiler.runcall(ferry.monitor, MODEL, since=SINCE)
    seconds = time.perf_counter() - began
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(45)
    (out / "profile.txt").write_text(text.getvalue())
    return seconds, report


def fresh_home(out: Path) -> Path:
    home = out / "ferry-home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    os.environ["FERRY_HOME"] = str(home)
    os.environ.pop("FERRY_MONITORING_URL", None)
    return home


def registered_predictor() -> GraphPredictor:
    frame = make_frame(TRAINING_ROWS, seed=1)
    ferry.register(train(frame), MODEL, sample=frame)
    predictor = ferry.load(MODEL)
    assert isinstance(predictor, GraphPredictor), "the pipeline should convert to ONNX"
    return predictor


def measure(args: argparse.Namespace) -> Figures:
    fresh_home(args.out)
    predictor = registered_predictor()
    with open_store(None) as store:
        store_seconds = fill_store(store, predictor, args.rows, args.per_second)
        rows = stored_rows(store)
    print(f"stored {rows:,} rows in {store_seconds:.1f} s of appends", flush=True)
    if rows != args.rows:
        raise SystemExit(f"the store holds {rows:,} rows of the last hour, not {args.rows:,}")
    runs = [cli_run(args.cpu) for _ in range(args.runs)]
    (args.out / "monitor.json").write_text(json.dumps(runs[-1][1], indent=2))
    for seconds, _ in runs:
        print(f"ferry monitor {MODEL} --since {SINCE} --json: {seconds:.2f} s", flush=True)
    starts = tuple(import_run(args.cpu) for _ in range(args.runs))
    print(f"imports alone: {', '.join(f'{s:.2f} s' for s in starts)}", flush=True)
    os.sched_setaffinity(0, {args.cpu})
    in_process = tuple(in_process_run() for _ in range(args.runs))
    print(f"ferry.monitor in-process: {', '.join(f'{s:.2f} s' for s in in_process)}")
    profiled, report = profiled_monitor(args.out)
    return Figures(rows, store_seconds, tuple(s for s, _ in runs), starts, in_process,
                   profiled, report.latest.rows, str(report.verdict))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--per-second", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print("processor:", json.dumps(processor_summary()), flush=True)
    figures = measure(args)
    print(json.dumps(figures.to_dict(), indent=2))
    (args.out / "results.json").write_text(json.dumps(
        {"processor": processor_summary(), **figures.to_dict()}, indent=2))


def processor_summary() -> dict[str, str]:
    """Model name, family and model, and only the vector flags the figures depend on."""
    info = processor()
    flags = set(info.pop("flags", "").split())
    return {**info, "flags": " ".join(f for f in ("avx2", "avx512f", "avx512_vnni") if f in flags)}


if __name__ == "__main__":
    main()
