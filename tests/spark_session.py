"""One SparkSession for the whole test run: starting one costs 15-35 s (a JVM), so every
test that needs Spark shares the session `spark_session()` builds on its first call."""

from __future__ import annotations

import atexit
import os
import sys
from typing import TYPE_CHECKING

from ferry.sparksession import local_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_session: SparkSession | None = None


def spark_session() -> SparkSession:
    """The run's `local[2]` session on 127.0.0.1 (no UI, 2 shuffle partitions, 1 GB driver,
    log level ERROR), stopped when the interpreter exits."""
    global _session
    if _session is None:
        os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
        os.environ["PYSPARK_PYTHON"] = sys.executable
        _session = local_session("local[2]", "ferry-tests")
        atexit.register(_session.stop)
    return _session
