"""The gRPC adapter: the Open Inference Protocol's `inference.GRPCInferenceService` over the
data plane (`servicer.create_server`), with its message codec (`codec`).

`inference.proto` is the service definition; `generated/` holds the modules protoc makes from
it. After editing the proto, regenerate them with grpcio-tools:

    ferry/serve/grpc/generate.sh            # runs .venv/bin/python -m grpc_tools.protoc ...

The script also makes the `*_pb2_grpc` import package-relative and registers the messages in a
private descriptor pool, since their names (`inference.*`) are Triton's too and would clash
with tritonclient.grpc (or KServe's stubs) in the default pool. This holds with protobuf's
default (upb) runtime; under PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python protobuf still
registers message classes in its default symbol database, so that runtime cannot load both.
"""
