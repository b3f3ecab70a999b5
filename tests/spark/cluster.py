"""A Spark standalone cluster on 127.0.0.1, started from the pinned pyspark: a master and two workers,
each its own process with its own working directory (``SPARK_WORKER_DIR`` and cwd), so that no path the
driver sees is assumed visible to an executor. Session-scoped, torn down at the end.

Use the fixture ``standalone_cluster`` (its master URL, and each worker's folder); a driver runs in a
process of its own against it (``SNAPCDC_SPARK_MASTER``): a test process already holds its local
SparkContext, and one process has at most one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

WORKER_MEMORY = "1g"


@dataclass(frozen=True)
class StandaloneCluster:
    master: str  # spark://127.0.0.1:<port>
    workers: tuple[Path, ...]  # each worker's working directory

    def driver_env(self, executor_memory: str = "700m") -> dict[str, str]:
        """The environment of a driver process running against this cluster."""
        return {
            **os.environ,
            "SNAPCDC_SPARK_MASTER": self.master,
            "SNAPCDC_SPARK_EXECUTOR_MEMORY": executor_memory,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_PYTHON": sys.executable,
        }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _spark_class() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-class"


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as reply:
            import json

            return sum(1 for w in json.loads(reply.read())["workers"] if w["state"] == "ALIVE")
    except OSError:
        return 0


@pytest.fixture(scope="session")
def standalone_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    root = tmp_path_factory.mktemp("standalone-cluster")
    port, ui_port = _free_port(), _free_port()
    spark_home = _spark_class().parent.parent
    env = {**os.environ, "SPARK_HOME": str(spark_home), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_NO_DAEMONIZE": "1"}
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str, **extra: str) -> None:
        folder = root / name
        folder.mkdir()
        log = (folder / "process.log").open("wb")
        command = [str(_spark_class()), *args]
        processes.append(subprocess.Popen(command, cwd=folder, env={**env, **extra}, stdout=log, stderr=log))

    master = f"spark://127.0.0.1:{port}"
    start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
          "--webui-port", str(ui_port))  # fmt: skip
    workers = []
    for number in (1, 2):
        work = root / f"worker-{number}" / "work"
        start(f"worker-{number}", "org.apache.spark.deploy.worker.Worker", master, "--host", "127.0.0.1",
              "--cores", "1", "--memory", WORKER_MEMORY, "--webui-port", str(_free_port()),
              SPARK_WORKER_DIR=str(work))  # fmt: skip
        workers.append(work)
    try:
        deadline = time.monotonic() + 120
        while _alive_workers(ui_port) < 2:
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                logs = {p.name: (p / "process.log").read_text()[-2000:] for p in root.iterdir()}
                raise RuntimeError(f"the standalone cluster did not start: {logs}")
            time.sleep(1)
        yield StandaloneCluster(master, tuple(workers))
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
