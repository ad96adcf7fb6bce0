#!/usr/bin/env bash
# Run the serving benchmark: ONNX Runtime in-process (the limit), then every peer of
# bench/serve/peers.json in interleaved rounds, then the report.
#   configs: 1 row/request at concurrency 1, 8 and 32; 32 rows/request at concurrency 8;
#   JSON and binary-extension variants are separate peers; ratios against triton-py-batch
#   (and, for binary peers, against triton-py-batch-bin) measured in the same round.
# Servers run pinned to core 0 (ferry-2w gets cores 0,1), the driver + load generator on core 1.
# Traffic goes only to 127.0.0.1; every load run stops by itself (warm-up + duration) and the
# whole matrix is bounded by `timeout`. A full run takes ~20 minutes with the defaults.
# Usage: bench/serve/run.sh [ROOT] [OUT]   (after bench/serve/setup.sh ROOT)
#   env: REPEATS (2) DURATION (6 s) WARMUP (2 s) COLD (3 cold starts) ONLY (peer list)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ROOT=$(cd "${1:-$REPO/bench/out/serve-root}" && pwd)
OUT=${2:-$REPO/bench/out/serve}
PY=${FERRY_PY:-$REPO/.venv/bin/python}
REPEATS=${REPEATS:-2}; DURATION=${DURATION:-6}; WARMUP=${WARMUP:-2}; COLD=${COLD:-3}
mkdir -p "$OUT"
ONLY_ARGS=()
[ -n "${ONLY:-}" ] && ONLY_ARGS=(--only "$ONLY")

{
  echo "date: $(date '+%Y-%m-%d %H:%M:%S %z')"
  echo "processor: $(lscpu | grep 'Model name' | sed 's/.*: *//')"
  echo "cores: $(nproc); memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "kernel: $(uname -r)"
  echo "python: $("$PY" -c 'import sys; print(sys.version.split()[0])')"
  echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "versions: $("$PY" -c 'import ferry, onnxruntime, numpy; print("ferry", getattr(ferry, "__version__", "?"), "onnxruntime", onnxruntime.__version__, "numpy", numpy.__version__)')"
} | tee "$OUT/machine.txt"

echo "== ONNX Runtime in-process (the limit), core 0"
timeout 300 taskset -c 0 "$PY" "$HERE/inproc.py" "$ROOT/models" --models tabular_gb \
  --batches 1,32 --seconds 1 --repeats 3 --json "$OUT/inproc.json" | tee "$OUT/inproc.log"

echo "== matrix"
timeout 2700 taskset -c 1 "$PY" "$HERE/run_matrix.py" --root "$ROOT" \
  --peers-file "$HERE/peers.json" "${ONLY_ARGS[@]}" \
  --configs 1:1,8:1,32:1,8:32 --repeats "$REPEATS" --duration "$DURATION" --warmup "$WARMUP" \
  --cold-repeats "$COLD" --ref triton-py-batch --ref-binary triton-py-batch-bin \
  --logdir "$OUT/logs" --out "$OUT/matrix.json" | tee "$OUT/matrix.log"
echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"

"$PY" "$HERE/report.py" "$OUT/matrix.json" --inproc "$OUT/inproc.json" \
  --machine "$OUT/machine.txt" >"$OUT/report.md"
echo "== report: $OUT/report.md"
cat "$OUT/report.md"
