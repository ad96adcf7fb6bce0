"""Benchmark several peer servers in interleaved rounds, so that ratios between peers are
measured in the same time window on a shared machine.

Usage (driver + load generator on core 1; servers are started on core 0 by the driver):
  taskset -c 1 python bench/serve/run_matrix.py --root ROOT
      [--peers-file bench/serve/peers.json] [--only a,b,c] [--configs 1:1,8:1,32:1,8:32]
      [--repeats 3] [--duration 10] [--warmup 2] [--cold-repeats 3] [--ref triton-py-batch]
      [--ref-binary triton-py-batch-bin] [--out results.json]

ROOT holds the venvs, models/ and generated repos named in peers.json ({ROOT} placeholders;
{BENCH} is this folder, {REPO} the repository, {SYSPATH} the caller's PATH).
A peer with "mode": "grpc" is loaded over V2 gRPC at its "grpc_target" (readiness and cold start
are still probed over HTTP V2 JSON at its "url"); "load_args" adds v2load.py options (e.g.
"--binary"). A peer with "server": OTHER starts no process of its own: it loads OTHER's running
server (e.g. the same server over the binary extension), so it has no cold start of its own.
A peer with "cpus": "0,1" is started with that CPU list instead of --server-core (e.g. a
multi-worker server given both cores; it then shares core 1 with the load generator).
Steps
 1. cold start, per peer, --cold-repeats times: spawn `taskset -c CPUS bash -c "[PRE;] exec CMD"`
    in a new process group, poll a 1-row request every 25 ms until HTTP 200 (time = spawn ->
    first 200), stop it (SIGTERM to its group, SIGKILL after 15 s); the last start is kept.
 2. idle RSS (sum of VmRSS over the server's process tree) and idle CPU over 5 s, all peers up.
 3. for round in 1..repeats: for config "C:R": for peer (peers.json order in odd rounds,
    reversed in even rounds): one v2load.py run (C closed-loop
    clients, R rows per request, --warmup s unmeasured, then --duration s), with the server's
    CPU time read from /proc before/after (server CPU us per request).
 4. stop every server it started (only those process groups), print a summary: per peer and
    config the median over rounds, and the median over rounds of the ratio to --ref measured in
    the same round (and, for "--binary" peers, to --ref-binary); install size = du of the venv.
"""
import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import v2load  # noqa: E402


def expand(s, root):
    return (s.replace("{ROOT}", str(root)).replace("{BENCH}", str(HERE))
            .replace("{REPO}", str(HERE.parent.parent))
            .replace("{SYSPATH}", os.environ.get("PATH", "/usr/bin:/bin")))


