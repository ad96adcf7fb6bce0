"""Messages of Triton's statistics and model configuration extensions: the same documents the
REST adapter answers, parsed into the messages (their fields have the JSON names)."""

from __future__ import annotations

from google.protobuf import json_format

from ferry.serve.grpc.generated import inference_pb2 as pb
from ferry.serve.model_config import ModelConfig
from ferry.serve.statistics import ModelStatistics, statistics_document


def statistics_message(stats: ModelStatistics) -> pb.ModelStatistics:
    return json_format.ParseDict(statistics_document(stats), pb.ModelStatistics())


def config_message(config: ModelConfig) -> pb.ModelConfig:
    return json_format.ParseDict(config.as_dict(), pb.ModelConfig())
