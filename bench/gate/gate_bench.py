"""The promotion gate on 100,000 hold-out rows with 10 declared slices, end to end.

    .venv/bin/python bench/gate/gate_bench.py --out bench/out/gate [--rows 100000]

Issue 12: `ferry compare` on 100,000 hold-out rows with 10 slices completes in under 30 s on
this machine, latency measurement included. A fresh FERRY_HOME gets two versions of a
scikit-learn pipeline (OneHotEncoder on 10 categorical columns, StandardScaler on 10 numeric
ones, LogisticRegression with C=1 and C=0.5) trained on 20,000 synthetic rows; the hold-out
set is `--rows` more rows of the same distribution, written as Parquet. The command is run as
a user would (`ferry compare CANDIDATE BASELINE --data ... --label y --slice c0 ... --slice
c9 --json`) and timed from exec to exit, three times; then each phase is timed in-process
(scoring, quality with its bootstrap, slices, bias, latency and cost) to say where the time
goes. Prints the figures and writes OUT/summary.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from processor import processor  # noqa: E402

SLICES = [f"c{i}" for i in range(10)]
NUMERIC = [f"x{i}" for i in range(10)]


def synthetic(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.normal(size=rows) for name in NUMERIC})
    for i, name in enumerate(SLICES):
        frame[name] = rng.choice([f"v{k}" for k in range(3 + i % 4)], rows)
    signal = frame[NUMERIC[:4]].sum(axis=1) + (frame["c0"] == "v0") * 0.8
    frame["y"] = (signal + rng.normal(scale=1.0, size=rows) > 0).astype(int)
    return frame


def prepare(home: Path, rows: int) -> Path:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    import ferry
    from ferry.registry import Registry

    train = synthetic(20_000, 0)
    features = train.drop(columns=["y"])
    registry = Registry()
    for c in (1.0, 0.5):
        model = Pipeline([("prep", ColumnTransformer([
            ("num", StandardScaler(), NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), SLICES)])),
            ("clf", LogisticRegression(C=c, max_iter=500))]).fit(features, train["y"])
        ferry.register(model, "wide", sample=features.iloc[:1000], registry=registry)
    path = home / "holdout.parquet"
    synthetic(rows, 1).to_parquet(path)
    return path


def cli_runs(env: dict[str, str], data: Path, runs: int) -> list[dict[str, Any]]:
    args = [str(Path(sys.executable).parent / "ferry"), "compare", "wide:2", "wide:1",
            "--data", str(data), "--label", "y", *[arg for s in SLICES for arg in ("--slice", s)],
            "--json"]
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(args, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode not in (0, 1):
            raise RuntimeError(done.stderr)
        result = json.loads(done.stdout)
        timings.append({"seconds": seconds, "status": result["status"],
                        "checks": len(result["checks"]), "failures": result["failures"]})
    return timings


def phases(data: Path) -> dict[str, float]:
    """Each part of `compare_versions`, timed in this process."""
    from ferry.gate import compare as gate
    from ferry.gate.bias import bias_checks
    from ferry.gate.performance import TimingSettings, in_process_timings, server_timings
    from ferry.gate.quality import quality_checks
    from ferry.gate.slices import slice_checks
    from ferry.loading import load_version
    from ferry.registry import Registry

    registry = Registry()
    versions = registry.get("wide:2"), registry.get("wide:1")
    timed: dict[str, float] = {}

    def clock(name: str, work: Any) -> Any:
        started = time.perf_counter()
        value = work()
        timed[name] = time.perf_counter() - started
        return value

    rows = clock("read", lambda: gate.gate_rows(data, gate.GateOptions(label="y")))
    predictors = clock("load", lambda: [load_version(v, registry) for v in versions])
    features = rows.frame.drop(columns=["y"])
    scores = clock("score", lambda: [gate.score(p, features) for p in predictors])
    clock("quality", lambda: quality_checks(versions[0].task, rows.labels, *scores))
    clock("slices", lambda: slice_checks(features, rows.labels, *scores, versions[0].task,
                                         declared=SLICES))
    clock("bias", lambda: bias_checks(rows.frame["c1"], rows.labels, *scores, versions[0].task))
    settings = TimingSettings()
    clock("latency_in_process", lambda: in_process_timings(
        predictors[0].predict, predictors[1].predict, features, settings))
    clock("latency_server", lambda: server_timings(registry, "wide:2", "wide:1", features,
                                                   settings))
    return timed



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    home = (args.out / "home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["FERRY_HOME"] = str(home)
    data = prepare(home, args.rows)
    runs = cli_runs(dict(os.environ), data, args.runs)
    summary = {"processor": processor(), "rows": args.rows, "slices": len(SLICES),
               "cli_runs": runs, "cli_median_s": statistics.median(r["seconds"] for r in runs),
               "phases_s": phases(data)}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
