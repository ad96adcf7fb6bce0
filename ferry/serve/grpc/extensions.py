"""Messages of Triton's statistics and model configuration extensions, from the data plane's
`ModelStatistics` and `ModelConfig`, and the parameters of a repository load."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ferry.errors import InvalidInputError
from ferry.serve.grpc.generated import inference_pb2 as pb
from ferry.serve.model_config import ModelConfig, data_type, dims
from ferry.serve.statistics import Duration, ModelStatistics
from ferry.serve.types import TensorMetadata


def statistics_message(stats: ModelStatistics) -> pb.ModelStatistics:
    return pb.ModelStatistics(
        name=stats.name, version=stats.version, last_inference=stats.last_inference_ms,
        inference_count=stats.inference_count, execution_count=stats.execution_count,
        inference_stats=pb.InferStatistics(
            success=_duration(stats.success), fail=_duration(stats.fail),
            queue=_duration(stats.queue), compute_input=_duration(stats.compute_input),
            compute_infer=_duration(stats.compute_infer),
            compute_output=_duration(stats.compute_output),
            cache_hit=_duration(Duration()), cache_miss=_duration(Duration())),
        batch_stats=[pb.InferBatchStatistics(
            batch_size=size, compute_input=_duration(batch.compute_input),
            compute_infer=_duration(batch.compute_infer),
            compute_output=_duration(batch.compute_output))
            for size, batch in sorted(stats.batches.items())])


def _duration(duration: Duration) -> pb.StatisticDuration:
    return pb.StatisticDuration(count=duration.count, ns=duration.ns)


def config_message(config: ModelConfig) -> pb.ModelConfig:
    batching = config.batching
    return pb.ModelConfig(
        name=config.name, platform=config.platform, backend=config.backend,
        max_batch_size=batching.max_batch_size,
        input=[pb.ModelInput(name=t.name, data_type=_data_type(t), dims=dims(t))
               for t in config.inputs],
        output=[pb.ModelOutput(name=t.name, data_type=_data_type(t), dims=dims(t))
                for t in config.outputs],
        instance_group=[pb.ModelInstanceGroup(name=config.name, count=batching.instances,
                                              kind=pb.ModelInstanceGroup.KIND_CPU)],
        dynamic_batching=pb.ModelDynamicBatching(
            preferred_batch_size=list(batching.preferred_batch_sizes),
            max_queue_delay_microseconds=round(batching.max_queue_delay_s * 1e6),
            preserve_ordering=True,
            default_queue_policy=pb.ModelQueuePolicy(
                max_queue_size=batching.max_queue_size,
                default_timeout_microseconds=config.timeout_us)))


def _data_type(tensor: TensorMetadata) -> str:
    return data_type(tensor.datatype)


def load_parameters(parameters: Mapping[str, pb.ModelRepositoryParameter]) -> dict[str, Any]:
    """A repository load's parameters as a dict (each value the oneof field that is set)."""
    out: dict[str, Any] = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        if choice is None:
            raise InvalidInputError(f"parameters[{key!r}] has no value: set string_param,"
                                    " bytes_param, int64_param or bool_param")
        out[key] = getattr(parameter, choice)
    return out
