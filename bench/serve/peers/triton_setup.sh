#!/usr/bin/env bash
# Build a Triton backend dir + model repositories from the tritonserver binary that ships inside
# the nvidia-pytriton wheel. Usage: bench/serve/peers/triton_setup.sh PYTRITON_VENV MODELS_DIR OUT_DIR
# OUT_DIR/backends/python            python backend (+ stub for CPython 3.11)
# OUT_DIR/repo-nobatch/tabular_gb     max_batch_size 64, no dynamic batching, 1 CPU instance
# OUT_DIR/repo-batch/tabular_gb       same + dynamic_batching { max_queue_delay_microseconds: 1000 }
set -euo pipefail
VENV=$1; MODELS=$2; OUT=$3
HERE=$(cd "$(dirname "$0")" && pwd)
TS=$(echo "$VENV"/lib/python3*/site-packages/pytriton/tritonserver)
mkdir -p "$OUT/backends/python"
cp "$TS"/backends/python/* "$OUT/backends/python/" 2>/dev/null || true
cp "$TS/python_backend_stubs/3.11/triton_python_backend_stub" "$OUT/backends/python/"
for v in nobatch batch; do
  M=$OUT/repo-$v/tabular_gb
  mkdir -p "$M/1"
  cp "$MODELS/tabular_gb.onnx" "$M/1/model.onnx"
  cp "$HERE/triton/model.py" "$M/1/model.py"
  DB=""
  [ $v = batch ] && DB='dynamic_batching { max_queue_delay_microseconds: 1000 }'
  cat > "$M/config.pbtxt" <<PBTXT
name: "tabular_gb"
backend: "python"
max_batch_size: 64
input [ { name: "input" data_type: TYPE_FP32 dims: [ 20 ] } ]
output [
  { name: "label" data_type: TYPE_INT64 dims: [ 1 ] },
  { name: "probabilities" data_type: TYPE_FP32 dims: [ 2 ] }
]
instance_group [ { kind: KIND_CPU count: 1 } ]
$DB
PBTXT
done
echo "tritonserver binary: $TS/bin/tritonserver"
