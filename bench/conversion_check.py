"""The conversion check per family: register each zoo model and print the recorded numbers.

    python bench/conversion_check.py [--json OUT]

Each row is one family from tests/zoo.py, registered in a throwaway SQLite registry; the
numbers are those ferry records on the version (ONNX form against the original on the
registration sample), plus the held-out agreement measured here with `ferry.load`.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import zoo

import ferry
from ferry.registry import Registry


def measure(name: str, case: zoo.Case, registry: Registry) -> dict[str, Any]:
    started = time.perf_counter()
    version = ferry.register(case.model, name, registry=registry, **case.register_kwargs)
    seconds = time.perf_counter() - started
    predictor = ferry.load(version.uri, registry=registry)
    predicted = np.asarray(predictor.predict(case.held_out))
    row: dict[str, Any] = {"family": case.family, "rows": version.conversion_check["rows"],
                           "register_s": seconds, "passed": version.conversion_check["passed"]}
    for output in version.conversion_check["outputs"]:
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
    lines = ["| family | check rows | label agreement | max abs err (proba/value) |"
             " max rel err | held-out | register s | passed |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        label = row.get("label", {}).get("label_agreement")
        numeric = row.get("probabilities") or row.get("value") or {}
        held = (f"agree {row['held_out_agreement']:.2%}" if "held_out_agreement" in row
                else f"max abs {row['held_out_max_abs']:.2e}")
        lines.append(f"| {row['family']} | {row['rows']} |"
                     f" {'-' if label is None else f'{label:.2%}'} |"
                     f" {fmt(numeric.get('max_abs_error'))} | {fmt(numeric.get('max_rel_error'))}"
                     f" | {held} | {row['register_s']:.2f} | {row['passed']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
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
    print("command: python bench/conversion_check.py")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