class Server:
    def __init__(self, peer, root, core, logdir):
        self.p = peer
        self.root = root
        self.core = peer.get("cpus", core)
        self.cmd = expand(peer["cmd"], root)
        self.cwd = expand(peer.get("cwd", str(HERE.parent)), root)
        self.url = peer["url"]
        self.mode = peer.get("mode", "v2")
        self.model = peer.get("model", "tabular_gb")
        self.path = peer.get("path", "/predict")
        self.template = peer.get("template", '{"x": __ROWS__}')
        self.logdir = logdir
        self.proc = None
        self.n_start = 0

    def probe(self, data):
        # readiness is always probed over HTTP (V2 JSON for grpc peers: their "url")
        mode = "v2" if self.mode == "grpc" else self.mode
        ns = argparse.Namespace(mode=mode, input_name="input", outputs=None,
                                template=self.template, rows=1, pool=1, features=20, data=data)
        body = v2load.build_bodies(ns)[0]
        url = (f"{self.url}/v2/models/{self.model}/infer" if mode == "v2"
               else f"{self.url}{self.path}")
        return url, body

    def start(self, data, timeout):
        Path(self.cwd).mkdir(parents=True, exist_ok=True)
        self.n_start += 1
        url, body = self.probe(data)
        pre = expand(self.p["pre"], self.root) + "; " if self.p.get("pre") else ""
        with open(Path(self.logdir) / f"{self.p['name']}.{self.n_start}.log", "wb") as log:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(["taskset", "-c", self.core, "bash", "-c",
                                          pre + "exec " + self.cmd],
                                         cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        last = None
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                return None, f"exited with {self.proc.returncode}"
            try:
                req = urllib.request.Request(url, data=body,
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - t0, r.read()[:200].decode(errors="replace")
            except Exception as e:  # keep polling
                last = f"{type(e).__name__}: {e}"[:200]
            time.sleep(0.025)
        return None, f"timeout: {last}"

    def stop(self):
        """SIGTERM the process group this driver created, wait until every process in it is
        gone (not only the leader: e.g. TorchServe's JVM outlives its launcher), SIGKILL the
        group after 15 s."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        t0 = time.time()
        while True:
            self.proc.poll()  # reap the leader if it exited (a zombie keeps the group alive)
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            if time.time() - t0 > 15:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
            if time.time() - t0 > 30:
                break
            time.sleep(0.1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.proc = None


def port_in_use(url):
    """True when something already accepts connections on the url's port (e.g. a server left
    over from an earlier run: with SO_REUSEPORT it would silently share the load)."""
    from urllib.parse import urlsplit
    u = urlsplit(url)
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((u.hostname or "127.0.0.1", u.port or 80)) == 0


def du_mb(path):
    out = subprocess.run(["du", "-sm", path], capture_output=True, text=True).stdout
    return int(out.split()[0]) if out else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--peers-file", default=str(HERE / "peers.json"))
    ap.add_argument("--only")
    ap.add_argument("--configs", default="1:1,8:1,32:1,8:32")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--cold-repeats", type=int, default=3)
    ap.add_argument("--start-timeout", type=float, default=180.0)
    ap.add_argument("--server-core", default="0")
    ap.add_argument("--ref", default="triton-py-batch")
    ap.add_argument("--ref-binary", default=None,
                    help="reference for peers loaded with --binary (default: --ref)")
    ap.add_argument("--out", default="matrix.json")
    ap.add_argument("--logdir", default=None)
    a = ap.parse_args()
    # a SIGTERM (e.g. from `timeout`) unwinds through the finally below, which stops the servers
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if a.duration > 60:
        ap.error("--duration is capped at 60 s")
    root = Path(a.root).resolve()
    peers = json.loads(Path(a.peers_file).read_text())["peers"]
    if a.only:
        keep = a.only.split(",")
        peers = [p for p in peers if p["name"] in keep]
    data = str(root / "models" / "X_test.npy")
    logdir = Path(a.logdir or (root / "logs"))
    logdir.mkdir(parents=True, exist_ok=True)
    own = [p for p in peers if not p.get("server")]
    servers = {p["name"]: Server(p, root, a.server_core, logdir) for p in own}
    out = {"args": vars(a), "peers": {}, "runs": [], "order": [p["name"] for p in peers],
           "started": time.strftime("%Y-%m-%d %H:%M:%S %z")}

    def save():
        Path(a.out).write_text(json.dumps(out, indent=1))

    def server_of(p):
        return servers.get(p.get("server", p["name"]))

    try:
        # 1. cold starts
        for p in peers:
            info = {"format": p.get("format"), "cold_start_s": [], "cmd": p.get("cmd"),
                    "server": p.get("server"), "cpus": p.get("cpus", a.server_core),
                    "note": p.get("note")}
            out["peers"][p["name"]] = info
            if p.get("unavailable"):
                info["error"] = f"not run: {p['unavailable']}"
                print(f"[cold] {p['name']}: {info['error']}", flush=True)
                continue
            if p.get("server"):
                continue
            venv = expand(p["venv"], root) if p.get("venv") else None
            if venv and not (Path(venv) / "bin" / "python").exists():
                info["error"] = (f"not installed: {venv} missing (see "
                                 f"{root}/setup-logs/pip-{Path(venv).name}.log)")
                print(f"[cold] {p['name']}: {info['error']}", flush=True)
                continue
            if port_in_use(p["url"]):
                info["error"] = f"port of {p['url']} already in use before start: not run"
                print(f"[cold] {p['name']}: {info['error']}", flush=True)
                continue
            s = servers[p["name"]]
            for i in range(a.cold_repeats):
                cold, msg = s.start(data, a.start_timeout)
                info["cold_start_s"].append(cold)
                print(f"[cold] {p['name']} #{i + 1}: {cold if cold is None else round(cold, 2)}s "
                      f"-> {msg[:120]}", flush=True)
                if cold is None:
                    info["error"] = msg
                    s.stop()
                    break
                if i < a.cold_repeats - 1:
                    s.stop()
                    time.sleep(1.0)
            if "error" not in info:
                info["probe_response"] = msg
            save()
        for p in peers:  # a shared-server peer inherits its server's failure
            s = server_of(p)
            if p.get("server") and "error" not in out["peers"][p["name"]] and (
                    s is None or s.proc is None):
                out["peers"][p["name"]]["error"] = f"its server {p['server']} is not running"
        live = [s for s in servers.values() if s.proc is not None]
        # 2. idle RSS and idle CPU
        time.sleep(2.0)
        c0 = {s.p["name"]: v2load.proc_tree_cpu_s(s.proc.pid) for s in live}
        time.sleep(5.0)
        for s in live:
            info = out["peers"][s.p["name"]]
            info["idle_cpu_util"] = (v2load.proc_tree_cpu_s(s.proc.pid) - c0[s.p["name"]]) / 5.0
            info["rss_idle_mb"] = v2load.proc_tree_rss_mb(s.proc.pid)
            info["processes"] = len(v2load.proc_tree(s.proc.pid))
            print(f"[idle] {s.p['name']}: RSS {info['rss_idle_mb']:.0f} MiB, "
                  f"CPU {info['idle_cpu_util']:.3f}, {info['processes']} processes", flush=True)
        save()
        # 3. interleaved rounds
        configs = [tuple(int(x) for x in c.split(":")) for c in a.configs.split(",")]
        loaded = [p for p in peers if "error" not in out["peers"][p["name"]]]
        for rnd in range(1, a.repeats + 1):
            # odd rounds in peers.json order, even rounds reversed: a peer's position within a
            # config block (time drift on a shared machine) does not always favour the same
            # peers, and neighbours in peers.json stay neighbours (their ratio shares a window)
            order = loaded if rnd % 2 else loaded[::-1]
            for conc, rows in configs:
                for p in order:
                    s = server_of(p)
                    if s.proc is None or s.proc.poll() is not None:
                        print(f"[load] {p['name']}: its server has exited; skipped", flush=True)
                        continue
                    target = p["grpc_target"] if p.get("mode") == "grpc" else p["url"]
                    argv = ["--url", target, "--mode", p.get("mode", "v2"),
                            "--model", p.get("model", "tabular_gb"),
                            "--path", p.get("path", "/predict"),
                            "--template", p.get("template", '{"x": __ROWS__}'), "--data", data,
                            "-c", str(conc), "--rows", str(rows), "-d", str(a.duration),
                            "--warmup", str(a.warmup), "--server-pid", str(s.proc.pid)]
                    argv += p.get("load_args", [])
                    print(f"[load] round {rnd} {p['name']}: ", end="", flush=True)
                    med = v2load.main(argv)
                    out["runs"].append({"peer": p["name"], "round": rnd, "concurrency": conc,
                                        "rows": rows, **med})
                    save()
    finally:
        for s in servers.values():
            s.stop()
    for p in peers:
        info = out["peers"][p["name"]]
        info["binary"] = "--binary" in p.get("load_args", [])
        info["venv_mb"] = du_mb(expand(p["venv"], root)) if p.get("venv") else None
        if p.get("server") and p["server"] in out["peers"]:
            for k in ("rss_idle_mb", "idle_cpu_util", "processes"):
                info[k] = out["peers"][p["server"]].get(k)
    out["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
    summarize(out, a.ref, a.ref_binary or a.ref)
    save()


def summarize(out, ref, ref_binary):
    runs = out["runs"]
    order = {name: i for i, name in enumerate(out.get("order", []))}
    keys = sorted({(r["peer"], r["concurrency"], r["rows"]) for r in runs},
                  key=lambda k: (k[2], k[1], order.get(k[0], 0)))
    table = []
    for peer, c, rows in keys:
        rs = [r for r in runs if (r["peer"], r["concurrency"], r["rows"]) == (peer, c, rows)]
        med = {k: statistics.median(r[k] for r in rs if k in r)
               for k in ("req_s", "rows_s", "p50_ms", "p95_ms", "p99_ms",
                         "server_cpu_us_per_req", "server_cpu_util", "loadgen_cpu_util",
                         "server_rss_mb", "loadavg1") if any(k in r for r in rs)}
        binary = out["peers"].get(peer, {}).get("binary", False)

        def ratio_to(name, rs=rs, c=c, rows=rows):
            ratios = []
            for r in rs:
                refr = [x for x in runs if (x["peer"], x["concurrency"], x["rows"], x["round"])
                        == (name, c, rows, r["round"])]
                if refr and refr[0]["req_s"]:
                    ratios.append(r["req_s"] / refr[0]["req_s"])
            return statistics.median(ratios) if ratios else None

        table.append({"peer": peer, "concurrency": c, "rows": rows, **med,
                      "errors": sum(r["errors"] for r in rs), "rounds": len(rs),
                      "req_s_ratio_to_ref": ratio_to(ref),
                      "req_s_ratio_to_mode_ref": ratio_to(ref_binary if binary else ref),
                      "req_s_runs": [round(r["req_s"], 1) for r in rs],
                      "loadavg1_runs": [round(r["loadavg1"], 2) for r in rs]})
    out["summary"] = table
    out["ref"], out["ref_binary"] = ref, ref_binary
    print(f"\n{'peer':<25}{'c':>3}{'rows':>5}{'req/s':>9}{'rows/s':>9}{'p50ms':>8}{'p99ms':>8}"
          f"{'err':>5}{'srvCPUus':>9}{'xRef':>6}{'xMode':>6}{'RSSMiB':>7}{'load1':>6}")
    nan = float("nan")
    for t in table:
        x, xm = t["req_s_ratio_to_ref"], t["req_s_ratio_to_mode_ref"]
        print(f"{t['peer']:<25}{t['concurrency']:>3}{t['rows']:>5}{t['req_s']:>9.0f}"
              f"{t['rows_s']:>9.0f}{t['p50_ms']:>8.2f}{t['p99_ms']:>8.1f}{t['errors']:>5}"
              f"{t.get('server_cpu_us_per_req', nan):>9.0f}"
              f"{(x if x is not None else nan):>6.2f}{(xm if xm is not None else nan):>6.2f}"
              f"{t.get('server_rss_mb', nan):>7.0f}{t.get('loadavg1', nan):>6.1f}")
    for name, info in out["peers"].items():
        cs = [c for c in info["cold_start_s"] if c is not None]
        rss = info.get("rss_idle_mb")
        print(f"{name:<25} cold start median {statistics.median(cs) if cs else nan:.2f}s "
              f"{[round(c, 2) if c else c for c in info['cold_start_s']]} idle RSS "
              f"{rss if rss is not None else nan:.0f} MiB venv {info.get('venv_mb')} MB "
              f"{info.get('error', '')}")


if __name__ == "__main__":
    main()
