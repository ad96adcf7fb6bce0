"""Closed-loop HTTP load generator for KServe V2 (Open Inference Protocol) JSON and generic JSON.

Each of --concurrency workers sends one request, waits for the answer, and sends the next,
for --duration seconds after --warmup seconds (warm-up requests are not counted). Every run
stops by itself. Prints req/s, rows/s, p50/p95/p99/max latency and the error count; with
--server-pid it also reads the server's CPU time (process + children, via /proc) before and
after the measured window and prints server CPU microseconds per request, which stays
meaningful when other processes share the machine.

Modes
  v2   POST {url}/v2/models/{model}/infer with
       {"inputs":[{"name":INPUT,"shape":[rows,F],"datatype":"FP32","data":[...flat...]}]}
       --binary: Triton's binary tensor extension instead: a JSON header
       {"inputs":[{"name":INPUT,"shape":[rows,F],"datatype":"FP32",
                   "parameters":{"binary_data_size":4*rows*F}}],
        "parameters":{"binary_data_output":true}}
       followed by the raw little-endian FP32 bytes, with an `Inference-Header-Content-Length:
       <header bytes>` HTTP header; the outputs come back binary too. The response must be 200
       and, when it carries binary outputs, an Inference-Header-Content-Length header
       (checked on the first response of every connection).
  grpc KServe V2 gRPC ModelInfer to --url HOST:PORT (grpc.aio, one shared channel), tensor in
       contents.fp32_contents or, with --grpc-raw, raw_input_contents; needs grpcio and either
       tritonclient[grpc] or mlserver installed (for the V2 proto stubs)
  json POST {url}{path} with --template, where __ROWS__ is replaced by a JSON list of row
       lists, __FLAT__ by the flat list, __NROWS__ by the row count
       (e.g. --template '{"x": __ROWS__}' for a BentoML numpy endpoint)

Examples (pin the generator to its own core):
  taskset -c 1 python bench/v2load.py --url http://127.0.0.1:8080 --model tabular_gb -c 8 -d 10
  taskset -c 1 python bench/v2load.py --mode json --url http://127.0.0.1:3000 --path /predict \
      --template '{"x": __ROWS__}' -c 32 --rows 32 -d 10 --repeats 3

Engines: "raw" (default) is a minimal keep-alive HTTP/1.1 client on asyncio protocols (uvloop if
installed), ~65 us of client CPU per request: at c>=8 it matches wrk within noise on this machine
(bench/loadgen_check.sh); at c=1 wrk is ~15-20% faster on the fastest servers, because the client's
own time is in the critical path. "aiohttp" is the full client (~250 us CPU per request; ~0.4x
wrk's req/s at c=1).

Data: rows are drawn from --data (an .npy file of FP32 rows, e.g. the models dir X_test.npy) or
random normal with a fixed seed; --pool distinct bodies are pre-built and used round-robin.
--repeats N runs the measurement N times and reports each run plus the median of each metric.
Exit code 0 even with errors; the error count is in the output (and in --json-out).
"""
import argparse
import asyncio
import json
import os
import statistics
import time

import numpy as np

try:
    import aiohttp
except ImportError:  # pragma: no cover - only needed for --engine aiohttp
    aiohttp = None


