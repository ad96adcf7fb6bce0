"""Evidently's DataDriftPreset on Parquet files, for drift_vs_evidently.py; prints JSON.

    <evidently venv>/bin/python bench/monitor/evidently_drift.py --reference REF.parquet
        --current CUR.parquet --categorical cat_0,cat_1 [--chunk ROWS] [--cpu N]

Runs in Evidently's own environment (pandas<3), so it imports nothing from ferry. The current
file is judged whole, or as consecutive windows of `--chunk` rows (the small-window check).
Prints one JSON object: `runs`, one per window, each with `seconds` (Dataset.from_pandas and
Report.run; the Parquet read is not timed, as it is not on ferry's side) and per column the
test Evidently chose, its score (p-value or distance) and its drift flag.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

for _pool in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_pool, "1")  # before numpy loads its BLAS

import pandas as pd  # noqa: E402
from evidently import DataDefinition, Dataset, Report  # noqa: E402
from evidently.presets import DataDriftPreset  # noqa: E402


def definition(frame: pd.DataFrame, categorical: list[str]) -> DataDefinition:
    """Column kinds stated, not inferred, so both tools judge the same kind of column."""
    numeric = [name for name in frame.columns if name not in categorical]
    return DataDefinition(numerical_columns=numeric, categorical_columns=categorical)


def run_preset(reference: pd.DataFrame, current: pd.DataFrame,
               categorical: list[str]) -> dict[str, Any]:
    start = time.perf_counter()
    kinds = definition(reference, categorical)
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=kinds),
        Dataset.from_pandas(reference, data_definition=kinds))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "columns": columns(snapshot.dict())}


def columns(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per column: the ValueDrift metric's test and score, and its test's pass/fail as drift."""
    found = {metric["config"]["column"]: {"test": metric["config"]["method"],
                                          "score": metric["value"]}
             for metric in snapshot["metrics"]
             if metric["config"]["type"].endswith(":ValueDrift")}
    for test in snapshot["tests"]:
        params = test["metric_config"]["params"]
        if params["type"].endswith(":ValueDrift"):
            found[params["column"]]["drift"] = test["status"] == "FAIL"
    return found


def windows(current: pd.DataFrame, chunk: int) -> list[pd.DataFrame]:
    if chunk <= 0:
        return [current]
    return [current.iloc[start:start + chunk].reset_index(drop=True)
            for start in range(0, len(current) - chunk + 1, chunk)]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reference", required=True)
    parser.add_argument("--current", required=True)
    parser.add_argument("--categorical", default="", help="comma-separated column names")
    parser.add_argument("--chunk", type=int, default=0, help="window rows; 0: the whole file")
    parser.add_argument("--cpu", type=int, default=-1, help="CPU to pin to; -1: do not pin")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    categorical = [name for name in args.categorical.split(",") if name]
    reference = pd.read_parquet(args.reference)
    current = pd.read_parquet(args.current)
    runs = [run_preset(reference, window, categorical)
            for window in windows(current, args.chunk)]
    json.dump({"evidently": version(), "pandas": pd.__version__, "runs": runs}, sys.stdout)


def version() -> str:
    import evidently

    return str(evidently.__version__)


if __name__ == "__main__":
    main()
