"""Write MLServer model repositories for the benchmark variants.

Usage: python bench/serve/peers/mlserver_setup.py MODELS_DIR OUT_DIR
Creates OUT_DIR/<variant>/{settings.json, tabular_gb/model-settings.json, model file}:
  sklearn        mlserver_sklearn.SKLearnModel on tabular_gb.joblib, default parallel_workers (1)
  onnx           custom OnnxRuntimeModel on tabular_gb.onnx, default parallel_workers (1)
  onnx-pw0       same, parallel_workers=0 (inference in the HTTP process, no worker-pool IPC)
  onnx-pw0-batch same as onnx-pw0 with adaptive batching max_batch_size=32, max_batch_time=2 ms
  onnx-pw0-b     a second onnx-pw0 instance (ports 8120-8122), loaded over gRPC
Ports: HTTP 8080+10*i, gRPC 8081+10*i, metrics 8082+10*i for variant i (so all can run at once).
"""
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = [
    ("sklearn", "mlserver_sklearn.SKLearnModel", "tabular_gb.joblib", None, {}),
    ("onnx", "mlserver_onnx_runtime.OnnxRuntimeModel", "tabular_gb.onnx", None, {}),
    ("onnx-pw0", "mlserver_onnx_runtime.OnnxRuntimeModel", "tabular_gb.onnx", 0, {}),
    ("onnx-pw0-batch", "mlserver_onnx_runtime.OnnxRuntimeModel", "tabular_gb.onnx", 0,
     {"max_batch_size": 32, "max_batch_time": 0.002}),
    ("onnx-pw0-b", "mlserver_onnx_runtime.OnnxRuntimeModel", "tabular_gb.onnx", 0, {}),
]


def main():
    models, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    for i, (name, impl, fname, pw, batching) in enumerate(VARIANTS):
        root = out / name
        mdir = root / "tabular_gb"
        mdir.mkdir(parents=True, exist_ok=True)
        settings = {"http_port": 8080 + 10 * i, "grpc_port": 8081 + 10 * i,
                    "metrics_port": 8082 + 10 * i, "debug": False}
        if pw is not None:
            settings["parallel_workers"] = pw
        (root / "settings.json").write_text(json.dumps(settings, indent=1))
        shutil.copy(models / fname, mdir / fname)
        if "onnx_runtime" in impl:
            shutil.copy(HERE / "mlserver_onnx_runtime.py", mdir / "mlserver_onnx_runtime.py")
        ms = {"name": "tabular_gb", "implementation": impl,
              "parameters": {"uri": f"./{fname}"}, **batching}
        (mdir / "model-settings.json").write_text(json.dumps(ms, indent=1))
        print(name, settings["http_port"])


if __name__ == "__main__":
    main()
