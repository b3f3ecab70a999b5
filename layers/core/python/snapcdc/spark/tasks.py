"""Python work run in Spark tasks, one task per item: small results back to the driver
(:func:`parallel`), or a frame of (bucket, side, payload) rows for the shuffle (:func:`blobs`)."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pyarrow as pa

T = TypeVar("T")


def parallel(spark: Any, work: Callable[[Any], T], tasks: list[Any]) -> list[T]:
    """``work`` applied to each task in a Spark task of its own (results back in order; each result
    is small: a count, a probe, a footer's numbers)."""
    if not tasks:
        return []
    rows = [(i, pickle.dumps(task)) for i, task in enumerate(tasks)]
    frame = spark.createDataFrame(spark.sparkContext.parallelize(rows, len(rows)), "i int, task binary")

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            numbers, results = [], []
            for number, task in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
                numbers.append(number)
                results.append(pickle.dumps(work(pickle.loads(task))))  # noqa: S301 - our own tasks
            yield pa.RecordBatch.from_arrays(
                [pa.array(numbers, pa.int32()), pa.array(results, pa.binary())], names=["i", "result"]
            )

    out: list[Any] = [None] * len(tasks)
    for row in frame.mapInArrow(run, "i int, result binary").collect():
        out[row.i] = pickle.loads(row.result)  # noqa: S301
    return out


_BLOBS_PER_BATCH = 4  # blobs (of up to ~8 MB) per Arrow batch handed to the JVM


def blobs(
    spark: Any, work: Callable[[Any], list[tuple[int, bytes]]], tasks: list[Any], side: int, lane: list[int]
) -> Any:
    """A frame of (bucket, side, payload) rows made by ``work`` from each task, one Spark task each;
    ``bucket`` is the bucket's lane (:func:`snapcdc.spark.partitions.lanes`)."""
    rows = [(pickle.dumps(task),) for task in tasks] or [(pickle.dumps(None),)]
    frame = spark.createDataFrame(spark.sparkContext.parallelize(rows, len(rows)), "task binary")

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for task in batch.column(0).to_pylist():
                loaded = pickle.loads(task)  # noqa: S301 - our own tasks
                made = work(loaded) if loaded is not None else []
                for at in range(0, len(made), _BLOBS_PER_BATCH):
                    part = made[at : at + _BLOBS_PER_BATCH]
                    yield pa.RecordBatch.from_arrays(
                        [
                            pa.array([lane[b] for b, _ in part], pa.int32()),
                            pa.array([side] * len(part), pa.int32()),
                            pa.array([p for _, p in part], pa.binary()),
                        ],
                        names=["bucket", "side", "payload"],
                    )

    return frame.mapInArrow(run, "bucket int, side int, payload binary")
