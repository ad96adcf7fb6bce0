"""Drift against Evidently, in one run: ferry's profile detectors and DataDriftPreset on one core.

    python bench/monitor/drift_vs_evidently.py --out DIR [--evidently-python PATH]
                                               [--rows 1000000] [--shift 0.5] [--cpu 0]

Issue 11: 1M current rows x 20 columns (15 numeric, 5 categorical) against the profile, on one
core, at least 50 times faster than Evidently's DataDriftPreset on the same data in the same
run, with the same verdicts and scores within 1e-6 where both use the same test; and on
150-row windows of unshifted data, ferry must not flag the columns Evidently flags.

Writes the data as Parquet in DIR: the current window (three numeric columns shifted by
`--shift` standard deviations, cat_0's shares reversed), two references from the unshifted
distribution (5,000 rows: Evidently picks Wasserstein / Jensen-Shannon; 1,000 rows: KS /
chi-squared), and unshifted windows of 150 and 250 rows. Ferry runs here (build_profile once,
timed apart from evaluate_window); Evidently runs in its own interpreter (pandas<3, made by
setup_evidently.sh) through evidently_drift.py, pinned to the same CPU. Parquet reads are not
timed on either side. Prints the figures and writes DIR/summary.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

for _pool in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_pool, "1")  # before numpy loads its BLAS
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from drift_bench import categorical_column, numeric_column, pin, processor, timed  # noqa: E402

from ferry.monitor.drift.dataset import WindowReport, evaluate_window  # noqa: E402
from ferry.monitor.profile import Profile, build_profile  # noqa: E402

HERE = Path(__file__).resolve().parent
NUMERIC, CATEGORICAL, SHIFTED_NUMERIC = 15, 5, 3
REFERENCE_ROWS = (5_000, 1_000)
"""Above Evidently's 1000-row line it uses Wasserstein / Jensen-Shannon, at or below KS / chi²."""
WINDOW_ROWS, WINDOWS = (150, 250), 20
EVIDENTLY_TESTS = {"K-S p_value": "ks", "chi-square p_value": "chisquare",
                   "Z-test p_value": "z", "Wasserstein distance (normed)": "wasserstein",
                   "Jensen-Shannon distance": "jensenshannon"}
"""Evidently's test names, as its ValueDrift metric reports them, to ferry's method names."""
P_VALUE_TESTS = {"ks", "chisquare", "z"}
TOLERANCE = 1e-6
FIRED = {"warn", "drift"}
"""Ferry verdicts where its test fired (`warn`: a p-value fired but PSI stayed under 0.1)."""


@dataclass(frozen=True)
class Bench:
    out: Path
    evidently_python: str
    rows: int
    shift: float
    cpu: int
    repeat: int


def make_table(rows: int, seed: int, shift: float) -> pa.Table:
    """drift_bench's column shapes; `shift` moves three numeric columns and reverses cat_0."""
    rng = np.random.default_rng(seed)
    data = {f"num_{i}": numeric_column(rng, i, rows, shift if i < SHIFTED_NUMERIC else 0.0)
            for i in range(NUMERIC)}
    data |= {f"cat_{i}": categorical_column(rng, i, rows, shift > 0 and i == 0)
             for i in range(CATEGORICAL)}
    return pa.table(data)


def write_data(bench: Bench) -> dict[str, Path]:
    """Every file both tools read, written once; seeds differ so no two samples share rows."""
    tables = {f"reference_{rows}": (rows, 10 + index, 0.0)
              for index, rows in enumerate(REFERENCE_ROWS)}
    tables["current"] = (bench.rows, 2, bench.shift)
    tables |= {f"unshifted_{rows}": (rows * WINDOWS, 20 + rows, 0.0) for rows in WINDOW_ROWS}
    paths = {}
    for name, (rows, seed, shift) in tables.items():
        paths[name] = bench.out / f"{name}.parquet"
        pq.write_table(make_table(rows, seed, shift), paths[name])
    return paths


