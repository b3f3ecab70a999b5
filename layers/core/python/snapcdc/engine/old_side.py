"""The old side: the previous accepted snapshot, of which only keys, date and cached hashes are held
in memory (full rows are fetched only for the few keys that need them), and its index for matching
a new batch's keys to old positions."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from snapcdc.engine import arrow_numpy, hashing
from snapcdc.engine.hash_columns import HashSignature, data_only, has_cached_hashes
from snapcdc.engine.hash_index import HashIndex
from snapcdc.engine.keys import duplicate_rows
from snapcdc.engine.schema import conform_columns
from snapcdc.engine.spec import HASH_COLUMNS, HASH_METADATA, KEY_HASH, ROW_HASH, InputError, TableSpec


@dataclass
class OldSnapshot:
    schema: pa.Schema  # data schema as stored
    signature: str | None  # what the cached hashes were computed over (None: no cached hashes)
    key_hashes: Callable[[], np.ndarray] | None  # cached key hashes, read first (None: no cached hashes)
    head: Callable[[], Head] | None  # keys, date and cached row hashes (None: no cached hashes)
    # Data rows at sorted positions (None: all rows), of the named columns (None: every data column).
    fetch: Callable[[np.ndarray | None, list[str] | None], pa.Table]
    lookup: Future[HashIndex | None] | None = None  # a hash lookup over key_hashes already being built

    @classmethod
    def from_table(cls, table: pa.Table, spec: TableSpec) -> OldSnapshot:
        """An accepted snapshot table (e.g. ``DiffResult.snapshot``), with or without hash columns."""
        metadata = table.schema.metadata or {}
        data = data_only(table)
        cached = has_cached_hashes(table.schema)
        wanted = [*spec.primary_key, *([spec.date_field] if spec.date_field in data.column_names else [])]

        def fetch(positions: np.ndarray | None, columns: list[str] | None) -> pa.Table:
            chosen = data if columns is None else data.select(columns)
            return chosen if positions is None else chosen.take(arrow_numpy.positions(positions))

        def head() -> Head:
            return Head(data.select(wanted), *hashing.row_hash_lanes(table[ROW_HASH]))

        return cls(
            schema=data.schema,
            signature=metadata[HASH_METADATA].decode() if cached else None,
            key_hashes=(lambda: arrow_numpy.numbers(table[KEY_HASH])) if cached else None,
            head=head if cached else None,
            fetch=fetch,
        )

    @classmethod
    def from_parquet(cls, path: Path, spec: TableSpec, name: str) -> OldSnapshot:
        """A snapshot Parquet written by this engine: reads keys, date and hashes only."""
        parquet = pq.ParquetFile(path)
        stored = parquet.schema_arrow
        data_names = [n for n in stored.names if n not in HASH_COLUMNS]
        missing = [k for k in spec.primary_key if k not in data_names]
        if missing:
            raise InputError(name, None, f"primary key column(s) {', '.join(missing)} not in the old snapshot")
        date = [spec.date_field] if spec.date_field is not None and spec.date_field in data_names else []
        wanted = [*spec.primary_key, *date]
        group_starts = np.cumsum([0] + [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)])
        schema = pa.schema([stored.field(n) for n in data_names])

        def fetch(positions: np.ndarray | None, columns: list[str] | None) -> pa.Table:
            names = data_names if columns is None else columns
            if positions is None:
                return parquet.read(columns=names).replace_schema_metadata(None)
            # Groups are decoded a few at a time (threads across columns), keeping only the wanted rows;
            # dictionary-encoded text is read as a dictionary and only the kept rows are decoded.
            coded = pq.ParquetFile(path, read_dictionary=_dictionary_encoded(parquet, names))
            return take_from_groups(
                positions,
                group_starts,
                pa.schema([schema.field(n) for n in names]),
                lambda groups: coded.read_row_groups(groups, columns=names),
                4,
            )

        return cls(
            schema=schema,
            signature=(stored.metadata or {})[HASH_METADATA].decode(),
            key_hashes=lambda: _read_key_hashes(parquet),
            head=lambda: _read_head(parquet, wanted),
            fetch=fetch,
        )


def take_from_groups(
    positions: np.ndarray,
    group_starts: np.ndarray,
    schema: pa.Schema,
    read: Callable[[list[int]], pa.Table],
    at_once: int,
) -> pa.Table:
    """Rows at sorted ``positions`` of a file stored in groups of rows (``group_starts``: first row of
    each group, then the row count), reading only the groups that hold some, ``at_once`` per read."""
    cuts = np.searchsorted(positions, group_starts)
    groups = [g for g in range(len(group_starts) - 1) if cuts[g + 1] > cuts[g]]
    pieces = [arrow_numpy.empty_table(schema)]
    for first in range(0, len(groups), at_once):
        chosen, offset, within = groups[first : first + at_once], 0, []
        for group in chosen:
            within.append(positions[cuts[group] : cuts[group + 1]] - group_starts[group] + offset)
            offset += group_starts[group + 1] - group_starts[group]
        rows = read(chosen).take(arrow_numpy.positions(np.concatenate(within)))
        pieces.append(rows.replace_schema_metadata(None).cast(schema))  # a dictionary read decoded
    return pa.concat_tables(pieces)


def _dictionary_encoded(parquet: pq.ParquetFile, names: list[str]) -> list[str]:
    """The text columns among ``names`` that the file's first row group stores dictionary-encoded."""
    if parquet.num_row_groups == 0:
        return []
    group = parquet.metadata.row_group(0)
    stored = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
    return [
        name
        for name in names
        if pa.types.is_string(parquet.schema_arrow.field(name).type)
        and name in stored
        and stored[name].has_dictionary_page
    ]


