"""Registry benchmark: register, resolve, load and concurrent registration, on SQLite and on a
throwaway PostgreSQL server.

    python bench/registry_bench.py [--n 50] [--calls 500] [--json OUT] [--backends sqlite,postgres]

Measures, per backend:
- `ferry.register` of a small scikit-learn model (LogisticRegression on iris; conversion to
  ONNX, the conversion check, artifact writes and the metadata commit), median/p90 over n;
- `Registry.get` resolving `name` (latest ready), `name:N` and `name@alias`, median/p90 over
  `--calls` calls each;
- `ferry.load` (resolve, read and verify the ONNX artifact, start an onnxruntime session),
  median/p90 over n;
- two spawned processes each creating `--concurrent` versions of one model at once
  (`Registry.create_version` with a tiny artifact): distinct versions, whether they are exactly
  1..total, and the wall time from the start signal to the last commit.

Prints a Markdown table headed by the command that produced it; `--json OUT` also writes the
numbers. PostgreSQL needs Debian's `postgresql` server binaries; without them that column is
skipped with the reason.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shlex
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODEL = "iris"
ALIAS = "production"


# -- backends ---------------------------------------------------------------------------------


@contextmanager
def sqlite_backend(workdir: Path) -> Iterator[str]:
    yield f"sqlite:///{workdir / 'registry.db'}"


@contextmanager
def postgres_backend(workdir: Path) -> Iterator[str]:
    sys.path.insert(0, str(ROOT / "tests"))
    import psycopg
    from postgres_server import start_server

    server = start_server()
    try:
        name = f"bench_{uuid.uuid4().hex[:8]}"
        admin = f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        yield server.url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        server.stop()


BACKENDS: dict[str, Callable[[Path], Any]] = {
    "sqlite": sqlite_backend,
    "postgres": postgres_backend,
}


# -- measurements -----------------------------------------------------------------------------


def summary(seconds: list[float]) -> dict[str, float]:
    values = np.asarray(seconds) * 1000.0
    return {"median_ms": float(np.median(values)), "p90_ms": float(np.percentile(values, 90)),
            "min_ms": float(values.min()), "count": len(values)}


def timed(function: Callable[[], Any], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def bench_backend(url: str, workdir: Path, n: int, calls: int, concurrent: int
                  ) -> dict[str, Any]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import ferry
    from ferry.registry import Registry

    X, y = load_iris(return_X_y=True, as_frame=True)
    models = [LogisticRegression(C=0.05 * (i + 1), max_iter=1000).fit(X, y) for i in range(n)]
    registry = Registry(url, artifacts_url=str(workdir / "artifacts"), actor="bench")
    registry.models()  # connect and migrate outside the timings
    dialect = registry.engine.dialect
    server = f"{dialect.name} {'.'.join(map(str, dialect.server_version_info or ()))}"
    try:
        register_times = []
        for model in models:
            start = time.perf_counter()
            ferry.register(model, MODEL, sample=X, registry=registry)
            register_times.append(time.perf_counter() - start)
        middle = max(1, n // 2)
        registry.set_alias(MODEL, ALIAS, middle)
        uris = {"name": MODEL, "name:N": f"{MODEL}:{middle}", "name@alias": f"{MODEL}@{ALIAS}"}
        assert registry.get(uris["name"]).version == n
        assert registry.get(uris["name@alias"]).version == middle
        resolve = {label: summary(timed(lambda uri=uri: registry.get(uri), calls))
                   for label, uri in uris.items()}
        load = summary(timed(lambda: ferry.load(uris["name@alias"], registry=registry), n))
        predictor = ferry.load(uris["name@alias"], registry=registry)
        assert (predictor.predict(X) == models[middle - 1].predict(X)).mean() > 0.99
    finally:
        registry.close()
    return {"server": server, "register": summary(register_times), "resolve": resolve, "load": load,
            "concurrent": bench_concurrent(url, workdir, concurrent)}


def _concurrent_worker(url: str, artifacts_url: str, worker: int, count: int, barrier: Any,
                       results: Any) -> None:
    from ferry.registry import Registry, Runtime, VersionDraft
    from ferry.signature import Role, Signature, Task, TensorSpec

    signature = Signature(inputs=(TensorSpec("X", "float32", (-1, 4)),),
                          outputs=(TensorSpec("label", "int64", (-1,), Role.LABEL),))
    registry = Registry(url, artifacts_url=artifacts_url, actor=f"worker-{worker}")
    try:
        drafts = [VersionDraft(framework="sklearn", framework_version="1.0",
                               task=Task.CLASSIFICATION, runtime=Runtime.NATIVE,
                               original_sha256=registry.artifacts.put(f"{worker}-{i}".encode()),
                               original_format="joblib", signature=signature)
                  for i in range(count)]
        registry.models()
        barrier.wait(timeout=300)
        start = time.time()
        numbers = [registry.create_version("concurrent", d).version for d in drafts]
        results.put((worker, numbers, start, time.time(), None))
    except Exception as exc:
        results.put((worker, [], 0.0, 0.0, f"{type(exc).__name__}: {exc}"))
    finally:
        registry.close()


def bench_concurrent(url: str, workdir: Path, count: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    processes = [context.Process(target=_concurrent_worker,
                                 args=(url, str(workdir / "artifacts"), w, count, barrier,
                                       results)) for w in range(2)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    errors = [error for *_, error in outcomes if error]
    numbers = [n for _, ns, *_ in outcomes for n in ns]
    wall = max(o[3] for o in outcomes) - min(o[2] for o in outcomes) if not errors else None
    return {"attempted": 2 * count, "distinct_versions": len(set(numbers)),
            "consecutive": sorted(numbers) == list(range(1, 2 * count + 1)),
            "wall_s": wall, "errors": errors}


# -- report -----------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    import onnxruntime
    import sklearn
    import sqlalchemy

    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "sqlite": sqlite3.sqlite_version,
            "sqlalchemy": sqlalchemy.__version__, "sklearn": sklearn.__version__,
            "onnxruntime": onnxruntime.__version__}


def markdown(command: str, results: dict[str, dict[str, Any]], env: dict[str, Any],
             skipped: dict[str, str]) -> str:
    backends = list(results)

    def ms(entry: dict[str, float]) -> str:
        return f"{entry['median_ms']:.2f} / {entry['p90_ms']:.2f}"

    rows: list[tuple[str, list[str]]] = [
        (f"`ferry.register` (n={_first(results)['register']['count']})",
         [ms(results[b]["register"]) for b in backends]),
    ]
    for label in ("name", "name:N", "name@alias"):
        count = _first(results)["resolve"][label]["count"]
        rows.append((f"`get(\"{label}\")` ({count} calls)",
                     [ms(results[b]["resolve"][label]) for b in backends]))
    rows.append((f"`ferry.load` (n={_first(results)['load']['count']})",
                 [ms(results[b]["load"]) for b in backends]))
    concurrent = [results[b]["concurrent"] for b in backends]
    rows.append((f"2 processes x {concurrent[0]['attempted'] // 2} `create_version`:"
                 " distinct versions", [_distinct(c) for c in concurrent]))
    rows.append(("2 processes: wall time (s)",
                 ["-" if c["wall_s"] is None else f"{c['wall_s']:.2f}" for c in concurrent]))
    lines = [f"`{command}`", "",
             f"Python {env['python']}, {env['cpus']} CPUs, {env['platform']}; SQLite"
             f" {env['sqlite']}, SQLAlchemy {env['sqlalchemy']}, scikit-learn {env['sklearn']},"
             f" onnxruntime {env['onnxruntime']}; servers: "
             + ", ".join(results[b]["server"] for b in backends)
             + ". Times in ms, median / p90.", "",
             "| measurement | " + " | ".join(backends) + " |",
             "|---|" + "---:|" * len(backends)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    for backend, reason in skipped.items():
        lines.append(f"\n{backend} skipped: {reason}")
    return "\n".join(lines)


def _first(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return next(iter(results.values()))


def _distinct(entry: dict[str, Any]) -> str:
    text = f"{entry['distinct_versions']} of {entry['attempted']}"
    text += " (1..N, no gaps)" if entry["consecutive"] else " (NOT consecutive)"
    return text + (f"; errors: {entry['errors']}" if entry["errors"] else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=50,
                        help="registrations and loads per backend (default 50)")
    parser.add_argument("--calls", type=int, default=500,
                        help="resolve calls per URI form (default 500)")
    parser.add_argument("--concurrent", type=int, default=50,
                        help="versions each of the two processes creates (default 50)")
    parser.add_argument("--backends", default="sqlite,postgres",
                        help="comma-separated: sqlite, postgres (default both)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results here")
    args = parser.parse_args(argv)
    if args.n < 1 or args.calls < 1 or args.concurrent < 1:
        parser.error("--n, --calls and --concurrent must be at least 1")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        parser.error(f"unknown backends {unknown}: choose from {sorted(BACKENDS)}")

    command = "python bench/registry_bench.py " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for backend in backends:
        print(f"benchmarking {backend} ...", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix=f"ferry-bench-{backend}-") as tmp:
            os.environ["FERRY_HOME"] = str(Path(tmp) / "home")
            try:
                with BACKENDS[backend](Path(tmp)) as url:
                    results[backend] = bench_backend(url, Path(tmp), args.n, args.calls,
                                                     args.concurrent)
            except (RuntimeError, OSError) as exc:
                skipped[backend] = str(exc)
    if not results:
        print(f"no backend could run: {skipped}", file=sys.stderr)
        return 1
    env = environment()
    print(markdown(command.strip(), results, env, skipped))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": command.strip(), "environment": env,
                                         "results": results, "skipped": skipped}, indent=2))
    failed = [b for b, r in results.items()
              if r["concurrent"]["errors"] or not r["concurrent"]["consecutive"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
