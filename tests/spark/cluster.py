"""The fixture ``standalone_cluster``: a master and two workers on 127.0.0.1, each with its own working
directory (``snapcdc_dev.spark_cluster``, the launcher ``make bench-spark`` uses too), session-scoped,
torn down at the end. A driver runs in a process of its own against it (``driver_env``): a test process
already holds its local SparkContext, and one process has at most one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from snapcdc_dev.spark_cluster import StandaloneCluster, WorkerShape
from snapcdc_dev.spark_cluster import standalone_cluster as launch

__all__ = ["StandaloneCluster", "standalone_cluster"]


@pytest.fixture(scope="session")
def standalone_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    with launch(tmp_path_factory.mktemp("standalone-cluster"), WorkerShape(workers=2, cores=1, memory="1g")) as cluster:
        yield cluster