def proc_tree(pid):
    """pid and all its descendants, found by scanning the ppid of every process in /proc
    (/proc/PID/task/TID/children only lists children forked by that one thread, which misses
    e.g. Triton's python-backend stub and TorchServe's Python worker, forked by other threads)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def proc_tree_cpu_s(pid):
    """utime+stime (s) of pid and all its live descendants (all threads)."""
    tck = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in proc_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tck
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def proc_tree_rss_mb(pid):
    """Sum of VmRSS over pid and its descendants, MiB (shared pages counted per process)."""
    total_kb = 0
    for p in proc_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total_kb / 1024


def build_bodies(args):
    """Request bodies (bytes), round-robin over --pool; see build_requests for the headers."""
    return [body for body, _ in build_requests(args)]


def build_requests(args):
    """(body, extra HTTP header lines) per pooled request."""
    binary = getattr(args, "binary", False) and args.mode == "v2"
    if args.data:
        X = np.load(args.data).astype(np.float32)
    else:
        X = np.random.default_rng(0).standard_normal((2048, args.features)).astype(np.float32)
    bodies = []
    for i in range(args.pool):
        idx = (np.arange(args.rows) + i * args.rows) % len(X)
        x = X[idx]
        if binary:
            raw = np.ascontiguousarray(x, dtype="<f4").tobytes()
            obj = {"inputs": [{"name": args.input_name, "shape": list(x.shape),
                               "datatype": "FP32", "parameters": {"binary_data_size": len(raw)}}],
                   "parameters": {"binary_data_output": True}}
            if args.outputs:
                obj["outputs"] = [{"name": n, "parameters": {"binary_data": True}}
                                  for n in args.outputs.split(",")]
            head = json.dumps(obj, separators=(",", ":")).encode()
            bodies.append((head + raw,
                           f"Content-Type: application/octet-stream\r\n"
                           f"Inference-Header-Content-Length: {len(head)}\r\n"))
        elif args.mode == "v2":
            obj = {"inputs": [{"name": args.input_name, "shape": list(x.shape),
                               "datatype": "FP32", "data": x.ravel().tolist()}]}
            if args.outputs:
                obj["outputs"] = [{"name": n} for n in args.outputs.split(",")]
            bodies.append((json.dumps(obj).encode(), "Content-Type: application/json\r\n"))
        else:
            s = (args.template.replace("__ROWS__", json.dumps(x.tolist()))
                 .replace("__FLAT__", json.dumps(x.ravel().tolist()))
                 .replace("__NROWS__", str(args.rows)))
            bodies.append((s.encode(), "Content-Type: application/json\r\n"))
    return bodies


class _RawConn(asyncio.Protocol):
    """Minimal HTTP/1.1 keep-alive client connection: one request in flight at a time.
    Handles Content-Length and chunked responses. Much cheaper per request than aiohttp."""

    def __init__(self):
        self.buf = bytearray()
        self.fut = None
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data
        self._check()

    def connection_lost(self, exc):
        if self.fut is not None and not self.fut.done():
            self.fut.set_exception(ConnectionError(f"connection lost: {exc}"))

    def _check(self):
        if self.fut is None or self.fut.done():
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        body_start = end + 4
        if "content-length" in hdrs:
            total = body_start + int(hdrs["content-length"])
            if len(self.buf) < total:
                return
            body = bytes(self.buf[body_start:total])
            del self.buf[:total]
        elif "chunked" in hdrs.get("transfer-encoding", ""):
            term = self.buf.find(b"0\r\n\r\n", body_start)
            if term < 0:
                return
            body = bytes(self.buf[body_start:term])  # still chunk-framed; only used for errors
            del self.buf[:term + 5]
        else:  # no length: only valid with Connection: close; treat what we have as body
            body = bytes(self.buf[body_start:])
            del self.buf[:]
        self.fut.set_result((status, body, hdrs))

    def request(self, data):
        self.fut = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.fut


def _grpc_modules():
    try:
        from tritonclient.grpc import service_pb2 as pb
        from tritonclient.grpc import service_pb2_grpc as pbg
    except ImportError:  # MLServer ships the same "inference" V2 proto
        from mlserver.grpc import dataplane_pb2 as pb
        from mlserver.grpc import dataplane_pb2_grpc as pbg
    return pb, pbg


def build_grpc_requests(args):
    pb, _ = _grpc_modules()
    if args.data:
        X = np.load(args.data).astype(np.float32)
    else:
        X = np.random.default_rng(0).standard_normal((2048, args.features)).astype(np.float32)
    reqs = []
    for i in range(args.pool):
        x = X[(np.arange(args.rows) + i * args.rows) % len(X)]
        t = pb.ModelInferRequest.InferInputTensor(name=args.input_name, datatype="FP32",
                                                  shape=list(x.shape))
        r = pb.ModelInferRequest(model_name=args.model)
        if args.grpc_raw:
            r.raw_input_contents.append(np.ascontiguousarray(x).tobytes())
        else:
            t.contents.fp32_contents.extend(x.ravel().tolist())
        r.inputs.append(t)
        if args.outputs:
            for n in args.outputs.split(","):
                r.outputs.append(pb.ModelInferRequest.InferRequestedOutputTensor(name=n))
        reqs.append(r)
    return reqs


async def run_once_grpc(args, target, reqs):
    import grpc
    _, pbg = _grpc_modules()
    lat, err_samples, state = [], [], {}
    errors = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pbg.GRPCInferenceServiceStub(channel)
        t_start = time.perf_counter()
        t_measure = t_start + args.warmup
        t_end = t_measure + args.duration

        async def worker(wid):
            nonlocal errors
            i = wid
            while time.perf_counter() < t_end:
                req = reqs[i % len(reqs)]
                i += args.concurrency
                t0 = time.perf_counter()
                ok = False
                try:
                    await stub.ModelInfer(req, timeout=args.timeout)
                    ok = True
                except Exception as e:
                    if len(err_samples) < 3:
                        err_samples.append(f"{type(e).__name__}: {e}"[:200])
                t1 = time.perf_counter()
                if t0 >= t_measure and t1 <= t_end:
                    if ok:
                        lat.append(t1 - t0)
                    else:
                        errors += 1

        await asyncio.gather(cpu_sampler(args, state, t_measure, t_end),
                             *(worker(w) for w in range(args.concurrency)))
    return summarize(args, lat, errors, err_samples, state)


async def run_once(args, url, bodies):
    if args.mode == "grpc":
        return await run_once_grpc(args, url, bodies)
    if args.engine == "raw":
        return await run_once_raw(args, url, bodies)
    return await run_once_aiohttp(args, url, bodies)


def summarize(args, lat, errors, err_samples, state):
    n = len(lat)
    lat.sort()

    def pct(p):
        return lat[min(n - 1, int(p / 100 * n))] * 1e3 if n else float("nan")

    res = {"requests": n, "errors": errors, "req_s": n / args.duration,
           "rows_s": n * args.rows / args.duration,
           "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
           "max_ms": lat[-1] * 1e3 if n else float("nan"),
           "mean_ms": statistics.fmean(lat) * 1e3 if n else float("nan"),
           "loadavg1": os.getloadavg()[0]}
    if args.server_pid and state.get("cpu1") is not None and n:
        srv = state["cpu1"] - state["cpu0"]
        res["server_cpu_util"] = srv / args.duration
        res["server_cpu_us_per_req"] = srv / n * 1e6
        res["loadgen_cpu_util"] = (state["lg1"] - state["lg0"]) / args.duration
        res["server_rss_mb"] = proc_tree_rss_mb(args.server_pid)
    if err_samples:
        res["error_samples"] = err_samples
    return res


async def cpu_sampler(args, state, t_measure, t_end):
    if not args.server_pid:
        return
    await asyncio.sleep(max(0.0, t_measure - time.perf_counter()))
    state["cpu0"] = proc_tree_cpu_s(args.server_pid)
    state["lg0"] = time.process_time()
    await asyncio.sleep(max(0.0, t_end - time.perf_counter()))
    state["cpu1"] = proc_tree_cpu_s(args.server_pid)
    state["lg1"] = time.process_time()


def check_binary_response(payload, hdrs):
    """None when a binary-extension response looks right, else why not: a JSON header of
    Inference-Header-Content-Length bytes whose outputs say binary_data_size, and exactly that
    many bytes after it."""
    value = hdrs.get("inference-header-content-length")
    if value is None:
        return f"no Inference-Header-Content-Length in the response: {payload[:120]!r}"
    n = int(value)
    head = json.loads(payload[:n])
    sizes = [o.get("parameters", {}).get("binary_data_size") for o in head.get("outputs", [])]
    if not sizes or None in sizes or sum(sizes) != len(payload) - n:
        return f"binary outputs do not add up: sizes {sizes}, {len(payload) - n} bytes after header"
    return None


async def run_once_raw(args, url, bodies):
    from urllib.parse import urlsplit
    u = urlsplit(url)
    host, port = u.hostname, u.port or 80
    path = u.path + (("?" + u.query) if u.query else "")
    reqs = [(f"POST {path} HTTP/1.1\r\nHost: {u.netloc}\r\n{extra}"
             f"Content-Length: {len(b)}\r\n\r\n").encode() + b for b, extra in bodies]
    binary = getattr(args, "binary", False)
    loop = asyncio.get_running_loop()
    lat, err_samples, state = [], [], {}
    errors = 0
    t_start = time.perf_counter()
    t_measure = t_start + args.warmup
    t_end = t_measure + args.duration

    async def worker(wid):
        nonlocal errors
        conn = None
        i = wid
        while True:
            if time.perf_counter() >= t_end:
                break
            data = reqs[i % len(reqs)]
            i += args.concurrency
            t0 = time.perf_counter()
            ok = False
            try:
                fresh = conn is None or conn.transport.is_closing()
                if fresh:
                    _, conn = await loop.create_connection(_RawConn, host, port)
                status, payload, hdrs = await asyncio.wait_for(conn.request(data), args.timeout)
                ok = status == 200
                if not ok and len(err_samples) < 3:
                    err_samples.append(f"HTTP {status}: {payload[:200]!r}")
                if ok and binary and fresh:  # once per connection: cheap, catches a JSON reply
                    why = check_binary_response(payload, hdrs)
                    if why:
                        ok = False
                        if len(err_samples) < 3:
                            err_samples.append(why)
            except Exception as e:
                if len(err_samples) < 3:
                    err_samples.append(f"{type(e).__name__}: {e}"[:200])
                if conn is not None:
                    conn.transport.close()
                conn = None
            t1 = time.perf_counter()
            if t0 >= t_measure and t1 <= t_end:
                if ok:
                    lat.append(t1 - t0)
                else:
                    errors += 1
        if conn is not None:
            conn.transport.close()

    await asyncio.gather(cpu_sampler(args, state, t_measure, t_end),
                         *(worker(w) for w in range(args.concurrency)))
    return summarize(args, lat, errors, err_samples, state)


async def run_once_aiohttp(args, url, bodies):
    lat = []
    errors = 0
    err_samples = []
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    conn = aiohttp.TCPConnector(limit=args.concurrency, force_close=False)

    def headers_of(extra):
        return dict(line.split(": ", 1) for line in extra.split("\r\n") if line)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        t_start = time.perf_counter()
        t_measure = t_start + args.warmup
        t_end = t_measure + args.duration
        state = {}

        async def worker(wid):
            nonlocal errors
            i = wid
            while True:
                now = time.perf_counter()
                if now >= t_end:
                    return
                body, extra = bodies[i % len(bodies)]
                i += args.concurrency
                t0 = time.perf_counter()
                ok = False
                try:
                    async with session.post(url, data=body, headers=headers_of(extra)) as r:
                        payload = await r.read()
                        ok = r.status == 200
                        if not ok and len(err_samples) < 3:
                            err_samples.append(f"HTTP {r.status}: {payload[:200]!r}")
                except Exception as e:
                    if len(err_samples) < 3:
                        err_samples.append(f"{type(e).__name__}: {e}"[:200])
                t1 = time.perf_counter()
                if t0 >= t_measure and t1 <= t_end:
                    if ok:
                        lat.append(t1 - t0)
                    else:
                        errors += 1

        await asyncio.gather(cpu_sampler(args, state, t_measure, t_end),
                             *(worker(w) for w in range(args.concurrency)))
    return summarize(args, lat, errors, err_samples, state)


def fmt(r):
    s = (f"req/s={r['req_s']:8.1f} rows/s={r['rows_s']:9.1f} p50={r['p50_ms']:7.2f}ms "
         f"p95={r['p95_ms']:7.2f}ms p99={r['p99_ms']:7.2f}ms errors={r['errors']}")
    if "server_cpu_us_per_req" in r:
        s += (f" srvCPU={r['server_cpu_us_per_req']:7.0f}us/req "
              f"srvUtil={r['server_cpu_util']:.2f} lgUtil={r['loadgen_cpu_util']:.2f}")
    return s + f" load1={r['loadavg1']:.1f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--mode", choices=["v2", "json", "grpc"], default="v2")
    ap.add_argument("--grpc-raw", action="store_true",
                    help="grpc: send tensor bytes in raw_input_contents instead of fp32_contents")
    ap.add_argument("--model", default="tabular_gb")
    ap.add_argument("--input-name", default="input")
    ap.add_argument("--binary", action="store_true",
                    help="v2: Triton's binary tensor extension (JSON header + raw FP32 bytes, "
                    "binary outputs asked for) instead of JSON tensors")
    ap.add_argument("--outputs", help="v2: comma list of requested output names")
    ap.add_argument("--path", default="/predict", help="json mode: request path")
    ap.add_argument("--template", default='{"x": __ROWS__}', help="json mode body template")
    ap.add_argument("-c", "--concurrency", type=int, default=1)
    ap.add_argument("-d", "--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--rows", type=int, default=1, help="rows per request")
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--data", help=".npy FP32 rows to send (default: seeded random)")
    ap.add_argument("--pool", type=int, default=64, help="distinct request bodies")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--engine", choices=["raw", "aiohttp"], default="raw",
                    help="raw: minimal asyncio HTTP/1.1 client (default, ~4x less client CPU per "
                    "request); aiohttp: full client")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--server-pid", type=int, help="account server CPU time and RSS")
    ap.add_argument("--json-out", help="append one JSON line with the summary")
    ap.add_argument("--label", default="", help="free text stored in --json-out")
    ap.add_argument("--dump-body", help="write the first request body to this file and exit "
                    "(for bench/wrk_post.lua)")
    args = ap.parse_args(argv)
    if args.duration > 120:
        ap.error("--duration is capped at 120 s")
    if args.binary and args.mode != "v2":
        ap.error("--binary needs --mode v2")
    if args.mode == "grpc":
        url = args.url.split("://", 1)[-1]
        bodies = build_grpc_requests(args)
    else:
        url = (f"{args.url}/v2/models/{args.model}/infer" if args.mode == "v2"
               else f"{args.url}{args.path}")
        bodies = build_requests(args)
    if args.dump_body:
        with open(args.dump_body, "wb") as f:
            f.write(bodies[0] if args.mode == "grpc" else bodies[0][0])
        print(url)
        return None
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    runs = []
    for i in range(args.repeats):
        r = asyncio.run(run_once(args, url, bodies))
        runs.append(r)
        print(f"run {i + 1}/{args.repeats} c={args.concurrency} rows={args.rows}: {fmt(r)}",
              flush=True)
        if r.get("error_samples"):
            print("  error samples:", r["error_samples"], flush=True)
    keys = [k for k in runs[0] if isinstance(runs[0][k], (int, float))]
    med = {k: statistics.median(r[k] for r in runs if k in r) for k in keys}
    med["errors"] = sum(r["errors"] for r in runs)
    print(f"MEDIAN of {len(runs)} c={args.concurrency} rows={args.rows}: {fmt(med)}"
          f" (errors summed)", flush=True)
    if args.json_out:
        with open(args.json_out, "a") as f:
            f.write(json.dumps({"label": args.label, "url": url, "mode": args.mode,
                                "concurrency": args.concurrency, "rows": args.rows,
                                "duration": args.duration, "median": med, "runs": runs}) + "\n")
    return med


if __name__ == "__main__":
    main()
