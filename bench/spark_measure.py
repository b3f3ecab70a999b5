"""What the Spark bench measures around a driver process: its memory (the driver's Python process and the
driver's JVM, its child, sampled from /proc during the run; the executors' under the cluster's workers),
the shuffle from Spark's event log, and the files and bytes the run wrote.

Peaks are the kernel's high-water marks (``VmHWM``) where the process is still there to read, else the
largest sampled ``VmRSS``; the executors' figure is the largest sampled sum of their processes' RSS
(the JVMs and the Python workers).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1 << 20
SAMPLE_SECONDS = 0.25


def _status(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of a process, in bytes (empty once it is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    found = {}
    for line in lines:
        name, _, rest = line.partition(":")
        if name in {"VmRSS", "VmHWM"}:
            found[name] = int(rest.split()[0]) * 1024
    return found


def _parents() -> dict[int, tuple[int, str]]:
    """Every process's parent and command name (one pass over /proc)."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        found[int(entry.name)] = (int(stat[stat.rindex(")") + 2 :].split()[1]), name)
    return found


def descendants(roots: Iterable[int], parents: dict[int, tuple[int, str]] | None = None) -> dict[int, str]:
    """The processes under ``roots`` (not the roots), with their command names."""
    parents = parents if parents is not None else _parents()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in parents.items():
        children.setdefault(parent, []).append(pid)
    found, todo = {}, list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = parents[child][1]
            todo.append(child)
    return found


@dataclass
class MemoryPeaks:
    """Peak memory, in bytes: the driver's Python process, its JVM, and the executors all together."""

    driver_python: int = 0
    driver_jvm: int = 0
    executors: int = 0
    samples: int = 0

    def as_mib(self) -> dict[str, int]:
        return {
            "driver_python_mib": round(self.driver_python / MIB),
            "driver_jvm_mib": round(self.driver_jvm / MIB),
            "executors_mib": round(self.executors / MIB),
        }


@dataclass
class MemorySampler:
    """Samples ``driver`` (a Python process running a Spark driver) and the processes under ``workers``
    in a thread of its own, from ``start()`` to ``stop()``."""

    driver: int
    workers: tuple[int, ...] = ()
    peaks: MemoryPeaks = field(default_factory=MemoryPeaks)
    _done: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        parents = _parents()
        mine = _status(self.driver)
        self.peaks.driver_python = max(self.peaks.driver_python, mine.get("VmHWM", 0), mine.get("VmRSS", 0))
        for pid, name in descendants([self.driver], parents).items():
            if name == "java":
                jvm = _status(pid)
                self.peaks.driver_jvm = max(self.peaks.driver_jvm, jvm.get("VmHWM", 0), jvm.get("VmRSS", 0))
        executors = sum(_status(p).get("VmRSS", 0) for p in descendants(self.workers, parents))
        self.peaks.executors = max(self.peaks.executors, executors)
        self.peaks.samples += 1

    def start(self) -> None:
        def run() -> None:
            while not self._done.wait(SAMPLE_SECONDS):
                self.sample()

        self._thread = threading.Thread(target=run, name="memory-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> MemoryPeaks:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        return self.peaks


def own_high_water() -> dict[str, int]:
    """Called in the driver before its session stops: its Python process's and its JVM's ``VmHWM``."""
    jvm = [p for p, name in descendants([os.getpid()]).items() if name == "java"]
    return {
        "driver_python": _status(os.getpid()).get("VmHWM", 0),
        "driver_jvm": max((_status(p).get("VmHWM", 0) for p in jvm), default=0),
    }


@dataclass(frozen=True)
class ShuffleTotals:
    """From Spark's event log: bytes the tasks wrote to and read from the shuffle, their records, and
    the tasks' summed run time and CPU time (seconds of one core)."""

    bytes_written: int
    records_written: int
    bytes_read: int
    tasks: int
    task_seconds: float
    task_cpu_seconds: float


def shuffle_totals(event_log: Path) -> ShuffleTotals:
    """The totals over every finished task of every application logged in ``event_log`` (a folder)."""
    written = records = read = tasks = 0
    run_ms = cpu_ns = 0
    for log in sorted(p for p in event_log.iterdir() if p.is_file()):
        with log.open() as lines:
            for line in lines:
                if '"SparkListenerTaskEnd"' not in line:
                    continue
                metrics = json.loads(line).get("Task Metrics") or {}
                shuffle_write = metrics.get("Shuffle Write Metrics") or {}
                shuffle_read = metrics.get("Shuffle Read Metrics") or {}
                written += int(shuffle_write.get("Shuffle Bytes Written", 0))
                records += int(shuffle_write.get("Shuffle Records Written", 0))
                read += int(shuffle_read.get("Remote Bytes Read", 0)) + int(shuffle_read.get("Local Bytes Read", 0))
                run_ms += int(metrics.get("Executor Run Time", 0))
                cpu_ns += int(metrics.get("Executor CPU Time", 0))
                tasks += 1
    return ShuffleTotals(written, records, read, tasks, run_ms / 1e3, cpu_ns / 1e9)


@dataclass(frozen=True)
class WrittenTotals:
    """The Parquet files under a run's output folder: per output (its folder's name) files and bytes."""

    files: int
    bytes: int
    per_output: dict[str, tuple[int, int]]


def written_totals(out_dir: Path) -> WrittenTotals:
    per_output: dict[str, tuple[int, int]] = {}
    for path in out_dir.rglob("*.parquet"):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(out_dir).parts):
            continue
        name = path.relative_to(out_dir).parts[0].removesuffix(".parquet")
        files, size = per_output.get(name, (0, 0))
        per_output[name] = (files + 1, size + path.stat().st_size)
    return WrittenTotals(
        sum(f for f, _ in per_output.values()), sum(b for _, b in per_output.values()), dict(sorted(per_output.items()))
    )
