"""The engine's second face: the pieces the Spark engine (:mod:`snapcdc.spark`) assembles into the same
diff on a cluster. :mod:`snapcdc.engine` (``diff_files``, ``diff_tables``) is the face for callers that
diff whole files; this one names, publicly, the rules a distributed run applies to pieces of a table,
so that no module outside ``engine/`` reaches for a private name (``tests/unit/test_private_imports.py``).

* the segment rules of a CSV (where a segment starts, how it is parsed, when it ends cleanly);
* the new side's typing (the plan from the first block, the established type, the order of columns);
* the diff of one piece of the table (:func:`run_diff`) and the sinks it writes to;
* the one output writer (:mod:`snapcdc.engine.writer`) both engines write their files with.

Every name here is an alias of the engine module that owns the rule: one set of semantics.
"""

from snapcdc.engine import csv_input, hashing
from snapcdc.engine.cdc_columns import utc, with_cdc
from snapcdc.engine.csv_input import _LINE_PROBE_BYTES as LINE_PROBE_BYTES
from snapcdc.engine.csv_input import MAX_BLOCK_SIZE, is_parquet, read_header, sample_strings
from snapcdc.engine.csv_input import _convert_options as convert_options
from snapcdc.engine.csv_input import _ends_cleanly as ends_cleanly
from snapcdc.engine.csv_input import _holds_nul as holds_nul
from snapcdc.engine.csv_input import _parse_options as parse_options
from snapcdc.engine.csv_input import _TypedRead as TypedRead
from snapcdc.engine.differ import run_diff
from snapcdc.engine.fidelity import CHECKED_TYPES
from snapcdc.engine.hash_columns import hash_signature, snapshot_schema
from snapcdc.engine.new_side import STREAM_BATCH_ROWS, NewBatch, NewInput
from snapcdc.engine.new_side import _arrange as arrange
from snapcdc.engine.new_side import _as_text_table as as_text_table
from snapcdc.engine.new_side import _check_keys as check_keys
from snapcdc.engine.new_side import _column_order as column_order
from snapcdc.engine.new_side import _established as established_type
from snapcdc.engine.new_side import _planned_schema as planned_schema
from snapcdc.engine.new_side import _schema_change as schema_change
from snapcdc.engine.old_side import OldSnapshot, conform_table
from snapcdc.engine.schema import ARROW_TYPES, INFERENCE_ORDER, parse, type_name
from snapcdc.engine.schema import _sample_fits as sample_fits
from snapcdc.engine.sinks import MemorySnapshot
from snapcdc.engine.spec import WrittenFile
from snapcdc.engine.writer import OutputFiles, finish_outputs, remove, snapshot_sink, write_table

__all__ = [
    "ARROW_TYPES",
    "CHECKED_TYPES",
    "INFERENCE_ORDER",
    "LINE_PROBE_BYTES",
    "MAX_BLOCK_SIZE",
    "STREAM_BATCH_ROWS",
    "MemorySnapshot",
    "NewBatch",
    "NewInput",
    "OldSnapshot",
    "OutputFiles",
    "TypedRead",
    "WrittenFile",
    "arrange",
    "as_text_table",
    "check_keys",
    "column_order",
    "conform_table",
    "convert_options",
    "csv_input",
    "ends_cleanly",
    "established_type",
    "finish_outputs",
    "hash_signature",
    "hashing",
    "holds_nul",
    "is_parquet",
    "parse",
    "parse_options",
    "planned_schema",
    "read_header",
    "remove",
    "run_diff",
    "sample_fits",
    "sample_strings",
    "schema_change",
    "snapshot_schema",
    "snapshot_sink",
    "type_name",
    "utc",
    "with_cdc",
    "write_table",
]
