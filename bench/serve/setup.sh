#!/usr/bin/env bash
# Build everything the serving benchmark needs under ROOT (default bench/out/serve-root):
#   ROOT/fastapi   venv: fastapi uvicorn[standard] onnxruntime orjson        (fastapi-thin)
#   ROOT/mlserver  venv: mlserver mlserver-sklearn onnxruntime 'uvloop<0.22' (MLServer 1.7 dies at
#                  start with uvloop 0.23: "There is no current event loop")
#   ROOT/pytriton  venv: nvidia-pytriton onnxruntime numpy  (its wheel ships a CPU-capable
#                  tritonserver binary with only the python backend)
#   ROOT/models    the reference model: StandardScaler + GradientBoostingClassifier, 100 trees,
#                  20 features, as tabular_gb.onnx (input "input", outputs label/probabilities),
#                  tabular_gb.joblib, X_test.npy (2000 FP32 rows)
#   ROOT/triton    Triton backend dir + repos (repo-nobatch, repo-batch)
#   ROOT/mlserver_repos  MLServer repos (onnx = default parallel_workers, onnx-pw0 = in-process)
#   ROOT/ferry-home      a ferry registry (FERRY_HOME) holding the same ONNX as "tabular_gb"
# ferry itself, the training, inproc.py and the load generator use the project venv
# (/work/main/.venv: numpy, scikit-learn, skl2onnx, onnxruntime, uvloop come with ferry).
# Each step is skipped when its output already exists; FORCE=1 redoes everything.
# Usage: bench/serve/setup.sh [ROOT]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ROOT=${1:-$REPO/bench/out/serve-root}
mkdir -p "$ROOT"
ROOT=$(cd "$ROOT" && pwd)
PY=${FERRY_PY:-$REPO/.venv/bin/python}
BASEPY=${BASEPY:-python3.11}
FORCE=${FORCE:-0}
LOG=$ROOT/setup-logs
mkdir -p "$LOG"
FAILED=()

say() { printf '[setup] %s\n' "$*"; }

venv() {  # venv NAME PIP-ARGS...: create ROOT/NAME and install; a failure is reported, not fatal
  local name=$1; shift
  if [ "$FORCE" != 1 ] && [ -f "$ROOT/$name/.installed" ]; then
    say "venv $name: present"; return 0
  fi
  say "venv $name: pip install $*  (log: $LOG/pip-$name.log)"
  rm -rf "${ROOT:?}/$name"
  if "$BASEPY" -m venv "$ROOT/$name" >"$LOG/pip-$name.log" 2>&1 \
     && "$ROOT/$name/bin/pip" install --quiet --upgrade pip >>"$LOG/pip-$name.log" 2>&1 \
     && "$ROOT/$name/bin/pip" install "$@" >>"$LOG/pip-$name.log" 2>&1; then
    "$ROOT/$name/bin/pip" freeze >"$ROOT/$name/.installed"
    say "venv $name: ok ($(du -sm "$ROOT/$name" | cut -f1) MB)"
  else
    say "venv $name: FAILED, see $LOG/pip-$name.log:"; tail -5 "$LOG/pip-$name.log" | sed 's/^/    /'
    rm -rf "${ROOT:?}/$name"  # so that run_matrix.py reports the peer as not installed
    FAILED+=("venv $name")
  fi
}

# 1. peer venvs (the recipes of shared/reference/peer-bench.md "Reproduce")
venv fastapi fastapi 'uvicorn[standard]' onnxruntime orjson
venv mlserver mlserver mlserver-sklearn onnxruntime 'uvloop<0.22'
venv pytriton nvidia-pytriton onnxruntime numpy

# 2. the reference model
if [ "$FORCE" = 1 ] || [ ! -f "$ROOT/models/tabular_gb.onnx" ] || [ ! -f "$ROOT/models/X_test.npy" ]; then
  say "training the reference model into $ROOT/models"
  "$PY" "$HERE/train_models.py" "$ROOT/models" --models tabular_gb
else
  say "models: present"
fi

# 3. Triton repos (needs the pytriton venv)
if [ -x "$ROOT/pytriton/bin/python" ] && [ -f "$ROOT/pytriton/.installed" ]; then
  if [ "$FORCE" = 1 ] || [ ! -f "$ROOT/triton/repo-batch/tabular_gb/config.pbtxt" ]; then
    say "triton repos into $ROOT/triton"
    "$HERE/peers/triton_setup.sh" "$ROOT/pytriton" "$ROOT/models" "$ROOT/triton" || FAILED+=("triton repos")
  else
    say "triton repos: present"
  fi
else
  FAILED+=("triton repos (no pytriton venv)")
fi

# 4. MLServer repos (plain file writing: any python will do)
say "mlserver repos into $ROOT/mlserver_repos"
"$PY" "$HERE/peers/mlserver_setup.py" "$ROOT/models" "$ROOT/mlserver_repos" || FAILED+=("mlserver repos")

# 5. ferry registry: the same ONNX file, registered under the same name
if [ "$FORCE" = 1 ] || [ ! -f "$ROOT/ferry-home/registry.db" ]; then
  say "ferry registry in $ROOT/ferry-home"
  rm -rf "$ROOT/ferry-home"
  FERRY_HOME=$ROOT/ferry-home "$PY" "$HERE/register_ferry.py" "$ROOT/models" || FAILED+=("ferry registry")
else
  say "ferry registry: present"
fi

if [ ${#FAILED[@]} -gt 0 ]; then
  say "FAILED: ${FAILED[*]}"
  printf '%s\n' "${FAILED[@]}" >"$ROOT/setup-failed.txt"
  exit 1
fi
rm -f "$ROOT/setup-failed.txt"
say "done: ROOT=$ROOT"
