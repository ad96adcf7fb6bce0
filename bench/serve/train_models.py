"""Train the two reference models used by the peer benchmarks and convert them to ONNX.

Usage: python bench/serve/train_models.py OUT_DIR [--models tabular_gb[,tabular_hgb,mlp]]

Writes into OUT_DIR (the serving benchmark needs only tabular_gb, the default):
  tabular_gb.joblib / .onnx  StandardScaler + GradientBoostingClassifier (100 trees, depth 3)
  tabular_hgb.joblib         StandardScaler + HistGradientBoostingClassifier (conversion logged)
  mlp.joblib / mlp.onnx      StandardScaler + MLPClassifier hidden (128, 64)
  X_test.npy                 2000 held-out FP32 rows (20 features): parity checks and load
  conversion.json            what converted, what failed, parity (max abs prob diff, labels)

All seeds are fixed (random_state=0) so the models are reproducible.
Only the ONNX output "probabilities" is requested as a plain tensor (zipmap disabled) so the
model is servable by a KServe V2 server without map/sequence outputs.
"""
import argparse
import json
import time
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def convert(pipe, n_features, path):
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    onx = to_onnx(
        pipe,
        initial_types=[("input", FloatTensorType([None, n_features]))],
        options={id(pipe.steps[-1][1]): {"zipmap": False}},
        target_opset=17,
    )
    path.write_bytes(onx.SerializeToString())
    return onx


def parity(pipe, onnx_path, X):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    outs = sess.run(None, {"input": X})
    names = [o.name for o in sess.get_outputs()]
    label, prob = outs[0], outs[1]
    sk_prob = pipe.predict_proba(X)
    sk_label = pipe.predict(X)
    return {
        "outputs": names,
        "max_abs_prob_diff": float(np.max(np.abs(prob - sk_prob))),
        "label_agreement": float(np.mean(label == sk_label)),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default="models")
    ap.add_argument("--models", default="tabular_gb")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    X, y = make_classification(n_samples=20000, n_features=20, n_informative=10,
                               n_redundant=5, random_state=0)
    X = X.astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=2000, random_state=0)
    np.save(out / "X_test.npy", Xte)
    report = {}

    models = {
        "tabular_gb": Pipeline([("scaler", StandardScaler()),
                                ("clf", GradientBoostingClassifier(n_estimators=100, max_depth=3,
                                                                   random_state=0))]),
        "tabular_hgb": Pipeline([("scaler", StandardScaler()),
                                 ("clf", HistGradientBoostingClassifier(max_iter=100,
                                                                        random_state=0))]),
        "mlp": Pipeline([("scaler", StandardScaler()),
                         ("clf", MLPClassifier(hidden_layer_sizes=(128, 64), max_iter=50,
                                               random_state=0))]),
    }
    wanted = a.models.split(",")
    for name, pipe in models.items():
        if name not in wanted:
            continue
        t0 = time.perf_counter()
        pipe.fit(Xtr, ytr)
        fit_s = time.perf_counter() - t0
        acc = float(pipe.score(Xte, yte))
        joblib.dump(pipe, out / f"{name}.joblib")
        entry = {"fit_s": round(fit_s, 2), "test_accuracy": round(acc, 4)}
        try:
            onx_path = out / f"{name}.onnx"
            convert(pipe, X.shape[1], onx_path)
            entry["onnx"] = "ok"
            entry["onnx_bytes"] = onx_path.stat().st_size
            entry.update(parity(pipe, onx_path, Xte))
        except Exception as e:  # report any conversion failure
            cause = e.__cause__ or e.__context__
            entry["onnx"] = (f"FAILED: {type(e).__name__}: {str(e)[:120]}"
                             + (f" | caused by {type(cause).__name__}: {cause}" if cause else ""))
        report[name] = entry
        print(name, json.dumps(entry))
    import onnx
    import onnxruntime
    import skl2onnx
    import sklearn
    report["versions"] = {"sklearn": sklearn.__version__, "skl2onnx": skl2onnx.__version__,
                          "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                          "numpy": np.__version__}
    (out / "conversion.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
