"""ferry: carry a trained model from a notebook to production.

    import ferry
    version = ferry.register(model, "churn", sample=X_train[:500])
    predictor = ferry.load("churn@production")
    predictor.predict(X)
    result = ferry.optimize("churn:1")   # the fastest variant that predicts the same
"""

from ferry.convert.check import Tolerance
from ferry.errors import FerryError
from ferry.loading import load, load_sample
from ferry.optimizer import optimize
from ferry.registration import Lineage, register
from ferry.registry import ModelVersion, Registry
from ferry.runtime.predictor import Predictor
from ferry.uri import ModelURI

__version__ = "0.1.0"

__all__ = [
    "FerryError",
    "Lineage",
    "ModelURI",
    "ModelVersion",
    "Predictor",
    "Registry",
    "Tolerance",
    "__version__",
    "load",
    "load_sample",
    "optimize",
    "register",
]