@dataclass
class Head:
    keys: pa.Table
    row_a: np.ndarray
    row_b: np.ndarray


def _read_key_hashes(parquet: pq.ParquetFile) -> np.ndarray:
    """The cached key hashes, a row group at a time into one array (no second copy while joining)."""
    key_hash, at = np.empty(parquet.metadata.num_rows, np.uint64), 0
    for group in range(parquet.num_row_groups):
        part = arrow_numpy.numbers(parquet.read_row_group(group, columns=[KEY_HASH])[KEY_HASH])
        key_hash[at : at + len(part)] = part
        at += len(part)
    return key_hash


def _read_head(parquet: pq.ParquetFile, wanted: list[str]) -> Head:
    """Keys, date and row hashes of a stored snapshot, read a row group at a time (a whole-column
    read needs about twice the memory while it decodes)."""
    rows = parquet.metadata.num_rows
    row_a, row_b = np.empty(rows, np.uint64), np.empty(rows, np.uint64)
    pieces, at = [], 0
    for group in range(parquet.num_row_groups):
        part = parquet.read_row_group(group, columns=[*wanted, ROW_HASH])
        count = part.num_rows
        row_a[at : at + count], row_b[at : at + count] = hashing.row_hash_lanes(part[ROW_HASH])
        pieces.append(part.select(wanted))
        at += count
    if not pieces:
        return Head(arrow_numpy.empty_table(pa.schema([parquet.schema_arrow.field(n) for n in wanted])), row_a, row_b)
    keys = pa.concat_tables(pieces)
    del pieces
    head = Head(pa.table({name: one_chunk(keys[name]) for name in wanted}), row_a, row_b)
    del keys
    pa.default_memory_pool().release_unused()  # the pieces' memory: hundreds of MB on a big table
    return head


