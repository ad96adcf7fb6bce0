#!/usr/bin/env bash
# Triton's perf_analyzer against `ferry serve`, over HTTP and gRPC, with a concurrency sweep, and
# `ferry bench` on the same model, protocol and concurrencies: a markdown table side by side.
#
#   model     tabular_gb of the serving matrix (StandardScaler + GradientBoostingClassifier,
#             20 FP32 features), trained and registered under OUT unless present
#   server    `ferry serve tabular_gb` pinned to core SERVER_CORE (default 0)
#   load      perf_analyzer, then ferry bench, pinned to core LOAD_CORE (default 1);
#             both send 1 row per request, HTTP with binary tensors (perf_analyzer's default;
#             `ferry bench --binary`); perf_analyzer's inputs are random, ferry bench's X_test rows
#   output    OUT/report.md (the table), pa-*.csv / pa-*.log (perf_analyzer), ferry-bench-*.json,
#             server.log, machine.txt
#
# perf_analyzer comes from the tritonclient wheel (the `perf-analyzer` PyPI package is an empty
# placeholder): 2.51.0 is the newest whose binary starts on Debian 12 (later ones need glibc
# 2.38). It is installed into its own venv PA_VENV (default bench/out/perf-venv), with the
# nvidia-cuda-runtime-cu12 wheel for libcudart.so.12, and needs Debian's libb64-0d (installed
# with apt-get when missing and running as root). `--stability-percentage 30`: on two cores the
# default 10 % is rarely reached; a concurrency still unstable at 30 % is measured once more at
# RETRY_STABILITY % (60), and its row says so.
# Usage: bench/serve/perf_analyzer.sh [OUT]   (default OUT: bench/out/perf_analyzer)
#   env: CONCURRENCY (1,2,4,8,16,32) MEASURE_MS (perf_analyzer window, 3000) MAX_TRIALS (6)
#        RETRY_STABILITY (60; empty: no retry)
#        DURATION / WARMUP (ferry bench seconds per step, 5 / 2) HTTP_PORT / GRPC_PORT
#        (18000 / 18001) SERVER_CORE (0) LOAD_CORE (1) PA_VENV
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${1:-$REPO/bench/out/perf_analyzer}
PY=${FERRY_PY:-$REPO/.venv/bin/python}
FERRY=$(dirname "$PY")/ferry
PA_VENV=${PA_VENV:-$REPO/bench/out/perf-venv}
BASEPY=${BASEPY:-python3.11}
TRITONCLIENT_VERSION=2.51.0
CONCURRENCY=${CONCURRENCY:-1,2,4,8,16,32}
MEASURE_MS=${MEASURE_MS:-3000}; MAX_TRIALS=${MAX_TRIALS:-6}; RETRY_STABILITY=${RETRY_STABILITY-60}
DURATION=${DURATION:-5}; WARMUP=${WARMUP:-2}
HTTP_PORT=${HTTP_PORT:-18000}; GRPC_PORT=${GRPC_PORT:-18001}
SERVER_CORE=${SERVER_CORE:-0}; LOAD_CORE=${LOAD_CORE:-1}
MODEL=tabular_gb
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)

say() { printf '[perf_analyzer] %s\n' "$*"; }

need_libb64() {
  ldconfig -p | grep -q 'libb64.so.0d' && return 0
  [ "$(id -u)" = 0 ] || { say "libb64-0d missing: apt-get install -y libb64-0d (as root)"; exit 1; }
  say "installing Debian's libb64-0d"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libb64-0d >/dev/null
}

need_perf_analyzer() {
  [ -x "$PA_VENV/bin/perf_analyzer" ] && return 0
  say "installing tritonclient==$TRITONCLIENT_VERSION into $PA_VENV (log: $OUT/logs/pip.log)"
  rm -rf "$PA_VENV"
  "$BASEPY" -m venv "$PA_VENV" >"$OUT/logs/pip.log" 2>&1
  "$PA_VENV/bin/pip" install "tritonclient==$TRITONCLIENT_VERSION" nvidia-cuda-runtime-cu12 \
    >>"$OUT/logs/pip.log" 2>&1
}

cudart_dir() {
  dirname "$(find "$PA_VENV" -name 'libcudart.so.12' -print -quit)"
}

need_model() {
  if [ ! -f "$OUT/models/$MODEL.onnx" ]; then
    say "training $MODEL into $OUT/models"
    "$PY" "$HERE/train_models.py" "$OUT/models" --models "$MODEL" >"$OUT/logs/train.log" 2>&1
  fi
  if [ ! -f "$OUT/ferry-home/registry.db" ]; then
    say "registering $MODEL in $OUT/ferry-home"
    FERRY_HOME=$OUT/ferry-home "$PY" "$HERE/register_ferry.py" "$OUT/models" \
      >"$OUT/logs/register.log" 2>&1
  fi
}

