"""MLServer custom runtime serving an ONNX model with onnxruntime (MLServer 1.7 ships no ONNX
runtime package; this is the documented "custom runtime" path: subclass MLModel).
Copied next to model-settings.json by bench/serve/peers/mlserver_setup.py;
implementation: "mlserver_onnx_runtime.OnnxRuntimeModel", parameters.uri: the .onnx file."""
import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxRuntimeModel(MLModel):
    async def load(self) -> bool:
        uri = await get_model_uri(self._settings)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._sess = ort.InferenceSession(uri, so, providers=["CPUExecutionProvider"])
        self._in = [i.name for i in self._sess.get_inputs()]
        self._out = [o.name for o in self._sess.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {}
        for inp in payload.inputs:
            feeds[inp.name] = NumpyCodec.decode_input(inp).astype(np.float32, copy=False)
        outs = self._sess.run(None, feeds)
        return InferenceResponse(
            model_name=self.name, id=payload.id,
            outputs=[NumpyCodec.encode_output(n, o) for n, o in zip(self._out, outs, strict=True)])
