"""The conversion check per family: register each zoo model and print the recorded numbers.

    python bench/conversion_check.py [--json OUT] [--probe-cost]

Each row is one family from tests/zoo.py, registered in a throwaway SQLite registry; the
numbers are those ferry records on the version (ONNX form against the original on the
registration sample and on the probe rows beyond it: `sample/range/thresholds` rows compared),
plus the held-out agreement measured here with `ferry.load`.

`--probe-cost` also times what the probes add to the registration of a 300-tree LightGBM and
XGBoost regressor (diabetes as float32, a 300-row sample): the check with and without probes,
median of `REPEATS` runs, against the whole registration.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import zoo

import ferry
from ferry.convert import find_converter
from ferry.convert.check import check_conversion
from ferry.convert.probes import as_served, build_probes
from ferry.registry import Registry
from ferry.runtime.onnx_runtime import OnnxPredictor

REPEATS = 5
PROBED_TREES = 300


def measure(name: str, case: zoo.Case, registry: Registry) -> dict[str, Any]:
    started = time.perf_counter()
    version = ferry.register(case.model, name, registry=registry, **case.register_kwargs)
    seconds = time.perf_counter() - started
    predictor = ferry.load(version.uri, registry=registry)
    predicted = np.asarray(predictor.predict(case.held_out))
    check = version.conversion_check
    row: dict[str, Any] = {"family": case.family, "rows": check["rows"],
                           "compared": check["compared"], "register_s": seconds,
                           "passed": check["passed"]}
    for output in check["outputs"]:
        row[output["role"]] = output
    if case.expected_proba is None and case.expected.dtype.kind == "f":
        row["held_out_max_abs"] = float(np.max(np.abs(predicted.reshape(case.expected.shape)
                                                      - case.expected)))
    else:
        row["held_out_agreement"] = float(np.mean(predicted.astype(str)
                                                  == case.expected.astype(str)))
    return row


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2e}"


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| family | sample/range/thresholds rows | label agreement |"
             " max abs err (proba/value) | max rel err | held-out | register s | passed |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        label = row.get("label", {}).get("label_agreement")
        numeric = row.get("probabilities") or row.get("value") or {}
        held = (f"agree {row['held_out_agreement']:.2%}" if "held_out_agreement" in row
                else f"max abs {row['held_out_max_abs']:.2e}")
        counts = "/".join(str(row["compared"].get(kind, 0))
                          for kind in (next(iter(row["compared"])), "range", "thresholds"))
        lines.append(f"| {row['family']} | {counts} |"
                     f" {'-' if label is None else f'{label:.2%}'} |"
                     f" {fmt(numeric.get('max_abs_error'))} | {fmt(numeric.get('max_rel_error'))}"
                     f" | {held} | {row['register_s']:.2f} | {row['passed']} |")
    return "\n".join(lines)


def probe_cost(model: Any, sample: pd.DataFrame) -> dict[str, float]:
    """Seconds to register `model`, and the check's seconds without and with probes."""
    with tempfile.TemporaryDirectory() as directory:
        registry = Registry(f"sqlite:///{Path(directory) / 'registry.db'}",
                            artifacts_url=str(Path(directory) / "artifacts"))
        register_s = _median(lambda: ferry.register(model, "m", sample=sample,
                                                    registry=registry))
    converter = find_converter(model)
    conversion = converter.convert(model, sample)
    rows = as_served(sample, conversion.signature)
    predictor = OnnxPredictor(conversion.onnx_model.SerializeToString(), conversion.signature,
                              conversion.task).load()

    def checked(with_probes: bool) -> Any:
        probes = build_probes(rows, conversion) if with_probes else None
        return check_conversion(lambda data: converter.reference(model, data),
                                predictor.outputs, rows, data="sample", probes=probes)

    return {"register_s": register_s, "check_s": _median(lambda: checked(False)),
            "check_with_probes_s": _median(lambda: checked(True)),
            "probe_rows": sum(checked(True).compared.values()) - len(rows)}


def _median(run: Any) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def probe_costs() -> str:
    from lightgbm import LGBMRegressor
    from sklearn.datasets import load_diabetes
    from xgboost import XGBRegressor

    x, y = load_diabetes(return_X_y=True, as_frame=True)
    x = x.astype(np.float32)
    models = {"LightGBM": LGBMRegressor(n_estimators=PROBED_TREES, n_jobs=1, verbose=-1),
              "XGBoost": XGBRegressor(n_estimators=PROBED_TREES, max_depth=6, n_jobs=1)}
    lines = [f"| {PROBED_TREES}-tree regressor | probe rows | register s | check s"
             " (sample only) | check s (with probes) | probes add s |", "|---|---|---|---|---|---|"]
    for name, model in models.items():
        cost = probe_cost(model.fit(x, y), x.head(300))
        added = cost["check_with_probes_s"] - cost["check_s"]
        lines.append(f"| {name} | {cost['probe_rows']} | {cost['register_s']:.3f} |"
                     f" {cost['check_s']:.3f} | {cost['check_with_probes_s']:.3f} |"
                     f" {added:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    parser.add_argument("--probe-cost", action="store_true",
                        help="also time what the probes add to a 300-tree registration")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        registry = Registry(f"sqlite:///{root / 'registry.db'}",
                            artifacts_url=str(root / "artifacts"))
        for name, build in zoo.IN_MEMORY.items():
            rows.append(measure(name, build(), registry))
        for name, build_file in zoo.FROM_FILES.items():
            rows.append(measure(name, build_file(root), registry))
    print(f"command: python bench/conversion_check.py{' --probe-cost' if args.probe_cost else ''}")
    print(table(rows))
    if args.probe_cost:
        print()
        print(probe_costs())
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
