"""Thin-wrapper baseline: FastAPI + uvicorn + onnxruntime, KServe V2 JSON subset.

Run: MODEL_DIR=models MODEL_NAME=tabular_gb taskset -c 0 \
       uvicorn --app-dir bench/serve/peers fastapi_ort:app --host 127.0.0.1 --port 8000 \
       --loop uvloop --http httptools --no-access-log
Routes
  GET  /v2/health/ready, /v2/models/{name}/ready
  POST /v2/models/{name}/infer        raw body parsed with orjson (no pydantic) - "thin"
  POST /pyd/v2/models/{name}/infer    same, but request/response through pydantic models
                                      (what a typical FastAPI V2 implementation does)
Inference runs inline in the event loop (async def, no thread pool, no batching);
onnxruntime intra_op=1, inter_op=1.
"""
import os
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
from fastapi import FastAPI, HTTPException, Request, Response
from pydantic import BaseModel

MODEL_DIR = os.environ.get("MODEL_DIR", "models")
MODEL_NAME = os.environ.get("MODEL_NAME", "tabular_gb")
so = ort.SessionOptions()
so.intra_op_num_threads = int(os.environ.get("ORT_THREADS", "1"))
so.inter_op_num_threads = 1
so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
sess = ort.InferenceSession(os.path.join(MODEL_DIR, MODEL_NAME + ".onnx"), so,
                            providers=["CPUExecutionProvider"])
OUT_NAMES = [o.name for o in sess.get_outputs()]
DT = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}
RDT = {np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64",
       np.dtype(np.int64): "INT64", np.dtype(np.int32): "INT32"}
app = FastAPI()


@app.get("/v2/health/ready")
@app.get("/v2/health/live")
async def ready():
    return {"ready": True}


@app.get("/v2/models/{name}/ready")
async def model_ready(name: str):
    if name != MODEL_NAME:
        raise HTTPException(404)
    return {"name": name, "ready": True}


def infer_arrays(inputs):
    feeds = {i["name"]: np.asarray(i["data"], dtype=DT[i["datatype"]]).reshape(i["shape"])
             for i in inputs}
    outs = sess.run(None, feeds)
    return [{"name": n, "shape": list(o.shape), "datatype": RDT[o.dtype],
             "data": o.ravel().tolist()} for n, o in zip(OUT_NAMES, outs, strict=True)]


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request):
    if name != MODEL_NAME:
        raise HTTPException(404)
    req = orjson.loads(await request.body())
    outputs = infer_arrays(req["inputs"])
    return Response(orjson.dumps({"model_name": name, "id": req.get("id"), "outputs": outputs}),
                    media_type="application/json")


class V2Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]
    parameters: dict | None = None


class V2Request(BaseModel):
    id: str | None = None
    inputs: list[V2Tensor]
    outputs: list[dict] | None = None
    parameters: dict | None = None


class V2Response(BaseModel):
    model_name: str
    id: str | None = None
    outputs: list[V2Tensor]


@app.post("/pyd/v2/models/{name}/infer", response_model=V2Response)
async def infer_pyd(name: str, req: V2Request):
    if name != MODEL_NAME:
        raise HTTPException(404)
    outputs = infer_arrays([t.model_dump() for t in req.inputs])
    return V2Response(model_name=name, id=req.id, outputs=[V2Tensor(**o) for o in outputs])
