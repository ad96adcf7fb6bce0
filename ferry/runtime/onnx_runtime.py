"""Predict with an ONNX model on ONNX Runtime."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from ferry.runtime.feeds import Feeds
from ferry.runtime.predictor import GraphPredictor
from ferry.signature import Signature, Task

GRAPH_OPTIMIZATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


@dataclass(frozen=True)
class SessionSettings:
    """ONNX Runtime session options that a version can record (the optimizer sets them)."""

    intra_op_threads: int = 0
    """0: ONNX Runtime's default (one thread per core)."""
    inter_op_threads: int = 0
    sequential: bool = True
    spinning: bool = True
    """Whether idle pool threads spin; off for servers that share cores with their I/O."""
    graph_optimization: str = "all"
    """ONNX Runtime's graph optimization level: `disable`, `basic`, `extended` or `all`."""

    def options(self) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = self.inter_op_threads
        if not self.spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.graph_optimization_level = GRAPH_OPTIMIZATION[self.graph_optimization]
        options.execution_mode = (
            ort.ExecutionMode.ORT_SEQUENTIAL if self.sequential else ort.ExecutionMode.ORT_PARALLEL
        )
        return options


class OnnxPredictor(GraphPredictor):
    """Runs the ONNX artifact; `load()` creates the session."""

    def __init__(self, onnx_bytes: bytes, signature: Signature, task: Task, *,
                 settings: SessionSettings | None = None, model: str = "", version: int = 0):
        super().__init__(signature, task, model=model, version=version)
        self.onnx_bytes = onnx_bytes
        self.settings = settings or SessionSettings()
        self.session_: ort.InferenceSession | None = None
        self._output_names: list[str] | None = None

    def load(self) -> OnnxPredictor:
        self.session_ = ort.InferenceSession(
            self.onnx_bytes, sess_options=self.settings.options(),
            providers=["CPUExecutionProvider"],
        )
        return self

    def run_feeds(self, feeds: Feeds) -> dict[str, np.ndarray]:
        """Raw outputs for arrays already shaped and typed as the graph's inputs."""
        session = self.session_ or self.load().session_
        assert session is not None
        if self._output_names is None:
            self._output_names = [o.name for o in session.get_outputs()]
        values = session.run(self._output_names, feeds)
        return dict(zip(self._output_names, values, strict=True))

