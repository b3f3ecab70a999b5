"""AWS Glue 5 entry point of the Spark CDC job: one table snapshot (``--TABLE``, ``--SNAPSHOT``), then the
table's later pending snapshots. The code is :mod:`snapcdc.spark.job` (``--extra-py-files``)."""

import sys

from snapcdc.spark.job import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