class OldIndex:
    """The old side ready for matching: keys and hashes conformed to the new schema, a hash lookup."""

    def __init__(
        self,
        old: OldSnapshot,
        schema: pa.Schema,
        spec: TableSpec,
        signature: HashSignature,
        name: str,
        hashing_pool: Executor | None = None,
    ) -> None:
        self.snapshot = old
        self.name = name
        self.schema = schema
        if old.signature == signature.text and old.key_hashes is not None and old.head is not None:
            self.key_hash = old.key_hashes()
            # The lookup (the slow part) is built while the keys and row hashes are read.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="old-lookup") as builder:
                lookup = old.lookup or builder.submit(hash_lookup, self.key_hash)
                head = old.head()
                key_and_date = pa.schema([schema.field(c) for c in head.keys.column_names])
                self.keys = conform_table(head.keys, key_and_date, name)
                self.row_a, self.row_b = head.row_a, head.row_b
                self.lookup = lookup.result()
        else:  # stale or missing hashes: recompute once from the full old rows
            full = conform_table(old.fetch(None, None), schema, name)
            date = [spec.date_field] if spec.date_field in schema.names else []
            self.keys = full.select([*spec.primary_key, *date])
            self.key_hash = hashing.key_hash(full, spec.primary_key, hashing_pool)
            self.row_a, self.row_b = hashing.row_lanes(full, signature.row_columns, hashing_pool)
            self.lookup = hash_lookup(self.key_hash)
        self.keys = pa.table({name: one_chunk(self.keys[name]) for name in self.keys.column_names})
        self.num_rows = self.keys.num_rows
        self.key_names = list(spec.primary_key)
        self.key_items = {name: arrow_numpy.items(self.keys[name]) for name in self.key_names}
        # Rows that are not part of the old side: a key occurring twice in an old side read from a
        # file never accepted (a stored snapshot has none). Checked only when the key hashes repeat.
        self.excluded = np.zeros(0, dtype=np.int64)
        self.kept: np.ndarray | None = None  # positions the lookup's entries stand for (None: all)
        if self.lookup is None:
            self.excluded = duplicate_rows(self.keys.select(self.key_names), self.key_hash, np.arange(self.num_rows))
            if len(self.excluded):
                self.kept = np.setdiff1d(np.arange(self.num_rows), self.excluded)
                self.lookup = hash_lookup(self.key_hash[self.kept])

    def match(self, keys: pa.RecordBatch, key_hash: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """For each of ``rows``, the old position with the same key, or -1."""
        if self.num_rows == 0 or len(rows) == 0:
            return np.full(len(rows), -1, dtype=np.int64)
        if self.lookup is not None:
            positions = self.lookup.positions(key_hash[rows])
            hit = positions >= 0
            if self.kept is not None:
                positions[hit] = self.kept[positions[hit]]
            if self._same_keys(keys, rows[hit], positions[hit]):  # a collision must never pair different keys
                return positions
        return self._match_exact(keys, rows)

    def _same_keys(self, keys: pa.RecordBatch, rows: np.ndarray, positions: np.ndarray) -> bool:
        every_row = len(rows) == keys.num_rows  # the usual case: no take on the new side
        for name in self.key_names:
            old_items, new_items = self.key_items[name], arrow_numpy.items(keys.column(name))
            if old_items is not None and new_items is not None and old_items.dtype == new_items.dtype:
                # Fixed-width values (ids, UUIDs, numbers): their bytes compared, a copy of each fewer.
                new_items = new_items if every_row else new_items[rows]
                if not np.array_equal(old_items.take(positions).view(np.uint8), new_items.view(np.uint8)):
                    return False
                continue
            new = keys.column(name) if every_row else keys.column(name).take(arrow_numpy.positions(rows))
            same = arrow_numpy.mask(pc.equal(new, self.keys[name].take(arrow_numpy.positions(positions))))
            if not same.all():
                return False
        return True

    def _match_exact(self, keys: pa.RecordBatch, rows: np.ndarray) -> np.ndarray:
        left = pa.Table.from_batches([keys.take(rows)]).append_column("__new", pa.array(np.arange(len(rows))))
        right = self.keys.select(self.key_names).append_column("__old", pa.array(np.arange(self.num_rows)))
        if len(self.excluded):
            keep = np.ones(self.num_rows, dtype=bool)
            keep[self.excluded] = False
            right = right.filter(pa.array(keep))
        joined = left.join(right, keys=self.key_names, join_type="left outer")
        positions = np.full(len(rows), -1, dtype=np.int64)
        positions[joined["__new"].to_numpy()] = joined["__old"].fill_null(-1).to_numpy()
        return positions

    def rows(self, positions: np.ndarray) -> pa.Table:
        """Full old rows at sorted ``positions``, conformed to the new schema."""
        if len(positions) == 0:
            return arrow_numpy.empty_table(self.schema)
        # Keys and date are held here: only the other columns are read.
        held = self.keys.take(arrow_numpy.positions(positions))
        rest = [n for n in self.snapshot.schema.names if n not in held.column_names]
        stored = self.snapshot.fetch(positions, rest)
        both = pa.Table.from_arrays([*held.columns, *stored.columns], names=[*held.column_names, *rest])
        return conform_table(both, self.schema, self.name)


def hash_lookup(key_hash: np.ndarray) -> HashIndex | None:
    """A hash table from key hash to old position; None when distinct keys share a 64-bit hash
    (then every batch is joined on the key values)."""
    return HashIndex.build(key_hash)


def one_chunk(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """The column as one chunk: take() on a many-chunked string column concatenates it on every call."""
    if column.num_chunks <= 1:
        return column
    if pa.types.is_string(column.type) and column.nbytes >= 2**31 - 1:
        column = column.cast(pa.large_string())  # 32-bit offsets cannot hold it in one chunk
    return pa.chunked_array([pa.concat_arrays(column.chunks)], type=column.type)


def conform_table(table: pa.Table, schema: pa.Schema, source: str) -> pa.Table:
    try:
        return conform_columns(table, schema)
    except ValueError as error:
        raise InputError(source, None, str(error)) from None
