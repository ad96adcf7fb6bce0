"""Batch scoring throughput: the local engine against a bare pyarrow + ONNX Runtime loop,
two workers against one, Spark `local[2]` beside them, and peak memory on 10M rows.

    .venv/bin/python bench/batch/batch_bench.py --out bench/out/batch [--rows 1000000]
        [--repeats 3] [--no-spark] [--rss-rows 10000000]

Issue 13: on 1M rows x 20 features (Parquet, row groups of 131,072 rows) and a
gradient-boosting classifier of 100 trees (depth 3), the local engine with one worker runs
at >= 0.9x a bare loop on one core (read batches of 65,536 rows, stack them into float32,
`InferenceSession.run` with one intra-op thread, write id + label + probabilities to
Parquet), and two workers at >= 1.6x one worker. The baseline and one worker run pinned to
core 0; two workers and Spark get both cores. Every figure is the median of `--repeats`
runs, in one process, on one machine. `--rss-rows` scores that many rows (a separate file)
and samples the resident memory of the whole process tree every 0.1 s: the issue asks under
1 GiB for 10M rows. Prints the figures and writes OUT/summary.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from processor import processor  # noqa: E402

FEATURES = [f"x{i}" for i in range(20)]
ROW_GROUP = 131_072
BATCH = 65_536


def write_rows(path: Path, rows: int, seed: int) -> Path:
    """`rows` rows of `id` and 20 float32 features, written in chunks (bounded memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    schema = pa.schema([("id", pa.int64()), *((f, pa.float32()) for f in FEATURES)])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, ROW_GROUP):
            count = min(ROW_GROUP, rows - start)
            values = rng.normal(size=(count, len(FEATURES))).astype(np.float32)
            columns = [pa.array(np.arange(start, start + count)), *values.T]
            writer.write_table(pa.table(columns, schema=schema), row_group_size=ROW_GROUP)
    return path


def register_model() -> bytes:
    import pandas as pd
    from sklearn.ensemble import GradientBoostingClassifier

    import ferry
    from ferry.registry import Registry

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(20_000, 20)).astype(np.float32), columns=FEATURES)
    y = (x["x0"] + x["x1"] * x["x2"] + rng.normal(scale=0.5, size=len(x)) > 0).astype(int)
    model = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0)
    ferry.register(model.fit(x, y), "gbt", sample=x.head(200))
    registry = Registry()
    return registry.read_artifact(registry.get("gbt"), "onnx")


def bare_loop(onnx: bytes, source: Path, target: Path) -> None:
    """The baseline: what a user would write by hand with pyarrow and ONNX Runtime."""
    import onnxruntime as ort
    import pyarrow as pa
    import pyarrow.parquet as pq

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    writer = None
    for batch in pq.ParquetFile(source).iter_batches(batch_size=BATCH):
        x = np.empty((batch.num_rows, len(FEATURES)), dtype=np.float32)
        for index, feature in enumerate(FEATURES):
            x[:, index] = batch.column(feature).to_numpy()
        label, probabilities = session.run(None, {name: x})
        out = pa.table({"id": batch.column("id"), "prediction": label,
                        "proba_0": probabilities[:, 0], "proba_1": probabilities[:, 1]})
        writer = writer or pq.ParquetWriter(target, out.schema)
        writer.write_table(out)
    assert writer is not None
    writer.close()


def timed(run: Callable[[], Any], repeats: int) -> float:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def pinned(cores: set[int]) -> None:
    os.sched_setaffinity(0, cores)


def engine_run(source: Path, out: Path, engine: str = "local", workers: int = 1) -> Any:
    from ferry.batch import batch

    return batch("gbt", str(source), str(out), key="id", engine=engine, workers=workers)


class TreeMemory:
    """Peak resident memory of a process and its children, sampled every 0.1 s: the sum
    over the tree (shared pages counted once per process, so an upper bound) and the
    largest single process."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.peak = self.peak_single = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        while not self.stop.wait(0.1):
            try:
                tree = [self.process, *self.process.children(recursive=True)]
            except psutil.Error:
                return
            sizes = [_rss(member) for member in tree]
            self.peak = max(self.peak, sum(sizes))
            self.peak_single = max(self.peak_single, *sizes)

    def __enter__(self) -> TreeMemory:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def _rss(process: Any) -> int:
    """A process's resident bytes; 0 for one that ended while it was sampled."""
    import psutil

    try:
        return int(process.memory_info().rss)
    except psutil.Error:
        return 0


def throughput(args: argparse.Namespace, onnx: bytes, source: Path) -> dict[str, float]:
    out = args.out
    all_cores = os.sched_getaffinity(0)
    pinned({min(all_cores)})
    figures = {"bare_loop_s": timed(lambda: bare_loop(onnx, source, out / "bare.parquet"),
                                    args.repeats),
               "local_1_worker_s": timed(lambda: engine_run(source, out / "local1"),
                                         args.repeats)}
    pinned(all_cores)
    figures["local_2_workers_s"] = timed(lambda: engine_run(source, out / "local2",
                                                            workers=2), args.repeats)
    figures["warehouse_2_workers_s"] = timed(
        lambda: _warehouse(source), args.repeats)
    if args.spark:
        engine_run(source, out / "spark", engine="spark", workers=2)  # session start, warm-up
        figures["spark_local2_s"] = timed(
            lambda: engine_run(source, out / "spark", engine="spark", workers=2), args.repeats)
    return figures


def _warehouse(source: Path) -> Any:
    from ferry.batch import batch

    return batch("gbt", str(source), key="id", workers=2)


def ratios(figures: dict[str, float]) -> dict[str, float]:
    found = {"local_1_vs_bare": figures["bare_loop_s"] / figures["local_1_worker_s"],
             "local_2_vs_1": figures["local_1_worker_s"] / figures["local_2_workers_s"]}
    if "spark_local2_s" in figures:
        found["spark_vs_bare"] = figures["bare_loop_s"] / figures["spark_local2_s"]
    return found


def memory(args: argparse.Namespace, out: Path) -> dict[str, float]:
    """`ferry batch` on `--rss-rows` rows, as a user runs it, into a Parquet folder and into
    the warehouse, with its process tree's memory sampled."""
    source = write_rows(out / "big.parquet", args.rss_rows, seed=2)
    figures: dict[str, float] = {"rss_rows": args.rss_rows}
    for name, target in (("parquet", ["--output", str(out / "big-out")]), ("warehouse", [])):
        command = [sys.executable, "-m", "ferry", "batch", "gbt", "--input", str(source),
                   "--key", "id", "--workers", "2", "--json", *target]
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        with TreeMemory(process.pid) as sampled:
            assert process.wait() == 0
        figures[f"rss_{name}_seconds"] = time.perf_counter() - start
        figures[f"rss_{name}_tree_peak_mib"] = sampled.peak / 2**20
        figures[f"rss_{name}_largest_process_mib"] = sampled.peak_single / 2**20
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "batch")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--spark", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--rss-rows", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["FERRY_HOME"] = str(args.out / f"home-{os.getpid()}")
    onnx = register_model()
    source = write_rows(args.out / "rows.parquet", args.rows, seed=1)
    figures: dict[str, Any] = {"processor": processor(), "rows": args.rows,
                               **throughput(args, onnx, source)}
    figures.update({k: round(v, 3) for k, v in ratios(figures).items()})
    if args.rss_rows:
        figures.update(memory(args, args.out))
    print(json.dumps(figures, indent=2))
    (args.out / "summary.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
