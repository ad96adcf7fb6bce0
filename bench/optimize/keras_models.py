"""`ferry optimize` on Keras models, against the calls Keras users make: a `tf.function` and
the model called eagerly.

    taskset -c 1 .venv/bin/python bench/optimize/keras_models.py --out bench/out/optimize-keras

Two models, built and registered in a fresh registry under OUT/home:
- `keras_digits_cnn`: a Keras CNN (Rescaling, two Conv2D-BatchNorm-ReLU-MaxPool stages,
  Dropout, Dense) trained for real on sklearn's digits upscaled to 32x32;
- `keras_resnet50`: `keras.applications.ResNet50(weights=None)` (25.6 M parameters, random
  weights: nothing is downloaded), 224x224x3 input, 1000 classes.
Each is optimized at batch 1 with one thread (`threads=1`, pinned to the core taskset gives):
every candidate, the `tf.function` baseline (traced once with an open batch axis) and the
eager call are timed interleaved in one run on the same inputs; speed-ups are paired per
slice. The digits CNN is gated on labelled validation rows (accuracy drop bounded); ResNet-50
on random images (agreement only). Writes OUT/<model>/report.md and OUT/summary.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SEED = 0
GOALS = {"keras_digits_cnn": 10.0, "keras_resnet50": 14.0}
"""Speed-up at batch 1 over `tf.function`: 10x for the CNN (issue 10); 14x is the documents'
figure for a ResNet-50-like model (2,000 ms to 140 ms on one CPU thread), shown beside ours."""
RESNET_SAMPLE_ROWS = 16
RESNET_VALIDATION_ROWS = 16


@dataclass
class Built:
    model: Any
    sample: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray | None
    description: str


def build_digits_cnn(epochs: int = 15) -> Built:
    import keras
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    keras.utils.set_random_seed(SEED)
    digits = load_digits()
    images = np.kron(digits.images, np.ones((4, 4)))[..., None].astype(np.float32)
    x_train, x_val, y_train, y_val = train_test_split(
        images, digits.target, test_size=0.2, random_state=SEED, stratify=digits.target)
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((32, 32, 1)), layers.Rescaling(1 / 16),
        *_conv_stage(layers, 16), *_conv_stage(layers, 32),
        layers.Flatten(), layers.Dropout(0.3), layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    return Built(model, x_train[:300], x_val, y_val,
                 "Keras CNN (Rescaling, 2x Conv2D-BatchNorm-ReLU-MaxPool, Dropout, Dense) on"
                 " sklearn digits upscaled to 32x32x1, softmax over 10 classes")


def _conv_stage(layers: Any, filters: int) -> list[Any]:
    return [layers.Conv2D(filters, 3, padding="same", use_bias=False),
            layers.BatchNormalization(), layers.ReLU(), layers.MaxPooling2D()]


def build_resnet50() -> Built:
    import keras

    keras.utils.set_random_seed(SEED)
    model = keras.applications.ResNet50(weights=None)
    rng = np.random.default_rng(SEED)
    images = rng.uniform(0, 255, (RESNET_SAMPLE_ROWS + RESNET_VALIDATION_ROWS, 224, 224, 3))
    images = images.astype(np.float32)
    return Built(model, images[:RESNET_SAMPLE_ROWS], images[RESNET_SAMPLE_ROWS:], None,
                 "keras.applications.ResNet50(weights=None), 224x224x3, 1000 classes")


BUILDERS = {"keras_digits_cnn": build_digits_cnn, "keras_resnet50": build_resnet50}


def run_one(name: str, out: Path) -> dict[str, Any]:
    import ferry

    started = time.perf_counter()
    built = BUILDERS[name]()
    trained_s = time.perf_counter() - started
    started = time.perf_counter()
    version = ferry.register(built.model, name, sample=built.sample, description=built.description)
    register_s = time.perf_counter() - started
    result = ferry.optimize(version.uri, batch_sizes=(1,), threads=1,
                            validation=(built.x_val, built.y_val),
                            report=out / name / "report.md")
    return _row(name, result, version, trained_s, register_s)


def _row(name: str, result: Any, version: Any, trained_s: float,
         register_s: float) -> dict[str, Any]:
    chosen = result.chosen
    timing = chosen.timings[1] if chosen else None
    eager = result.other_baselines["eager"][1]
    baseline = result.baseline[1]
    return {
        "model": name, "train_s": round(trained_s, 1), "register_s": round(register_s, 1),
        "conversion_check": {o["role"]: o.get("max_abs_error")
                             for o in version.conversion_check["outputs"]},
        "tf_function_us": baseline.median_s * 1e6, "eager_us": eager.median_s * 1e6,
        "chosen": chosen.label if chosen else None,
        "chosen_us": timing.median_s * 1e6 if timing else None,
        "speedup_vs_tf_function": timing.speedup if timing else None,
        "speedup_vs_eager": (eager.median_s / timing.median_s) if timing else None,
        "goal_vs_tf_function": GOALS[name],
        "gate": chosen.verdict.to_dict() if chosen and chosen.verdict else None,
        "candidates": [{"name": c.label, "status": c.status,
                        "speedup": c.timings[1].speedup if 1 in c.timings else None,
                        "reason": c.reason} for c in result.candidates],
        "version": result.version.uri if result.version else None,
    }


def _processor() -> dict[str, Any]:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
    return {"model": fields.get("Model name", "").strip(),
            "family": fields.get("CPU family", "").strip(),
            "model_number": fields.get("Model", "").strip(),
            "flags": [f for f in wanted if f in flags]}


def _markdown(machine: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    lines = [f"Processor: {machine['processor']}; affinity {machine['affinity']};"
             f" TensorFlow {machine['tensorflow']}.", "",
             "| model | tf.function µs | eager µs | chosen | chosen µs | vs tf.function |"
             " vs eager | goal (vs tf.function) | gate |", "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        gate = "; ".join(f"{m['metric']} {m['value']:.4g}" for m in
                         (row["gate"] or {}).get("measures", []))
        lines.append(
            f"| {row['model']} | {row['tf_function_us']:,.1f} | {row['eager_us']:,.1f} |"
            f" {row['chosen']} | {row['chosen_us'] or 0:,.1f} |"
            f" {row['speedup_vs_tf_function'] or 0:.2f}x | {row['speedup_vs_eager'] or 0:.2f}x |"
            f" {row['goal_vs_tf_function']:.0f}x | {gate} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    os.environ["FERRY_HOME"] = str((args.out / "home").resolve())
    from ferry.convert.tensorflow.runtime import tensorflow

    tf = tensorflow()

    wanted = [m for m in args.only.split(",") if m] or list(BUILDERS)
    rows = []
    for name in wanted:
        print(f"== {name}", flush=True)
        rows.append(run_one(name, args.out))
        print(json.dumps(rows[-1]), flush=True)
    machine = {"processor": _processor(), "affinity": sorted(os.sched_getaffinity(0)),
               "python": sys.version.split()[0], "platform": platform.platform(),
               "tensorflow": tf.__version__}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps({"machine": machine, "models": rows},
                                                      indent=2, default=str))
    (args.out / "summary.md").write_text(_markdown(machine, rows))
    print(_markdown(machine, rows))


if __name__ == "__main__":
    main()
