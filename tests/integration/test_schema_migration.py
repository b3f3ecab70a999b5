"""One physical schema per table (finding 4): a widened or added column rewrites the table's earlier
files, idempotently and safely across a crash half-way; verify and replay work on the result."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from snapcdc.cdc.migrate import MIGRATED_METADATA, footer_schema, table_files
from snapcdc.cdc.stage import TableProcessor
from snapcdc.config import TableConfig
from snapcdc.engine.spec import HASH_METADATA
from snapcdc.lake.ledger import read_run_record
from snapcdc.lake.snapshot import Snapshot
from snapcdc.lake.store import S3Store
from snapcdc.ops.replay import replay
from snapcdc.ops.verify import verify_table

from tests.support import csv_bytes, put_raw

TABLE = TableConfig(name="pontos", file="pontos.csv", delimiter=";", primary_key=("id",))
S1, S2, S3, S4 = "20260105T090000Z", "20260105T130000Z", "20260105T170000Z", "20260105T210000Z"
COLUMNS = ["id", "n", "nome"]
V1 = [["a", 10, "Ana"], ["b", 20, "Bia"], ["c", 30, "Caio"]]
V2 = [["a", 11, "Ana"], ["b", 20, "Bia"], ["c", 30, "Caio"], ["d", 40, "Davi"]]
V3 = [["a", 11, "Ana"], ["b", "12a", "Bia"], ["c", 30, "Caio"], ["d", 40, "Davi"]]  # n no longer an int
V4 = [["a", 11, "Ana"], ["b", "12a", "Bia"], ["d", 41, "Davi"], ["e", 50, "Eva"]]
DRIFT = [(S1, V1), (S2, V2), (S3, V3), (S4, V4)]


@dataclasses.dataclass(frozen=True)
class FailingStore(S3Store):
    """The store, except that the ``fail_at``-th upload of an object that already exists fails: a
    crash in the middle of a migration (every rewrite is an upload over an existing object)."""

    fail_at: int = 0
    overwrites: list[str] = dataclasses.field(default_factory=list)

    def upload_file(self, path, key, content_type="application/octet-stream"):
        if self.exists(key):
            self.overwrites.append(key)
            if len(self.overwrites) == self.fail_at:
                raise ConnectionError(f"injected failure writing {key}")
        super().upload_file(path, key, content_type)


def _put(store, snapshots, columns=COLUMNS):
    for snap, rows in snapshots:
        put_raw(store, TABLE, snap, csv_bytes(columns, rows))


def _processor(store, tmp_path):
    return TableProcessor(store, TABLE, work_dir=tmp_path / "work")


def _types_of(store, column):
    """key -> the physical type of ``column`` in every Parquet file of the table."""
    return {f.key: str(footer_schema(store, f.key).field(column).type) for f in table_files(store, TABLE.name)}


def _contents(store):
    """key -> bytes of every object but the run records' timing."""
    found = {}
    for key in store.list_keys("lake/"):
        body = store.get_bytes(key)
        if "/_runs/" in key:
            record = read_run_record(store, TABLE.name, key.split("snapshot=")[1][:16])
            body = record.model_copy(update={"seconds": 0.0}).model_dump_json().encode()
        found[key] = body
    return found


def test_an_int_column_that_gets_12a_has_one_physical_type_in_every_file_after_the_run(store, tmp_path):
    # Given four snapshots whose inferred int column n gets the value 12a in the third
    _put(store, DRIFT)
    # When
    records = _processor(store, tmp_path).process(Snapshot.parse(S4))
    # Then every file of the table holds n as text, and the table verifies
    assert set(_types_of(store, "n").values()) == {"string"}
    assert len(_types_of(store, "n")) == 1 + 3 + 4  # full load, three change sets, four snapshots
    assert verify_table(store, TABLE).ok
    widened = records[2]
    assert widened.schema_changes == [{"column": "n", "change": "widened", "from": "int64", "to": "string"}]
    assert widened.migration is not None
    assert widened.migration.columns == widened.schema_changes
    assert widened.migration.rewritten == [
        "lake/cdc/pontos/pontos_20260105_130000.parquet",
        "lake/full-load/pontos/pontos.parquet",
        f"lake/snapshots/pontos/snapshot={S1}/pontos.parquet",
        f"lake/snapshots/pontos/snapshot={S2}/pontos.parquet",
    ]
    assert read_run_record(store, TABLE.name, S3).migration == widened.migration  # as stored
    assert records[3].migration is None  # same schema as its base: nothing listed, nothing read


