"""Markdown tables from a run_matrix.py result (and inproc.py's JSON), plus the goal checks.

Usage: python bench/serve/report.py OUT/matrix.json [--inproc OUT/inproc.json]
                                    [--machine OUT/machine.txt] > report.md
"""

import argparse
import json
import statistics
from pathlib import Path

CONFIG_NAMES = {(1, 1): "c=1, 1 row", (8, 1): "c=8, 1 row", (32, 1): "c=32, 1 row",
                (8, 32): "c=8, 32 rows"}


def fmt(v, spec=".0f", none="n/a"):
    return none if v is None else format(v, spec)


def per_round(m, peer, c, rows, key="req_s"):
    return {r["round"]: r.get(key) for r in m["runs"]
            if (r["peer"], r["concurrency"], r["rows"]) == (peer, c, rows)}


def paired_ratio(m, a, b, c, rows, key="req_s"):
    """Median over rounds of a/b, each measured in the same round."""
    ra, rb = per_round(m, a, c, rows, key), per_round(m, b, c, rows, key)
    vals = [ra[k] / rb[k] for k in ra if k in rb and ra[k] and rb[k]]
    return statistics.median(vals) if vals else None


def summary_row(m, peer, c, rows):
    for t in m.get("summary", []):
        if (t["peer"], t["concurrency"], t["rows"]) == (peer, c, rows):
            return t
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("matrix")
    ap.add_argument("--inproc")
    ap.add_argument("--machine")
    a = ap.parse_args()
    m = json.loads(Path(a.matrix).read_text())
    args, ref, refb = m["args"], m.get("ref"), m.get("ref_binary")
    out = []
    w = out.append
    if a.machine:
        w("```\n" + Path(a.machine).read_text().strip() + "\n```\n")
    loads = [r["loadavg1"] for r in m["runs"]]
    if loads:
        w(f"Load average (1 min) sampled at the end of each load run: min {min(loads):.2f}, "
          f"median {statistics.median(loads):.2f}, max {max(loads):.2f} (2 cores; the server "
          "core and the load-generator core account for up to ~2 of it).\n")
    w(f"Matrix: {m.get('started', '?')} to {m.get('finished', '?')}; {args['repeats']} "
      f"interleaved rounds, each load run {args['warmup']} s warm-up + {args['duration']} s "
      f"measured; medians over rounds. `x {ref}` = req/s divided by {ref}'s req/s in the same "
      f"round (JSON); `x same-mode ref` uses {refb} for binary peers.\n")

    if a.inproc:
        rows = json.loads(Path(a.inproc).read_text())
        w("### ONNX Runtime in-process (the limit; one thread, pinned to core 0)\n")
        w("| engine | batch | p50 us/call | CPU us/call | rows/s at p50 | calls/s at p50 |")
        w("|---|--:|--:|--:|--:|--:|")
        for r in rows:
            w(f"| {r['engine']} | {r['batch']} | {r['p50_us_per_call']:.1f} | "
              f"{r['cpu_us_per_call']:.1f} | {r['rows_per_s_p50']:.0f} | "
              f"{1e6 / r['p50_us_per_call']:.0f} |")
        w("\n`ort+v2json` adds the minimum V2 JSON codec work (json.loads, np.asarray, ORT, "
          "tolist, json.dumps) with no HTTP.\n")

    peers = m.get("order") or list(m["peers"])
    configs = sorted({(r["concurrency"], r["rows"]) for r in m["runs"]},
                     key=lambda k: (k[1], k[0]))
    w("### Load matrix\n")
    w("Each cell: median over rounds. server CPU = CPU time of the server's whole process "
      "tree / requests; util = that CPU time / wall time (1.0 = one core); lg util = the load "
      "generator's own CPU; RSS = sum of VmRSS over the tree after the run.\n")
    for c, rows in configs:
        w(f"#### {CONFIG_NAMES.get((c, rows), f'c={c}, {rows} rows')}\n")
        w(f"| peer | req/s | rows/s | p50 ms | p99 ms | errors | x {ref} | x same-mode ref | "
          "server CPU us/req | server util | lg util | RSS MiB | load1 |")
        w("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for p in peers:
            t = summary_row(m, p, c, rows)
            if t is None:
                continue
            w(f"| {p} | {t['req_s']:.0f} | {t['rows_s']:.0f} | {t['p50_ms']:.2f} | "
              f"{t['p99_ms']:.2f} | {t['errors']} | {fmt(t['req_s_ratio_to_ref'], '.2f')} | "
              f"{fmt(t['req_s_ratio_to_mode_ref'], '.2f')} | "
              f"{fmt(t.get('server_cpu_us_per_req'))} | {fmt(t.get('server_cpu_util'), '.2f')} |"
              f" {fmt(t.get('loadgen_cpu_util'), '.2f')} | {fmt(t.get('server_rss_mb'))} | "
              f"{fmt(t.get('loadavg1'), '.2f')} |")
        w("")

    w("### Start-up and footprint\n")
    w("| peer | what | CPUs | cold start s (median) | cold starts s | idle RSS MiB | "
      "peak RSS MiB under load | processes | idle CPU util | venv MB | status |")
    w("|---|---|---|--:|---|--:|--:|--:|--:|--:|---|")
    for p in peers:
        info = m["peers"][p]
        cs = [x for x in info.get("cold_start_s", []) if x is not None]
        peak = [r.get("server_rss_mb") for r in m["runs"] if r["peer"] == p
                and r.get("server_rss_mb") is not None]
        cold = (f"{statistics.median(cs):.2f}" if cs else
                ("(shares " + info["server"] + ")" if info.get("server") else "n/a"))
        status = info.get("error") or "ok"
        if info.get("note"):
            status += "; " + info["note"]
        w(f"| {p} | {info.get('format') or ''} | {info.get('cpus')} | {cold} | "
          f"{', '.join(f'{x:.2f}' for x in cs)} | {fmt(info.get('rss_idle_mb'))} | "
          f"{fmt(max(peak) if peak else None)} | {fmt(info.get('processes'))} | "
          f"{fmt(info.get('idle_cpu_util'), '.3f')} | "
          f"{fmt(info.get('venv_mb'))} | {status} |")
    w("")
    w(goals(m))
    print("\n".join(out))


def goals(m):
    """The goal checks: ferry against the peers, each ratio paired within a round."""
    lines = ["### Goals (ratios paired within a round, median over rounds)\n",
             "| check | config | ferry | other | ratio | goal | met |",
             "|---|---|--:|--:|--:|---|---|"]

    def row(check, cfg, a, b, key, goal, better):
        ta, tb = summary_row(m, a, *cfg), summary_row(m, b, *cfg)
        if ta is None or tb is None:
            lines.append(f"| {check} | {CONFIG_NAMES[cfg]} | {a}: n/a | {b}: n/a | n/a | "
                         f"{goal} | not measured |")
            return
        r = paired_ratio(m, a, b, *cfg, key=key)
        unit, digits = ("req/s", 0) if key == "req_s" else ("ms", 2)
        met = "?" if r is None else "yes" if better(r) else "no"
        lines.append(f"| {check} | {CONFIG_NAMES[cfg]} | {a} {ta[key]:.{digits}f} {unit} | "
                     f"{b} {tb[key]:.{digits}f} {unit} | {fmt(r, '.2f')} | {goal} | {met} |")

    row("ferry req/s vs Triton with batching", (32, 1), "ferry", "triton-py-batch", "req_s",
        ">= 1.0x", lambda r: r >= 1.0)
    for cfg in [(1, 1), (8, 1), (32, 1), (8, 32)]:
        row("ferry req/s vs MLServer (default)", cfg, "ferry", "mlserver", "req_s", ">= 5x",
            lambda r: r >= 5.0)
    for cfg in [(1, 1), (8, 1), (32, 1), (8, 32)]:
        row("ferry req/s vs MLServer (parallel_workers=0)", cfg, "ferry", "mlserver-pw0",
            "req_s", ">= 5x", lambda r: r >= 5.0)
    for cfg in [(1, 1), (8, 1), (32, 1), (8, 32)]:
        row("ferry p99 vs Triton with batching", cfg, "ferry", "triton-py-batch", "p99_ms",
            "<= 1.0x", lambda r: r <= 1.0)
    for cfg in [(1, 1), (8, 1), (32, 1), (8, 32)]:
        row("ferry p99 vs Triton without batching", cfg, "ferry", "triton-py", "p99_ms",
            "<= 1.0x", lambda r: r <= 1.0)
    row("ferry p50 vs Triton without batching", (1, 1), "ferry", "triton-py", "p50_ms",
        "<= 1.0x", lambda r: r <= 1.0)
    for cfg in [(1, 1), (8, 1), (32, 1), (8, 32)]:
        row("ferry 2 workers (both cores) vs 1 worker (core 0)", cfg, "ferry-2w", "ferry",
            "req_s", "> 1.0x", lambda r: r > 1.0)
    for cfg in [(32, 1), (8, 32)]:
        row("ferry binary vs Triton-batch binary", cfg, "ferry-bin", "triton-py-batch-bin",
            "req_s", ">= 1.0x", lambda r: r >= 1.0)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
