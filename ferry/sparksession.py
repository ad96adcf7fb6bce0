"""A local SparkSession for the code that needs one (loading a saved Spark ML pipeline, the
batch engine), started only when asked for, never at import.

`active_or_local()` reuses the session the caller already has (`SparkSession.active()`: this
thread's active session, else the process's default one), leaving its settings alone, and
builds a local one otherwise. `local_session()` builds one that binds to the loopback
interface only (`SPARK_LOCAL_IP=127.0.0.1`, `spark.driver.bindAddress`), so that it starts
on machines whose host name does not resolve or that have no network, with no web UI, two
shuffle partitions (the default 200 make small jobs slow) and Python workers running this
interpreter. Starting one costs 10-40 s (a JVM); `getOrCreate` returns the running session
when there is one, with these settings applied to it only where Spark allows.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from ferry.errors import UnsupportedModelError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

INSTALL_HINT = "pip install 'ferry-ml[spark]' (and Java 17 or 21 on PATH)"
"""How to get what Spark ML models need (pyspark, and onnxmltools to convert them)."""

LOCAL_SETTINGS = {
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.driver.memory": "1g",
}
"""The settings `local_session` starts a session with."""


def require_pyspark() -> None:
    """Raise, saying how to install it, when pyspark is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise UnsupportedModelError(f"Spark ML models need pyspark: {INSTALL_HINT} ({exc})"
                                    ) from exc


def require_onnxmltools() -> None:
    """Raise, saying how to install it, when onnxmltools (Spark ML's ONNX converter) is
    missing."""
    try:
        import onnxmltools  # noqa: F401
    except ImportError as exc:
        raise UnsupportedModelError(
            f"converting Spark ML pipelines needs onnxmltools: {INSTALL_HINT} ({exc});"
            " or register with force=True to serve the pipeline natively with Spark") from exc


def local_session(master: str = "local[2]", app: str = "ferry") -> SparkSession:
    """A SparkSession on this machine, bound to 127.0.0.1, with log level ERROR."""
    require_pyspark()
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName(app)
    for key, value in LOCAL_SETTINGS.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def active_or_local() -> SparkSession:
    """The caller's SparkSession (this thread's active one, else the process's default), as
    it is; a new `local_session()` when there is none."""
    require_pyspark()
    from pyspark.errors import PySparkRuntimeError
    from pyspark.sql import SparkSession

    try:
        return SparkSession.active()
    except PySparkRuntimeError:
        return local_session()