def test_migrated_files_keep_their_values_pipeline_columns_and_hash_signature(store, tmp_path):
    # Given
    _put(store, DRIFT[:2])
    _processor(store, tmp_path).process(Snapshot.parse(S2))
    before = {f.key: _read(store, f.key) for f in table_files(store, TABLE.name)}
    # When the third snapshot widens n
    _put(store, DRIFT[2:3])
    _processor(store, tmp_path).process(Snapshot.parse(S3))
    # Then
    for key, old in before.items():
        new = _read(store, key)
        assert new.column_names == old.column_names
        assert new["n"].to_pylist() == [str(v) for v in old["n"].to_pylist()]
        others = [c for c in old.column_names if c != "n"]
        assert new.select(others).equals(old.select(others).replace_schema_metadata(None))
        metadata = new.schema.metadata or {}
        assert metadata[MIGRATED_METADATA] == S3.encode()
        if "/snapshots/" in key:
            assert metadata[HASH_METADATA] == old.schema.metadata[HASH_METADATA]  # stale: recomputed next time


def test_a_column_added_is_appended_to_every_earlier_file(store, tmp_path):
    # Given two snapshots, then a third with a new column
    _put(store, DRIFT[:2])
    _put(store, [(S3, [[*row, "x"] for row in V2])], columns=[*COLUMNS, "extra"])
    # When
    records = _processor(store, tmp_path).process(Snapshot.parse(S3))
    # Then every file has the column, last among the table's columns, null where it did not exist
    for file in table_files(store, TABLE.name):
        names = [n for n in footer_schema(store, file.key).names if not n.startswith("_")]
        assert names == [*COLUMNS, "extra"], file.key
    assert _read(store, "lake/full-load/pontos/pontos.parquet")["extra"].null_count == 3
    assert records[-1].migration.columns == [{"column": "extra", "change": "added", "type": "string"}]
    assert verify_table(store, TABLE).ok


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4])
def test_a_migration_interrupted_half_way_is_completed_by_the_retry_with_the_same_objects(store, tmp_path, fail_at):
    # Given the uninterrupted run's bucket
    _put(store, DRIFT)
    _processor(store, tmp_path).process(Snapshot.parse(S4))
    expected = _contents(store)
    for key in list(store.list_keys("lake/")):
        if not key.startswith("lake/raw/"):
            store.delete(key)
    # When the same run fails after rewriting fail_at - 1 earlier files, and the event is retried
    failing = FailingStore(store.client, store.bucket, store.layout, fail_at=fail_at)
    with pytest.raises(ConnectionError, match="injected failure"):
        _processor(failing, tmp_path).process(Snapshot.parse(S4))
    assert read_run_record(store, TABLE.name, S3) is None  # not done: the retry redoes it
    records = _processor(store, tmp_path).process(Snapshot.parse(S4))
    # Then the bucket is the uninterrupted run's, byte for byte (run record timings aside)
    assert [r.snapshot for r in records] == [S3, S4]
    assert _contents(store) == expected
    assert verify_table(store, TABLE).ok


def test_the_next_diff_against_a_migrated_base_gives_the_right_changes(store, tmp_path):
    # Given a table migrated at S3, whose base snapshot file now has n as text and a stale signature
    _put(store, DRIFT)
    processor = _processor(store, tmp_path)
    original = {r.snapshot: r.stats for r in processor.process(Snapshot.parse(S4))}
    # When S2 and S3 are diffed again over the migrated files
    replayed = {r.snapshot: r.stats for r in replay(processor, Snapshot.parse(S2), Snapshot.parse(S3))}
    # Then the same inserts, updates and deletes, and the table still has one schema and verifies
    for snap in (S2, S3):
        assert {k: replayed[snap][k] for k in ("inserts", "updates", "deletes")} == {
            k: original[snap][k] for k in ("inserts", "updates", "deletes")
        }
    assert set(_types_of(store, "n").values()) == {"string"}
    assert verify_table(store, TABLE).ok


def test_a_retried_run_with_nothing_left_to_migrate_rewrites_nothing(store, tmp_path):
    # Given a migrated table
    _put(store, DRIFT[:3])
    _processor(store, tmp_path).process(Snapshot.parse(S3))
    before = _contents(store)
    # When the widening snapshot is reprocessed from scratch (its outputs and record deleted)
    store.delete(store.layout.run_record_key(TABLE.name, S3))
    [again] = _processor(store, tmp_path).process(Snapshot.parse(S3))
    # Then the earlier files are untouched, and the record lists them as this migration's
    assert _contents(store) == before
    assert again.migration is not None and len(again.migration.rewritten) == 4


def _read(store, key):
    return pq.read_table(pa.BufferReader(store.get_bytes(key)))
