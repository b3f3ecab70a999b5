"""How many buckets a run has, and one partition per bucket.

The bucket count depends only on the data (the inputs' sizes), never on the cluster, so a retried task
or run writes the same part files. A bucketed old snapshot (part ``b`` holds bucket ``b``) keeps its
count while the table has not grown past twice that: its parts are then read in their buckets' tasks,
and the old side is not shuffled.

``repartition(n, "bucket")`` sends a row to partition ``pmod(murmur3(bucket), n)``: buckets numbered
0..n-1 collide (a third or more of the partitions empty, the largest several times the mean). Each
bucket is therefore given a *lane*, an int that Spark's own hash sends to partition ``b``
(:func:`lanes`), found once per run by Spark itself: each bucket lands in its own partition.
"""

from __future__ import annotations

from typing import Any

BUCKET_BYTES = 64 << 20  # input bytes per bucket (new CSV or old Parquet, the larger)
MIN_BUCKETS = 4


def bucket_count(new_bytes: int, old_bytes: int, old_buckets: int) -> tuple[int, bool]:
    """The run's bucket count, and whether the old side is read bucketed (``old_buckets``: the parts of
    a bucketed old snapshot; 0: none)."""
    wanted = max(MIN_BUCKETS, -(-max(new_bytes, old_bytes) // BUCKET_BYTES))
    if old_buckets and wanted <= 2 * old_buckets and old_buckets >= MIN_BUCKETS:
        return old_buckets, True
    return wanted, False


def lanes(spark: Any, buckets: int) -> list[int]:
    """Per bucket ``b``, an int ``v`` with ``pmod(hash(v), buckets) == b`` (Spark's hash partitioning of
    an int column), so that ``repartition(buckets, col)`` puts bucket ``b`` in partition ``b``."""
    found: dict[int, int] = {}
    span = 0
    while len(found) < buckets:
        start, span = span, span + 32 * buckets
        rows = (
            spark.range(start, span)
            .selectExpr("cast(id as int) as v", f"pmod(hash(cast(id as int)), {buckets}) as b")
            .groupBy("b")
            .min("v")
            .collect()
        )
        for row in rows:
            found.setdefault(int(row[0]), int(row[1]))
    return [found[b] for b in range(buckets)]
