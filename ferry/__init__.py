"""ferry: carry a trained model from a notebook to production.

    import ferry
    version = ferry.register(model, "churn", sample=X_train[:500])
    predictor = ferry.load("churn@production")
    predictor.predict(X)
    result = ferry.optimize("churn:1")   # the fastest variant that predicts the same
    run = ferry.batch("churn@production", "customers/", key="id")   # into the warehouse
    gate = ferry.compare("churn:2", "churn@production", "holdout.parquet", label="churned")
    ferry.export("churn@production", "churn-bundle/")   # ONNX, signature, golden cases

The names below are imported on first use, so `import ferry` (and the `ferry` command line)
does not load numpy, pandas, ONNX or the registry until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ferry.lazy import lazy_names

if TYPE_CHECKING:
    from ferry.convert.check import Tolerance
    from ferry.errors import FerryError
    from ferry.gate.compare import compare
    from ferry.gate.promote import promote
    from ferry.loading import load, load_sample
    from ferry.monitor.api import monitor, set_reference
    from ferry.monitor.feedback import feedback
    from ferry.monitor.request_log import request_log
    from ferry.monitor.traffic import traffic
    from ferry.optimizer import optimize
    from ferry.registration import Lineage, register
    from ferry.registry import ModelVersion, Registry
    from ferry.runtime.predictor import Predictor
    from ferry.steps.pipeline import Ensemble, Pipeline
    from ferry.uri import ModelURI

__version__ = "0.1.0"

_HOMES = {
    "FerryError": "ferry.errors", "Lineage": "ferry.registration", "ModelURI": "ferry.uri",
    "ModelVersion": "ferry.registry", "Predictor": "ferry.runtime.predictor",
    "Registry": "ferry.registry", "Tolerance": "ferry.convert.check", "load": "ferry.loading",
    "load_sample": "ferry.loading", "optimize": "ferry.optimizer",
    "register": "ferry.registration", "feedback": "ferry.monitor.feedback",
    "traffic": "ferry.monitor.traffic", "request_log": "ferry.monitor.request_log",
    "set_reference": "ferry.monitor.api",  # `monitor`: the package itself, made callable below
    "compare": "ferry.gate.compare", "promote": "ferry.gate.promote",
    "Pipeline": "ferry.steps.pipeline", "Ensemble": "ferry.steps.pipeline",
}
"""Where each public name lives."""
__getattr__ = lazy_names(__name__, _HOMES)

__all__ = [
    "Ensemble",
    "FerryError",
    "Lineage",
    "ModelURI",
    "ModelVersion",
    "Pipeline",
    "Predictor",
    "Registry",
    "Tolerance",
    "__version__",
    "batch",
    "compare",
    "export",
    "feedback",
    "load",
    "load_sample",
    "monitor",
    "optimize",
    "promote",
    "register",
    "request_log",
    "set_reference",
    "traffic",
]


importlib.import_module("ferry.monitor")  # light, and callable: `ferry.monitor(uri, ...)`
importlib.import_module("ferry.batch")  # light, and callable: `ferry.batch(uri, input, ...)`
importlib.import_module("ferry.export")  # light, and callable: `ferry.export(uri, directory)`
