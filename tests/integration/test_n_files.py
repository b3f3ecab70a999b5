"""Every reader of the lake on outputs written as N files (docs/design.md, "An output is N files"): the
runs' snapshot, full load, change sets and feeds split into three parts each (tests/parts.py, the Spark
job's layout), then the next diff, verify, replay, the schema migration, SCD2 and ingest read them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from snapcdc.cdc.migrate import footer_schema
from snapcdc.cdc.stage import TableProcessor
from snapcdc.config import OutputsConfig, Scd2Config, TableConfig
from snapcdc.lake.layout import Layout
from snapcdc.lake.ledger import read_run_record
from snapcdc.lake.records import RunRecord
from snapcdc.lake.snapshot import Snapshot
from snapcdc.lake.store import S3Store
from snapcdc.ops.ingest import ingest
from snapcdc.ops.replay import replay
from snapcdc.ops.verify import VerifyResult, scd2_history, verify

from tests.parts import split_run
from tests.support import csv_bytes, put_raw

TABLE = TableConfig(
    name="pontos",
    file="pontos.csv",
    delimiter=";",
    primary_key=("id",),
    outputs=OutputsConfig(changelog=True, dms=True, scd2=Scd2Config()),
)
S1, S2, S3 = "20260105T090000Z", "20260105T130000Z", "20260105T170000Z"
COLUMNS = ["id", "n", "nome"]
V1 = [["a", 10, "Ana"], ["b", 20, "Bia"], ["c", 30, "Caio"], ["d", 40, "Davi"], ["e", 50, "Eva"]]
V2 = [["a", 11, "Ana"], ["b", 20, "Bia"], ["c", 30, "Caio"], ["e", 50, "Eva"], ["f", 60, "Fabi"], ["g", 70, "Gil"]]
V3 = [["a", 12, "Ana"], ["b", 20, "Bia"], ["e", 51, "Eva"], ["f", 60, "Fabi"], ["g", 70, "Gil"], ["h", 80, "Hugo"]]
WIDENED = [["a", 11, "Ana"], ["b", "12a", "Bia"], ["c", 30, "Caio"], ["e", 50, "Eva"], ["f", 60, "Fabi"]]
SPLIT = ("snapshot", "cdc", "full_load", "changelog", "dms")


@dataclasses.dataclass(frozen=True)
class DeleteLog(S3Store):
    """The store, with every key deleted through it logged."""

    deleted: list[str] = dataclasses.field(default_factory=list)

    def delete(self, key: str) -> None:
        self.deleted.append(key)
        super().delete(key)


def _processor(store: S3Store, tmp_path: Path) -> TableProcessor:
    return TableProcessor(store, TABLE, work_dir=tmp_path / "work")


def _process(store: S3Store, tmp_path: Path, snap: str, rows: list[list[object]]) -> RunRecord:
    put_raw(store, TABLE, snap, csv_bytes(COLUMNS, rows))
    (record,) = _processor(store, tmp_path).process(Snapshot.parse(snap))
    assert record.accepted, record.error
    return record


@pytest.fixture
def lake(store: S3Store, tmp_path: Path) -> dict[str, RunRecord]:
    """S1 and S2 processed, each run's outputs split into three parts (S2 diffed against S1's parts)."""
    _process(store, tmp_path, S1, V1)
    first = split_run(store, TABLE.name, S1, SPLIT)
    _process(store, tmp_path, S2, V2)
    second = split_run(store, TABLE.name, S2, SPLIT)
    return {S1: first, S2: second}


def _verify(store: S3Store) -> VerifyResult:
    """``snapcdc verify`` of the table: a file it cannot read or combine reported as failing."""
    (result,) = verify(store, [TABLE])
    return result


def _snapshot_part(store: S3Store, snap: str, part: int) -> str:
    return Layout.part_key(store.layout.snapshot_key(TABLE.name, snap), part)


def test_the_lake_of_parts_has_no_single_files_and_verifies(store, lake):
    # Given the lake of three-part outputs
    record = lake[S2]
    # When its files and verify are looked at
    result = _verify(store)
    # Then each output is its three listed parts, the single files gone, and verify passes
    assert [len(record.keys(name)) for name in SPLIT if record.keys(name)] == [3, 3, 3, 3]
    assert not store.exists(store.layout.snapshot_key(TABLE.name, S2))
    assert result.ok, result.message
    assert "changelog OK" in result.message and "dms OK" in result.message and "scd2 OK" in result.message


def test_the_next_diff_reads_the_old_snapshot_as_its_parts(store, lake, tmp_path):
    # Given the lake whose newest snapshot is three parts
    # When the next snapshot is processed
    record = _process(store, tmp_path, S3, V3)
    # Then its change set is against all of them: c deleted, a and e updated, h inserted
    stats = record.stats
    assert (stats["inserts"], stats["updates"], stats["deletes"]) == (1, 2, 1)
    assert _verify(store).ok


def test_the_cdc_function_lists_its_one_file_with_rows_and_bytes(store, lake, tmp_path):
    # Given the lake of parts
    # When the CDC function writes the next snapshot
    record = _process(store, tmp_path, S3, V3)
    # Then the record lists each output as one file with its rows and bytes
    (snapshot,) = record.files["snapshot"]
    assert snapshot.key == store.layout.snapshot_key(TABLE.name, S3)
    assert (snapshot.rows, snapshot.bytes) == (len(V3), store.size(snapshot.key))
    assert [f.rows for f in record.files["cdc"]] == [4]


def test_verify_fails_on_a_missing_part_naming_it(store, lake):
    # Given the old snapshot's middle part gone
    gone = _snapshot_part(store, S1, 1)
    store.delete(gone)
    # When verified
    result = _verify(store)
    # Then it fails naming the part, with the repair
    assert not result.ok
    assert gone in result.message and "snapcdc replay --table pontos" in result.message


@pytest.mark.parametrize("where", ["snapshot", "full_load", "cdc"])
def test_verify_fails_on_a_stray_part_naming_it(store, lake, where):
    # Given a fourth part of an output that no run record lists
    whole = {
        "snapshot": store.layout.snapshot_key(TABLE.name, S2),
        "full_load": store.layout.full_load_key(TABLE.name),
        "cdc": store.layout.cdc_key(TABLE.name, S2),
    }[where]
    stray = Layout.part_key(whole, 3)
    store.put_bytes(stray, store.get_bytes(Layout.part_key(whole, 0)) or b"")
    # When verified
    result = _verify(store)
    # Then it fails with a line naming the stray file
    assert not result.ok
    assert f"unexpected ['{stray}']" in result.message, result.message


def test_verify_fails_on_a_part_short_of_its_listed_rows(store, lake):
    # Given a part of the old snapshot rewritten with one row fewer than its record lists
    short = _snapshot_part(store, S1, 2)
    rows = pq.read_table(pa.BufferReader(store.get_bytes(short)))
    sink = pa.BufferOutputStream()
    pq.write_table(rows.slice(1), sink)
    store.put_bytes(short, sink.getvalue().to_pybytes())
    # When verified
    result = _verify(store)
    # Then it fails naming the part and both counts
    assert not result.ok
    assert short in result.message
    assert f"has {rows.num_rows - 1} rows, its run record lists {rows.num_rows}" in result.message


def test_replay_deletes_exactly_the_listed_parts_and_nothing_else(store, lake, tmp_path):
    # Given the lake of parts, and a file of someone else's in a snapshot's folder and in scd2/
    foreign = [
        store.layout.snapshot_prefix(TABLE.name) + f"snapshot={S2}/notes.txt",
        store.layout.scd2_prefix(TABLE.name) + "README.txt",
    ]
    for key in foreign:
        store.put_bytes(key, b"not the pipeline's")
    logged = DeleteLog(store.client, store.bucket, store.layout)
    # When S2 is replayed
    replay(TableProcessor(logged, TABLE, work_dir=tmp_path / "work"), Snapshot.parse(S2))
    # Then outside the SCD2 history it rebuilds, exactly S2's listed files and its run record were deleted
    own = [k for k in logged.deleted if not store.layout.is_scd2_key(TABLE.name, k)]
    assert sorted(own) == sorted([*lake[S2].all_keys(), store.layout.run_record_key(TABLE.name, S2)])
    assert len(lake[S2].all_keys()) == 12
    # And the foreign files and S1's parts are still there; S2 is single files again
    assert all(store.exists(key) for key in foreign)
    assert all(store.exists(key) for key in lake[S1].all_keys())
    replayed = read_run_record(store, TABLE.name, S2)
    assert replayed is not None and replayed.keys("snapshot") == [store.layout.snapshot_key(TABLE.name, S2)]
    for key in foreign:
        store.delete(key)
    assert _verify(store).ok


def test_the_schema_migration_rewrites_every_part(store, lake, tmp_path):
    # Given the lake of parts
    # When a snapshot widens n from int to string
    record = _process(store, tmp_path, S3, WIDENED)
    # Then every part of the earlier outputs has n as a string, each listed as rewritten
    parts = [k for snap in (S1, S2) for k in lake[snap].all_keys() if "/dms/" not in k]
    for key in parts:
        assert str(footer_schema(store, key).field("n").type) == "string", key
    assert record.migration is not None
    assert set(parts) <= set(record.migration.rewritten)
    result = _verify(store)
    assert result.ok, result.message


def test_the_scd2_rebuild_reads_the_parts_and_deletes_only_its_files(store, lake, tmp_path):
    # Given the lake of parts, its SCD2 history, and a file of someone else's under scd2/
    before = scd2_history(store, TABLE.name).sort_by([("id", "ascending"), ("valid_from", "ascending")])
    foreign = store.layout.scd2_prefix(TABLE.name) + "notes.txt"
    store.put_bytes(foreign, b"not the pipeline's")
    history = _processor(store, tmp_path).scd2_history()
    assert history is not None
    # When the history is rebuilt from the ledger (the full load and change sets as their parts)
    history.rebuild(tmp_path)
    # Then it is the same history, and the foreign file is still there
    store.delete(foreign)
    after = scd2_history(store, TABLE.name).sort_by([("id", "ascending"), ("valid_from", "ascending")])
    assert after.equals(before)
    assert _verify(store).ok


def test_ingest_processes_the_next_snapshot_against_the_parts(store, lake, tmp_path):
    # Given the lake of parts and the next export as a local file
    export = tmp_path / "export.csv"
    export.write_bytes(csv_bytes(COLUMNS, V3))
    # When it is ingested, then ingested again
    done = ingest(_processor(store, tmp_path), Snapshot.parse(S3), export)
    again = ingest(_processor(store, tmp_path), Snapshot.parse(S3), export)
    # Then the first processed it against S2's parts, the second found it done
    assert done.record.accepted and done.record.base_snapshot == S2
    assert done.record.stats["inserts"] == 1
    assert again.already_processed
    assert _verify(store).ok
