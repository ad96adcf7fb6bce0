#!/usr/bin/env bash
# Triton's Python example programs, unchanged, against `ferry serve`: the outside check of
# issue 9. Triton's code is not copied here; point this at a checkout of the examples folder
# (`src/python/examples` of github.com/triton-inference-server/client).
#
# Usage: bench/serve/triton_examples.sh EXAMPLES_DIR [OUT]   (OUT default bench/out/triton-examples)
#
# The models are Triton's example models built as ONNX graphs (tests/serve/triton_models.py).
# The HTTP model-control program wants 7 models in the repository; the gRPC one wants 8. So
# each of them runs against its own server, and the model-control programs run last (they
# unload `simple`). Left out, as the issue allows:
# - programs that need shared memory, sequence batching, a decoupled model, images or the
#   densenet model;
# - programs that need a server named "triton" (the health_metadata pair).
# Prints one line per program (exit code, name, last line of output), also kept in OUT/results.txt.
set -u
EXAMPLES=${1:?usage: triton_examples.sh EXAMPLES_DIR [OUT]}
OUT=${2:-bench/out/triton-examples}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
PY=$REPO/.venv/bin/python
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PROGRAMS="simple_http_infer_client simple_http_async_infer_client simple_http_aio_infer_client
simple_http_string_infer_client simple_grpc_infer_client simple_grpc_async_infer_client
simple_grpc_aio_infer_client simple_grpc_string_infer_client simple_grpc_custom_args_client
simple_grpc_keepalive_client grpc_explicit_byte_content_client grpc_explicit_int8_content_client
grpc_explicit_int_content_client memory_growth_test"

serve() {  # serve HOME EXTRA: register the example models (EXTRA more) and serve them
  rm -rf "$1" && "$PY" "$REPO/tests/serve/triton_models.py" "$1" --extra "$2" >/dev/null
  FERRY_HOME=$1 "$REPO/.venv/bin/ferry" serve --http-port 8000 --grpc-port 8001 \
    --no-access-log --no-capture >"$1.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 120); do curl -sf localhost:8000/v2/health/ready >/dev/null && return; sleep 0.5; done
  echo "ferry serve did not start: $1.log" >&2; exit 1
}

run() {  # run PROGRAM: one line of results
  local out rc
  out=$(cd "$EXAMPLES" && timeout 120 "$PY" "$1.py" 2>&1); rc=$?
  echo "$rc $1 $(echo "$out" | tail -1 | cut -c1-120)" | tee -a "$OUT/results.txt"
}

: >"$OUT/results.txt"
serve "$OUT/home8" 1
for program in $PROGRAMS simple_grpc_model_control; do run "$program"; done
kill -TERM "$SERVER"; wait "$SERVER"
serve "$OUT/home7" 0
run simple_http_model_control
kill -TERM "$SERVER"; wait "$SERVER"
echo "passed: $(awk '$1 == 0' "$OUT/results.txt" | wc -l) of $(wc -l <"$OUT/results.txt")"
