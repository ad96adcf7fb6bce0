"""In-process physical-limit baseline: sklearn predict vs onnxruntime InferenceSession.run.

Usage (pin to one core):
  taskset -c 0 python bench/serve/inproc.py MODELS_DIR [--models tabular_gb] [--batches 1,8,64,1024]
                                      [--seconds 2] [--repeats 3] [--json OUT.json]

For each model, engine and batch size it calls the model in a tight loop for --seconds
(after a short warm-up) and records mean wall time, p50 wall time and mean thread CPU time
per call; repeated --repeats times, median reported. On a shared machine the p50 wall time and
the CPU time per call are the robust numbers (the mean wall time includes preemption by other
processes on the same core); us/row and rows/s are derived from the p50. onnxruntime uses
intra_op_num_threads=1, inter_op_num_threads=1, ORT_SEQUENTIAL. Also measures "ort+v2json":
the same ORT call wrapped by a KServe V2 JSON request decode (json.loads -> np.asarray) and
response encode (tolist -> json.dumps), i.e. the minimum codec work a V2 JSON server must do per
request, without any HTTP.
"""
import argparse
import json
import os
import statistics
import time
from pathlib import Path

import joblib
import numpy as np
import onnxruntime as ort


def bench_loop(fn, seconds, warmup=0.3):
    t_end = time.perf_counter() + warmup
    while time.perf_counter() < t_end:
        fn()
    lat = []
    c0 = time.thread_time()
    t0 = time.perf_counter()
    t_end = t0 + seconds
    while True:
        a = time.perf_counter()
        fn()
        b = time.perf_counter()
        lat.append(b - a)
        if b >= t_end:
            break
    total = time.perf_counter() - t0
    cpu = time.thread_time() - c0
    return {"calls": len(lat), "mean_us": total / len(lat) * 1e6,
            "p50_us": statistics.median(lat) * 1e6, "cpu_us": cpu / len(lat) * 1e6}


def make_v2_body(x):
    return json.dumps({"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                   "data": x.ravel().tolist()}]}).encode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models_dir")
    ap.add_argument("--models", default="tabular_gb")
    ap.add_argument("--batches", default="1,8,64,1024")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args()
    mdir = Path(a.models_dir)
    X = np.load(mdir / "X_test.npy")
    batches = [int(b) for b in a.batches.split(",")]
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    results = []
    print(f"affinity={sorted(os.sched_getaffinity(0))} ort={ort.__version__}")
    print(f"{'model':<11}{'engine':<12}{'batch':>6}{'mean_us':>10}{'p50_us':>10}{'cpu_us':>10}"
          f"{'p50us/row':>10}{'rows/s':>11}  loadavg")
    for name in a.models.split(","):
        pipe = joblib.load(mdir / f"{name}.joblib")
        sess = ort.InferenceSession(str(mdir / f"{name}.onnx"), so,
                                    providers=["CPUExecutionProvider"])
        for bs in batches:
            x = np.ascontiguousarray(X[np.arange(bs) % len(X)])
            body = make_v2_body(x)

            def v2json(body=body, sess=sess, name=name):
                req = json.loads(body)
                inp = req["inputs"][0]
                arr = np.asarray(inp["data"], dtype=np.float32).reshape(inp["shape"])
                label, prob = sess.run(None, {"input": arr})
                return json.dumps({"model_name": name, "outputs": [
                    {"name": "label", "shape": list(label.shape), "datatype": "INT64",
                     "data": label.tolist()},
                    {"name": "probabilities", "shape": list(prob.shape), "datatype": "FP32",
                     "data": prob.ravel().tolist()}]}).encode()

            engines = {
                "sklearn": lambda x=x, pipe=pipe: pipe.predict(x),
                "sk_proba": lambda x=x, pipe=pipe: pipe.predict_proba(x),
                "ort": lambda x=x, sess=sess: sess.run(None, {"input": x}),
                "ort+v2json": v2json,
            }
            for eng, fn in engines.items():
                reps = [bench_loop(fn, a.seconds) for _ in range(a.repeats)]
                mean_us = statistics.median(r["mean_us"] for r in reps)
                p50_us = statistics.median(r["p50_us"] for r in reps)
                cpu_us = statistics.median(r["cpu_us"] for r in reps)
                la = os.getloadavg()[0]
                row = {"model": name, "engine": eng, "batch": bs, "mean_us_per_call": mean_us,
                       "p50_us_per_call": p50_us, "cpu_us_per_call": cpu_us,
                       "p50_us_per_row": p50_us / bs, "rows_per_s_p50": bs / p50_us * 1e6,
                       "loadavg1": la,
                       "repeats_p50_us": [round(r["p50_us"], 2) for r in reps]}
                results.append(row)
                print(f"{name:<11}{eng:<12}{bs:>6}{mean_us:>10.1f}{p50_us:>10.1f}{cpu_us:>10.1f}"
                      f"{p50_us / bs:>10.2f}{row['rows_per_s_p50']:>11.0f}  {la:.1f}", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