def run_evidently(bench: Bench, reference: Path, current: Path,
                  chunk: int = 0) -> dict[str, Any]:
    categorical = ",".join(f"cat_{i}" for i in range(CATEGORICAL))
    command = [bench.evidently_python, str(HERE / "evidently_drift.py"),
               "--reference", str(reference), "--current", str(current),
               "--categorical", categorical, "--chunk", str(chunk), "--cpu", str(bench.cpu)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"evidently_drift.py failed ({done.returncode}):\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def ferry_score(result: dict[str, Any]) -> float | None:
    """The figure Evidently reports for the same test: the p-value, or the distance."""
    value = result["p_value"] if result["method"] in P_VALUE_TESTS else result["statistic"]
    return None if value is None else float(value)


def compare_column(ferry: dict[str, Any], evidently: dict[str, Any]) -> dict[str, Any]:
    """Verdicts agree when ferry's `drift` matches Evidently's flag (`warn` is not drift)."""
    same_test = EVIDENTLY_TESTS.get(evidently["test"]) == ferry["method"]
    score = ferry_score(ferry)
    difference = (abs(score - evidently["score"]) if same_test and score is not None
                  else None)
    return {"ferry_test": ferry["method"], "ferry_score": score,
            "ferry_verdict": ferry["verdict"], "ferry_psi": ferry["psi"],
            "evidently_test": evidently["test"], "evidently_score": evidently["score"],
            "evidently_drift": evidently["drift"],
            "verdicts_agree": (ferry["verdict"] == "drift") == evidently["drift"],
            "tests_fire_alike": (ferry["verdict"] in FIRED) == evidently["drift"],
            "same_test": same_test, "score_difference": difference}


def compare(report: WindowReport, evidently: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {result.column: compare_column(result.to_dict(), evidently[result.column])
            for result in report.columns}


def full_case(bench: Bench, paths: dict[str, Path], reference_rows: int) -> dict[str, Any]:
    """The issue's figure: evaluate_window on the whole current file against one reference."""
    reference = paths[f"reference_{reference_rows}"]
    ferry = time_ferry(bench, reference, paths["current"])
    evidently = run_evidently(bench, reference, paths["current"])["runs"][0]
    columns = compare(ferry.pop("report"), evidently["columns"])
    ratio = evidently["seconds"] / ferry["ferry_evaluate_window_median_s"]
    return {"reference_rows": reference_rows, "current_rows": bench.rows, **ferry,
            "evidently_s": evidently["seconds"], "ratio": ratio, **agreement(columns),
            "columns": columns}


def time_ferry(bench: Bench, reference: Path, current: Path) -> dict[str, Any]:
    """build_profile once (registration), then evaluate_window `repeat` times."""
    profile_s, profile = timed(lambda: build_profile(pq.read_table(reference)), 1)
    stored = json.dumps(profile.to_dict(), allow_nan=False)
    window = pq.read_table(current)
    window_s, report = timed(lambda: evaluate_window(profile, window), bench.repeat)
    return {"ferry_build_profile_s": profile_s[0], "ferry_profile_json_bytes": len(stored),
            "ferry_evaluate_window_s": window_s,
            "ferry_evaluate_window_median_s": statistics.median(window_s),
            "ferry_verdict": str(report.verdict), "report": report}


def agreement(columns: dict[str, dict[str, Any]]) -> dict[str, Any]:
    differences = {name: c["score_difference"] for name, c in columns.items()
                   if c["score_difference"] is not None}
    return {"verdicts_agree": sum(c["verdicts_agree"] for c in columns.values()),
            "tests_fire_alike": sum(c["tests_fire_alike"] for c in columns.values()),
            "columns_same_test": len(differences),
            "max_score_difference": max(differences.values(), default=None),
            "max_score_difference_by_test": by_test(columns),
            "beyond_tolerance": {name: difference for name, difference in differences.items()
                                 if difference > TOLERANCE}}


def by_test(columns: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The largest score difference among the columns of each test both tools used."""
    largest: dict[str, float] = {}
    for column in columns.values():
        if column["score_difference"] is not None:
            test = column["ferry_test"]
            largest[test] = max(largest.get(test, 0.0), column["score_difference"])
    return largest


def ferry_windows(profile: Profile, table: pa.Table, rows: int) -> list[dict[str, str]]:
    """Per window, ferry's verdict for each column."""
    return [{result.column: str(result.verdict)
             for result in evaluate_window(profile, table.slice(start, rows)).columns}
            for start in range(0, table.num_rows - rows + 1, rows)]


def flagged_by_column(windows: list[dict[str, bool]]) -> dict[str, int]:
    """In how many windows each column was flagged (columns never flagged left out)."""
    counts = {name: sum(window[name] for window in windows) for name in windows[0]}
    return {name: count for name, count in counts.items() if count}


def spread(values: list[int]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values)}


def window_case(bench: Bench, paths: dict[str, Path], reference_rows: int,
                rows: int) -> dict[str, Any]:
    """Unshifted windows: columns Evidently flags against ferry's three-level verdicts."""
    reference, windows = paths[f"reference_{reference_rows}"], paths[f"unshifted_{rows}"]
    profile = build_profile(pq.read_table(reference))
    ferry = ferry_windows(profile, pq.read_table(windows), rows)
    evidently = run_evidently(bench, reference, windows, chunk=rows)["runs"]
    evidently_flags = [{name: column["drift"] for name, column in run["columns"].items()}
                       for run in evidently]
    tests = sorted({column["test"] for run in evidently for column in run["columns"].values()})
    return {"reference_rows": reference_rows, "window_rows": rows, "windows": len(ferry),
            "evidently_tests": tests,
            "evidently_flagged_columns": spread([sum(w.values()) for w in evidently_flags]),
            **{f"ferry_{verdict}_columns": spread([list(w.values()).count(verdict)
                                                   for w in ferry])
               for verdict in ("drift", "warn", "ok", "insufficient_data")},
            "evidently_flags_by_column": flagged_by_column(evidently_flags),
            "ferry_drift_by_column": flagged_by_column(
                [{name: verdict == "drift" for name, verdict in w.items()} for w in ferry])}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for data and summary")
    parser.add_argument("--evidently-python", default=None,
                        help="python of the Evidently venv (default: OUT/evidently-venv, "
                             "made by setup_evidently.sh)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shift", type=float, default=0.5,
                        help="shift of the drifted numeric columns, in standard deviations")
    parser.add_argument("--cpu", type=int, default=0, help="the one CPU both tools run on")
    parser.add_argument("--repeat", type=int, default=3, help="ferry evaluate_window runs")
    return parser.parse_args()


def bench_from(args: argparse.Namespace) -> Bench:
    evidently = args.evidently_python or str(args.out / "evidently-venv" / "bin" / "python")
    if not Path(evidently).exists():
        raise SystemExit(f"no Evidently python at {evidently}: run "
                         f"bench/monitor/setup_evidently.sh {args.out} first")
    return Bench(out=args.out, evidently_python=evidently, rows=args.rows, shift=args.shift,
                 cpu=args.cpu, repeat=args.repeat)


def main() -> None:
    args = arguments()
    args.out.mkdir(parents=True, exist_ok=True)
    bench = bench_from(args)
    pinning = pin(bench.cpu)
    paths = write_data(bench)
    summary = {"command": "python " + shlex.join(sys.argv), "pinning": pinning,
               "processor": processor_summary(), "shift_sd": bench.shift,
               "full": [full_case(bench, paths, rows) for rows in REFERENCE_ROWS],
               "windows": [window_case(bench, paths, reference, rows)
                           for reference in REFERENCE_ROWS for rows in WINDOW_ROWS]}
    (bench.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(headline(summary), indent=2))


def processor_summary() -> dict[str, Any]:
    """lscpu's model name, family and model, and whether the flags that matter are there."""
    cpu = processor()
    flags = set(cpu.pop("flags", "").split())
    return {**cpu, **{flag: flag in flags for flag in ("avx2", "avx512f", "avx512_vnni")}}


def headline(summary: dict[str, Any]) -> dict[str, Any]:
    """summary.json without the per-column detail, for the terminal."""
    full = [{key: value for key, value in case.items() if key != "columns"}
            for case in summary["full"]]
    return {**summary, "full": full}


if __name__ == "__main__":
    main()
