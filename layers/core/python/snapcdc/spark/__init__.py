"""The CDC engine on Spark (AWS Glue 5): the same semantics as :mod:`snapcdc.engine`, for tables past
one Lambda. ``docs/scale.md`` says when a table goes here and how the work is split.

The Spark code never restates a rule of the engine: its Arrow UDFs (``mapInArrow``) call the engine's
own modules on pieces of the table, and the driver makes the few decisions that need the whole table.

* :mod:`.sources` reads byte ranges of a local file or an S3 object (executors read their own pieces).
* :mod:`.reader` parses the CSV in segments (the engine's segment rules, :mod:`snapcdc.engine.csv_input`)
  in parallel, decides the column types once for the whole file (the engine's typing,
  :mod:`snapcdc.engine.new_side` and :mod:`snapcdc.engine.schema`) and types every segment by it.
* :mod:`.diff` spreads old and new rows over partitions by the engine's key hash and runs the engine's
  own diff (:func:`snapcdc.engine.differ.run_diff`) on each partition; the driver sums the stats,
  applies the delete guard to the whole table and writes the engine's files in the engine's order.
* :mod:`.job` is the AWS Glue entry point and :func:`~snapcdc.spark.job.spark_diff_files`, the
  Spark twin of :func:`snapcdc.engine.diff_files` (used by ``snapcdc diff --engine spark``).

Importing this package does not import pyspark: the Lambda functions never load it.
"""
