"""The Spark session the local tools and tests use (AWS Glue builds its own): ``local[N]``, no UI, few
shuffle partitions, the driver's Python for the workers, loopback only."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from snapcdc.errors import PermanentError


class JavaMissingError(PermanentError, RuntimeError):
    """Local Spark needs Java 17 (as AWS Glue 5 runs)."""


def local_session(cores: int = 2, app: str = "snapcdc", memory: str = "4g") -> Any:
    """A local SparkSession (the one already running, if any)."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise JavaMissingError(
            "local Spark needs Java 17 (AWS Glue 5 runs Spark 3.5.4 on Java 17): install a JDK 17 "
            "(e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    # SNAPCDC_SPARK_MASTER: a cluster's master instead (e.g. spark://127.0.0.1:7077, as the tests' standalone
    # cluster), whose executors get SNAPCDC_SPARK_EXECUTOR_MEMORY each.
    master = os.environ.get("SNAPCDC_SPARK_MASTER", f"local[{cores}]")
    builder = SparkSession.builder
    if not master.startswith("local"):
        builder = builder.config("spark.executor.memory", os.environ.get("SNAPCDC_SPARK_EXECUTOR_MEMORY", "1g"))
    return (
        builder.master(master)
        .appName(app)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(2 * cores))
        .config("spark.default.parallelism", str(cores))
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.maxResultSize", "0")
        .config("spark.driver.memory", memory)  # local mode: the one JVM, which collects the outputs
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.python.worker.reuse", "true")
        .getOrCreate()
    )
