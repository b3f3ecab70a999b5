"""The hash columns of a stored snapshot: the 64-bit key hash and 128-bit row hash the engine keeps
beside each row, and the signature (in the schema's metadata) of what they were computed over."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pyarrow as pa

from snapcdc.engine.hashing import row_hash_array
from snapcdc.engine.schema import type_name
from snapcdc.engine.spec import HASH_COLUMNS, HASH_METADATA, HASH_VERSION, KEY_HASH, ROW_HASH, TableSpec

_Rows = TypeVar("_Rows", pa.Table, pa.Schema)


def data_only(rows: _Rows) -> _Rows:
    """A table (or schema) without its hash columns, if it has any, nor their signature (the schema's
    metadata): the data as users see it."""
    if isinstance(rows, pa.Schema):
        return pa.schema([f for f in rows if f.name not in HASH_COLUMNS])
    return rows.drop_columns([c for c in HASH_COLUMNS if c in rows.column_names]).replace_schema_metadata(None)


def has_cached_hashes(schema: pa.Schema) -> bool:
    """Whether a stored snapshot's schema carries the hash columns and their signature (the engine's
    own snapshot copy), so its hashes can be reused instead of computed."""
    return HASH_METADATA in (schema.metadata or {}) and all(c in schema.names for c in HASH_COLUMNS)


@dataclass(frozen=True)
class HashSignature:
    text: str  # what the stored hashes depend on (stale hashes, schema or key changed, are recomputed)
    row_columns: list[str]  # the columns the row hash covers, in order


def hash_signature(schema: pa.Schema, spec: TableSpec) -> HashSignature:
    date = spec.date_field if spec.date_field in schema.names else None
    row_columns = [n for n in schema.names if n not in spec.primary_key and n != date]
    described = {
        "version": HASH_VERSION,
        "key": [[k, type_name(schema.field(k).type)] for k in spec.primary_key],
        "row": [[n, type_name(schema.field(n).type)] for n in row_columns],
        "date": date,
    }
    return HashSignature(json.dumps(described, sort_keys=True), row_columns)


def snapshot_schema(schema: pa.Schema, signature: str) -> pa.Schema:
    hashes = [pa.field(KEY_HASH, pa.uint64()), pa.field(ROW_HASH, pa.binary(16))]
    return pa.schema([*schema, *hashes], metadata={HASH_METADATA: signature.encode()})


def _hash_arrays(key_a: np.ndarray, row_a: np.ndarray, row_b: np.ndarray) -> list[pa.Array]:
    return [pa.array(key_a, type=pa.uint64()), row_hash_array(row_a, row_b)]


def batch_with_hashes(
    batch: pa.RecordBatch, key_a: np.ndarray, row_a: np.ndarray, row_b: np.ndarray, schema: pa.Schema
) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([*batch.columns, *_hash_arrays(key_a, row_a, row_b)], schema=schema)


def table_with_hashes(
    table: pa.Table, key_a: np.ndarray, row_a: np.ndarray, row_b: np.ndarray, schema: pa.Schema
) -> pa.Table:
    return pa.Table.from_arrays([*table.columns, *_hash_arrays(key_a, row_a, row_b)], schema=schema)
