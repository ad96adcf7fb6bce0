"""The server's settings refuse values it cannot run with, whoever builds them (API or CLI)."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from ferry.cli import app
from ferry.errors import InvalidInputError
from ferry.serve.batching import BatchSettings
from ferry.serve.server import run
from ferry.serve.settings import ServeSettings
from ferry.serve.supervisor import worker_settings


@pytest.mark.parametrize(("field", "value"), [
    ("max_batch_size", 0), ("max_queue_size", 0), ("instances", 0),
    ("max_queue_delay_s", -0.001), ("max_queue_delay_s", float("nan")),
    ("preferred_batch_sizes", (0,)), ("preferred_batch_sizes", (65,)),
])
def test_batch_settings_refuse_what_cannot_run(field: str, value: Any) -> None:
    with pytest.raises(InvalidInputError, match=field):
        BatchSettings(**{field: value})


@pytest.mark.parametrize(("field", "value"), [
    ("http_port", -1), ("http_port", 65536), ("grpc_port", 70000), ("max_request_bytes", 0),
    ("request_timeout_s", 0.0), ("request_timeout_s", float("inf")), ("poll_interval_s", -1.0),
    ("shutdown_grace_s", -1.0), ("intra_op_threads", -1), ("host", ""),
])
def test_serve_settings_refuse_what_cannot_run(field: str, value: Any) -> None:
    with pytest.raises(InvalidInputError, match=field):
        ServeSettings(**{field: value})


def test_settings_in_range_are_kept() -> None:
    batching = BatchSettings(max_batch_size=8, preferred_batch_sizes=(4, 8), instances=2)
    settings = ServeSettings(http_port=0, grpc_port=None, shutdown_grace_s=0.0,
                             batching=batching)
    assert settings.batching.preferred_batch_sizes == (4, 8)


def test_only_the_first_worker_judges_drift_on_the_schedule() -> None:
    """Every worker captures into one store: N judges would write each result N times."""
    settings = ServeSettings(drift_every_s=600)
    assert [worker_settings(settings, index).drift_every_s for index in range(3)] == [600, 0, 0]
    assert worker_settings(settings, 1).batching == settings.batching


def test_workers_below_one_are_refused_before_serving() -> None:
    with pytest.raises(InvalidInputError, match="workers"):
        run([], ServeSettings(), workers=0)


@pytest.mark.parametrize(("flag", "value", "named"), [
    ("--instances", "0", "instances"), ("--max-queue-size", "0", "max_queue_size"),
    ("--timeout-s", "0", "request_timeout_s"), ("--workers", "0", "workers"),
    ("--http-port", "70000", "http_port"), ("--preferred-batch-size", "0",
                                            "preferred_batch_sizes"),
])
def test_serve_command_refuses_them_as_a_usage_error(flag: str, value: str, named: str) -> None:
    result = CliRunner().invoke(app, ["serve", flag, value])
    assert result.exit_code == 2, result.output
    assert named in " ".join(result.output.split())
