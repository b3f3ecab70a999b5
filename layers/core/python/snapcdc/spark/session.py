"""The Spark session the local tools, tests and benchmarks use (AWS Glue builds its own): ``local[N]`` by
default, or a cluster's master; loopback only, the driver's Python for the workers.

Everything a run on a cluster changes is a :class:`SessionSettings` field, read from the environment by
:meth:`SessionSettings.from_environment` (so ``snapcdc diff --engine spark`` runs on a cluster unchanged):

- ``SNAPCDC_SPARK_MASTER``: the master (e.g. ``spark://127.0.0.1:7077``); default ``local[cores]``;
- ``SNAPCDC_SPARK_DRIVER_MEMORY``: the driver JVM's heap (default 4g: in local mode it is the one JVM);
- ``SNAPCDC_SPARK_EXECUTOR_MEMORY``: each executor's heap on a cluster (default 1g);
- ``SNAPCDC_SPARK_CORES``: the cores the shuffle and parallelism are sized for (default 2);
- ``SNAPCDC_SPARK_UI``: ``1`` for Spark's web UI and its REST API (on 127.0.0.1; default off);
- ``SNAPCDC_SPARK_EVENT_LOG``: a folder for Spark's event log (default none).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from snapcdc.errors import PermanentError

MASTER = "SNAPCDC_SPARK_MASTER"
DRIVER_MEMORY = "SNAPCDC_SPARK_DRIVER_MEMORY"
EXECUTOR_MEMORY = "SNAPCDC_SPARK_EXECUTOR_MEMORY"
CORES = "SNAPCDC_SPARK_CORES"
UI = "SNAPCDC_SPARK_UI"
EVENT_LOG = "SNAPCDC_SPARK_EVENT_LOG"


class JavaMissingError(PermanentError, RuntimeError):
    """Local Spark needs Java 17 (as AWS Glue 5 runs)."""


@dataclass(frozen=True)
class SessionSettings:
    """What a session is started with. ``master`` None: ``local[cores]``, one JVM (the driver's heap
    holds the executors' work too); a cluster's master: executors of ``executor_memory`` each."""

    cores: int = 2
    master: str | None = None
    driver_memory: str = "4g"
    executor_memory: str = "1g"
    ui: bool = False
    ui_port: int | None = None  # None: Spark's own (4040, or the next free one)
    event_log: Path | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, **defaults: Any) -> SessionSettings:
        """``defaults`` (the caller's choices) overridden by what the environment sets."""
        env = os.environ if environ is None else environ
        settings = cls(**defaults)
        found: dict[str, Any] = {}
        if env.get(MASTER):
            found["master"] = env[MASTER]
        if env.get(DRIVER_MEMORY):
            found["driver_memory"] = env[DRIVER_MEMORY]
        if env.get(EXECUTOR_MEMORY):
            found["executor_memory"] = env[EXECUTOR_MEMORY]
        if env.get(CORES):
            found["cores"] = int(env[CORES])
        if env.get(UI):
            found["ui"] = env[UI].lower() in {"1", "true", "yes", "on"}
        if env.get(EVENT_LOG):
            found["event_log"] = Path(env[EVENT_LOG])
        return replace(settings, **found)

    @property
    def is_local(self) -> bool:
        return self.master is None or self.master.startswith("local")

    def conf(self) -> dict[str, str]:
        """The session's Spark settings."""
        settings = {
            "spark.master": self.master or f"local[{self.cores}]",
            "spark.ui.enabled": str(self.ui).lower(),
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.shuffle.partitions": str(2 * self.cores),
            "spark.default.parallelism": str(self.cores),
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.driver.maxResultSize": "0",
            "spark.driver.memory": self.driver_memory,
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            "spark.python.worker.reuse": "true",
        }
        if not self.is_local:
            settings["spark.executor.memory"] = self.executor_memory
            # local inputs reach the executors through the file server (snapcdc.spark.sources.shipped):
            # without the fetch cache each executor keeps one copy of a file of gigabytes, not two
            settings["spark.files.useFetchCache"] = "false"
        if self.ui and self.ui_port is not None:
            settings["spark.ui.port"] = str(self.ui_port)
        if self.event_log is not None:
            settings["spark.eventLog.enabled"] = "true"
            settings["spark.eventLog.dir"] = self.event_log.absolute().as_uri()
            settings["spark.eventLog.compress"] = "false"
        return settings


def start_session(settings: SessionSettings, app: str = "snapcdc") -> Any:
    """A SparkSession with ``settings`` (the one already running in this process, if any)."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise JavaMissingError(
            "local Spark needs Java 17 (AWS Glue 5 runs Spark 3.5.4 on Java 17): install a JDK 17 "
            "(e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if settings.event_log is not None:
        settings.event_log.mkdir(parents=True, exist_ok=True)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app)
    for key, value in settings.conf().items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def local_session(cores: int = 2, app: str = "snapcdc", memory: str = "4g") -> Any:
    """A session on ``local[cores]`` with a driver of ``memory``, unless the environment names a
    cluster or other settings (:meth:`SessionSettings.from_environment`)."""
    return start_session(SessionSettings.from_environment(cores=cores, driver_memory=memory), app)
