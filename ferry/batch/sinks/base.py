"""The sink interface: where a run's rows land, made visible all at once.

A sink stages a run's parts somewhere readers do not look, publishes them in one step that
also removes the runs they replace (the same version on the same input), and reads one
run's rows back (for serving stored predictions). Implementations register in
`ferry.batch.sinks`, and every one runs `tests/batch/sink_checks.py`.
"""

from __future__ import annotations

from typing import Protocol

import pyarrow as pa

from ferry.batch.staging import Staging


class Sink(Protocol):
    description: str
    """The target as recorded on runs: enough to open it again, with no password."""

    def staging(self, run_id: str) -> Staging:
        """Where `run_id`'s parts are staged."""

    def publish(self, run_id: str, staging: Staging, replaces: list[str]) -> None:
        """Make `run_id`'s staged rows visible and the `replaces` runs' rows gone, in one
        step readers never see half of; then drop the staging."""

    def read(self, run_id: str) -> pa.Table:
        """Every row `run_id` wrote."""

    def runs(self) -> set[str]:
        """The run ids whose rows the target holds."""
