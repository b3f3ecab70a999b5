"""A Spark standalone cluster on 127.0.0.1, started from the pinned pyspark: a master and N workers, each
its own process with its own working directory (``SPARK_WORKER_DIR`` and cwd), so no path the driver
sees is assumed visible to an executor. Used by the Spark tier's cluster test and by ``make bench-spark``.

    with standalone_cluster(root, WorkerShape(workers=2, cores=1, memory="3g")) as cluster:
        subprocess.run([...], env=cluster.driver_env(driver_memory="1g", executor_memory="2g"))

A driver runs in a process of its own against it (``SNAPCDC_SPARK_MASTER``, read by
``snapcdc.spark.session``): one process holds at most one SparkContext.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

START_SECONDS = 120.0


@dataclass(frozen=True)
class WorkerShape:
    """How many workers, and what each offers its executors."""

    workers: int = 2
    cores: int = 1
    memory: str = "1g"


@dataclass(frozen=True)
class StandaloneCluster:
    master: str  # spark://127.0.0.1:<port>
    ui_port: int  # the master's web UI (its state as JSON at /json/)
    workers: tuple[Path, ...]  # each worker's working directory (executors run in app-*/<n>/ there)
    worker_pids: tuple[int, ...]  # each worker's process (its executors are its children)
    shape: WorkerShape

    @property
    def cores(self) -> int:
        return self.shape.workers * self.shape.cores

    def driver_env(self, executor_memory: str = "700m", driver_memory: str | None = None) -> dict[str, str]:
        """The environment of a driver process running against this cluster."""
        env = {
            **os.environ,
            "SNAPCDC_SPARK_MASTER": self.master,
            "SNAPCDC_SPARK_EXECUTOR_MEMORY": executor_memory,
            "SNAPCDC_SPARK_CORES": str(self.cores),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_PYTHON": sys.executable,
        }
        if driver_memory is not None:
            env["SNAPCDC_SPARK_DRIVER_MEMORY"] = driver_memory
        return env

    def remove_app_folders(self) -> None:
        """Deletes the applications' folders on the workers (an executor's copies of the files its
        driver shipped are there, gigabytes for a big input): call it when no driver is running."""
        for worker in self.workers:
            for folder in worker.glob("app-*"):
                shutil.rmtree(folder, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def spark_class() -> Path:
    """The pinned pyspark's ``bin/spark-class``."""
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-class"


def alive_workers(ui_port: int) -> int:
    """The workers the master counts as ALIVE (0 while it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as reply:
            return sum(1 for w in json.loads(reply.read())["workers"] if w["state"] == "ALIVE")
    except OSError:
        return 0


@contextmanager
def standalone_cluster(root: Path, shape: WorkerShape | None = None) -> Iterator[StandaloneCluster]:
    """A master and ``shape.workers`` workers under ``root`` (a folder each, with its process.log),
    running until the block ends; an error naming the logs when it does not start in time."""
    shape = shape or WorkerShape()
    port, ui_port = free_port(), free_port()
    launcher = spark_class()
    env = {
        **os.environ,
        "SPARK_HOME": str(launcher.parent.parent),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_NO_DAEMONIZE": "1",
    }
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str, **extra: str) -> subprocess.Popen[bytes]:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "process.log").open("wb") as log:
            process = subprocess.Popen(
                [str(launcher), *args], cwd=folder, env={**env, **extra}, stdout=log, stderr=subprocess.STDOUT
            )
        processes.append(process)
        return process

    master = f"spark://127.0.0.1:{port}"
    try:
        start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
              "--webui-port", str(ui_port))  # fmt: skip
        workers, pids = [], []
        for number in range(1, shape.workers + 1):
            work = root / f"worker-{number}" / "work"
            process = start(f"worker-{number}", "org.apache.spark.deploy.worker.Worker", master, "--host",
                            "127.0.0.1", "--cores", str(shape.cores), "--memory", shape.memory, "--webui-port",
                            str(free_port()), SPARK_WORKER_DIR=str(work))  # fmt: skip
            workers.append(work)
            pids.append(process.pid)
        deadline = time.monotonic() + START_SECONDS
        while alive_workers(ui_port) < shape.workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                logs = {p.name: (p / "process.log").read_text()[-2000:] for p in root.iterdir() if p.is_dir()}
                raise RuntimeError(f"the standalone cluster did not start: {logs}")
            time.sleep(1)
        yield StandaloneCluster(master, ui_port, tuple(workers), tuple(pids), shape)
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
