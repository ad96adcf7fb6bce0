"""Python pre- and post-processing steps stored with a version (as source, never pickled).

`ferry.register(model, name, preprocess=fn, postprocess=fn)` keeps each step's source, the
imports it uses and their packages' versions (`source`, `record`); `ferry.load(uri,
trust_code=True)` compiles them again and wraps the model's predictor (`loaded`). Loading runs
user code, so a version with steps is refused unless the caller says to trust it (`stored`).
Where the whole pipeline fits in one ONNX graph (a scikit-learn Pipeline does), register that
instead: steps are for what ONNX cannot express.
"""

from ferry.steps.loaded import StepsPredictor, compile_step
from ferry.steps.record import STEPS_ARTIFACT, Steps, capture_steps, steps_from_bytes
from ferry.steps.source import StepSource, capture
from ferry.steps.stored import require_trust, steps_of, steps_settings

__all__ = [
    "STEPS_ARTIFACT", "StepSource", "Steps", "StepsPredictor", "capture", "capture_steps",
    "compile_step", "require_trust", "steps_from_bytes", "steps_of", "steps_settings",
]
