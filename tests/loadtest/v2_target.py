"""A bare Open Inference Protocol server for `ferry bench`'s tests: FastAPI + onnxruntime.

Copied from the peer baseline bench/peers/fastapi_ort.py and extended with what the load
generator needs: model metadata, Triton's binary tensor extension, and (when GRPC_PORT is set)
a gRPC `ModelMetadata` / `ModelInfer` servicer with raw contents on the same event loop.

Run: MODEL_PATH=iris.onnx MODEL_NAME=iris [GRPC_PORT=P] \
       python -m uvicorn --app-dir tests/loadtest v2_target:app --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
from fastapi import FastAPI, HTTPException, Request, Response

MODEL_PATH = os.environ["MODEL_PATH"]
MODEL_NAME = os.environ.get("MODEL_NAME", "model")
so = ort.SessionOptions()
so.intra_op_num_threads = 1
so.inter_op_num_threads = 1
sess = ort.InferenceSession(MODEL_PATH, so, providers=["CPUExecutionProvider"])
OUT_NAMES = [o.name for o in sess.get_outputs()]
DT = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}
RDT = {np.dtype(v): k for k, v in DT.items()}
ORT_DT = {"tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(int64)": "INT64",
          "tensor(int32)": "INT32"}


def _meta(args: list[Any]) -> list[dict[str, Any]]:
    return [{"name": a.name, "datatype": ORT_DT.get(a.type, "FP32"),
             "shape": [d if isinstance(d, int) else -1 for d in a.shape]} for a in args]


METADATA = {"name": MODEL_NAME, "versions": ["1"], "platform": "onnx_onnxv1",
            "inputs": _meta(sess.get_inputs()), "outputs": _meta(sess.get_outputs())}


def run(feeds: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    return list(zip(OUT_NAMES, sess.run(None, feeds), strict=True))


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    server = await start_grpc(int(os.environ["GRPC_PORT"])) if "GRPC_PORT" in os.environ else None
    yield
    if server is not None:
        await server.stop(0)


app = FastAPI(lifespan=lifespan)


@app.get("/v2/health/ready")
async def ready() -> dict[str, bool]:
    return {"ready": True}


def _check(name: str) -> None:
    if name != MODEL_NAME:
        raise HTTPException(404, f"unknown model {name}")


@app.get("/v2/models/{name}")
async def metadata(name: str) -> dict[str, Any]:
    _check(name)
    return METADATA


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request) -> Response:
    _check(name)
    body = await request.body()
    header_length = request.headers.get("inference-header-content-length")
    if header_length is None:
        req = orjson.loads(body)
        feeds = {i["name"]: np.asarray(i["data"], dtype=DT[i["datatype"]]).reshape(i["shape"])
                 for i in req["inputs"]}
        outputs = [{"name": n, "shape": list(o.shape), "datatype": RDT[o.dtype],
                    "data": o.ravel().tolist()} for n, o in run(feeds)]
        return Response(orjson.dumps({"model_name": name, "outputs": outputs}),
                        media_type="application/json")
    split = int(header_length)
    req = json.loads(body[:split])
    feeds, offset = {}, split
    for item in req["inputs"]:
        size = item["parameters"]["binary_data_size"]
        raw = body[offset:offset + size]
        feeds[item["name"]] = np.frombuffer(raw, DT[item["datatype"]]).reshape(item["shape"])
        offset += size
    if offset != len(body):
        raise HTTPException(400, "binary data does not match binary_data_size")
    results = run(feeds)
    head = json.dumps({"model_name": name, "outputs": [
        {"name": n, "shape": list(o.shape), "datatype": RDT[o.dtype],
         "parameters": {"binary_data_size": o.nbytes}} for n, o in results]}).encode()
    return Response(head + b"".join(o.tobytes() for _, o in results),
                    media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(len(head))})


async def start_grpc(port: int) -> Any:
    import grpc
    from tritonclient.grpc import service_pb2 as pb
    from tritonclient.grpc import service_pb2_grpc as pbg

    class Servicer(pbg.GRPCInferenceServiceServicer):
        async def ModelMetadata(self, request: Any, context: Any) -> Any:
            if request.name != MODEL_NAME:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model {request.name}")
            tensor = pb.ModelMetadataResponse.TensorMetadata
            return pb.ModelMetadataResponse(
                name=MODEL_NAME, versions=["1"], platform="onnx_onnxv1",
                inputs=[tensor(**t) for t in METADATA["inputs"]],
                outputs=[tensor(**t) for t in METADATA["outputs"]])

        async def ModelInfer(self, request: Any, context: Any) -> Any:
            if request.model_name != MODEL_NAME:
                await context.abort(grpc.StatusCode.NOT_FOUND, "unknown model")
            feeds = {t.name: np.frombuffer(raw, DT[t.datatype]).reshape(list(t.shape))
                     for t, raw in zip(request.inputs, request.raw_input_contents, strict=True)}
            reply = pb.ModelInferResponse(model_name=MODEL_NAME)
            for n, o in run(feeds):
                reply.outputs.add(name=n, datatype=RDT[o.dtype], shape=list(o.shape))
                reply.raw_output_contents.append(o.tobytes())
            return reply

    server = grpc.aio.server()
    pbg.add_GRPCInferenceServiceServicer_to_server(Servicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server
