"""`ferry bench`'s load generator: stress any Open Inference Protocol (KServe V2) server.

Modules, one concern each:

- `metadata`: read a model's inputs from the server (REST or gRPC `ModelMetadata`).
- `bodies`: pre-built request bodies: V2 JSON, Triton binary tensors, gRPC raw contents.
- `httpclient`: a minimal keep-alive HTTP/1.1 client on asyncio (the client is never the
  bottleneck); `transports`: HTTP and gRPC senders behind one `Session.send` interface.
- `target`: parse a target and build its transport; `runner`: closed-loop concurrency sweeps
  and open-loop fixed-rate steps, each bounded in time; `procstat`: server CPU from /proc.
- `results`: per-step statistics and the best step under a latency target; `report`: table,
  JSON and PNG plot.
"""

from ferry.loadtest.metadata import ModelInfo, TargetError, TensorSpec
from ferry.loadtest.results import StepResult, best_step, mark_targets
from ferry.loadtest.runner import LoadPlan, RunOutcome, run_plan
from ferry.loadtest.target import Target, discover, server_location, transport_factory

__all__ = [
    "LoadPlan",
    "ModelInfo",
    "RunOutcome",
    "StepResult",
    "Target",
    "TargetError",
    "TensorSpec",
    "best_step",
    "discover",
    "mark_targets",
    "run_plan",
    "server_location",
    "transport_factory",
]