SERVER_PID=""
start_server() {
  FERRY_HOME=$OUT/ferry-home taskset -c "$SERVER_CORE" "$FERRY" serve "$MODEL" \
    --http-port "$HTTP_PORT" --grpc-port "$GRPC_PORT" --no-access-log >"$OUT/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 120); do
    curl -sf "http://127.0.0.1:$HTTP_PORT/v2/models/$MODEL/ready" >/dev/null && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.5
  done
  say "ferry serve did not become ready; see $OUT/server.log"; exit 1
}
stop_server() { [ -z "$SERVER_PID" ] || { kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" || true; }; }

port_of() { [ "$1" = http ] && echo "$HTTP_PORT" || echo "$GRPC_PORT"; }

perf_analyzer_once() {  # PROTOCOL CONCURRENCY STABILITY STEM
  LD_LIBRARY_PATH="$(cudart_dir)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" timeout 300 \
    taskset -c "$LOAD_CORE" "$PA_VENV/bin/perf_analyzer" -m "$MODEL" -i "$1" \
    -u "127.0.0.1:$(port_of "$1")" -b 1 --concurrency-range "$2:$2" \
    --measurement-interval "$MEASURE_MS" --max-trials "$MAX_TRIALS" \
    --stability-percentage "$3" -f "$4.csv" >"$4.log" 2>&1
}

run_perf_analyzer() {  # PROTOCOL CONCURRENCY: pa-P-cN.csv, or pa-P-cN.status saying why not
  local stem="$OUT/pa-$1-c$2" stability
  rm -f "$stem.csv" "$stem.status" "$stem.note"
  for stability in 30 $RETRY_STABILITY; do
    if perf_analyzer_once "$1" "$2" "$stability" "$stem"; then
      [ "$stability" = 30 ] || echo "stable within $stability %" >"$stem.note"
      return 0
    fi
    grep -q 'Failed to obtain stable measurement' "$stem.log" || break
    say "perf_analyzer $1 c=$2: not stable within $stability %"
  done
  if grep -q 'Failed to obtain stable measurement' "$stem.log"; then
    echo "unstable" >"$stem.status"
  else
    grep -m1 -iE 'error|failed|unable' "$stem.log" | cut -c1-80 >"$stem.status" \
      || echo "failed, see $(basename "$stem").log" >"$stem.status"
  fi
  say "perf_analyzer $1 c=$2: $(cat "$stem.status")"
}

run_ferry_bench() {  # PROTOCOL: ferry-bench-P.json
  local protocol=$1 target args json="$OUT/ferry-bench-$1.json"
  if [ "$protocol" = http ]; then target="http://127.0.0.1:$HTTP_PORT"; args=(--binary)
  else target="127.0.0.1:$GRPC_PORT"; args=(--protocol grpc); fi
  args+=(-m "$MODEL" --concurrency "$CONCURRENCY" --warmup "$WARMUP" --duration "$DURATION"
         --data "$OUT/models/X_test.npy")
  taskset -c "$LOAD_CORE" "$FERRY" bench "$target" "${args[@]}" --json >"$json" \
    2>"$OUT/logs/ferry-bench-$protocol.log" \
    || say "ferry bench $protocol failed: see $OUT/logs/ferry-bench-$protocol.log"
}

machine() {
  echo "date: $(date '+%Y-%m-%d %H:%M:%S %z')"
  echo "processor: $(lscpu | grep 'Model name' | sed 's/.*: *//'); cores: $(nproc)"
  echo "server: ferry serve $MODEL on core $SERVER_CORE; load generators on core $LOAD_CORE"
  echo "perf_analyzer: tritonclient $TRITONCLIENT_VERSION wheel, -b 1, window ${MEASURE_MS} ms," \
       "stability 30 % (retry: ${RETRY_STABILITY:-none} %), at most $MAX_TRIALS trials"
  echo "ferry bench: ${WARMUP} s warm-up + ${DURATION} s per step, HTTP --binary"
  echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}

need_libb64
need_perf_analyzer
need_model
machine | tee "$OUT/machine.txt"
trap stop_server EXIT
start_server
for protocol in http grpc; do
  for level in ${CONCURRENCY//,/ }; do
    say "perf_analyzer $protocol concurrency $level"
    run_perf_analyzer "$protocol" "$level"
  done
  say "ferry bench $protocol concurrency $CONCURRENCY"
  run_ferry_bench "$protocol"
done
echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
"$PY" "$HERE/perf_report.py" "$OUT" --concurrency "$CONCURRENCY" >"$OUT/report.md"
say "report: $OUT/report.md"
cat "$OUT/report.md"
