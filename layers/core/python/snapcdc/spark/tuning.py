"""The job's shuffle partitions, from the table's size: one partition per ``partition_bytes`` of the raw CSV
(the template's ``--PARTITION_MB``, context key ``glue_partition_mb``), never fewer than the cluster's
cores, so each task holds a bounded slice of the table whatever its size (``docs/deploy.md``). Adaptive
query execution (on by default in the template) then coalesces the partitions that turn out small.
"""

from __future__ import annotations

import math
from typing import Any

MAX_SHUFFLE_PARTITIONS = 100_000
SHUFFLE_PARTITIONS = "spark.sql.shuffle.partitions"


def shuffle_partitions(raw_bytes: int, partition_bytes: int, cores: int) -> int:
    """``ceil(raw_bytes / partition_bytes)``, at least ``cores``, at most :data:`MAX_SHUFFLE_PARTITIONS`."""
    if partition_bytes <= 0:
        raise ValueError(f"partition_bytes must be positive, got {partition_bytes}")
    return min(MAX_SHUFFLE_PARTITIONS, max(cores, 1, math.ceil(raw_bytes / partition_bytes)))


def set_shuffle_partitions(spark: Any, raw_bytes: int, fixed: int, partition_bytes: int) -> int:
    """Sets the session's shuffle partitions for the next diff: ``fixed`` when positive, else from the size."""
    cores = int(spark.sparkContext.defaultParallelism)
    partitions = fixed if fixed > 0 else shuffle_partitions(raw_bytes, partition_bytes, cores)
    spark.conf.set(SHUFFLE_PARTITIONS, str(partitions))
    return partitions
