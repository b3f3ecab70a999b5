"""Run records, manifests and the ledger reads against S3 (moto in-process)."""

from __future__ import annotations

import json

import pytest
from snapcdc.errors import SnapcdcError
from snapcdc.lake.ledger import (
    base_record,
    processed_snapshots,
    read_manifest,
    read_run_record,
    write_manifest,
    write_run_record,
)
from snapcdc.lake.records import Manifest, ManifestTable, RecordError, RunRecord
from snapcdc.lake.store import S3Store

from tests.support import BUCKET

S1, S2, S3, S4 = "20260105T090000Z", "20260105T130000Z", "20260105T170000Z", "20260105T210000Z"

# A run record and a manifest byte for byte as the writer before the models stored them
# (json.dumps, indent 2, sorted keys): existing buckets hold documents like these.
STORED_RUN_RECORD = """{
  "base_snapshot": "20260105T090000Z",
  "error": null,
  "outputs": {
    "cdc": "lake/cdc/clientes/clientes_20260105_130000.parquet",
    "full_load": null,
    "quarantine": null,
    "snapshot": "lake/snapshots/clientes/snapshot=20260105T130000Z/clientes.parquet"
  },
  "refused_reason": null,
  "schema": [
    {
      "name": "idCliente",
      "type": "string"
    },
    {
      "name": "qtdePontos",
      "type": "int64"
    }
  ],
  "schema_changes": [
    {
      "change": "added",
      "column": "qtdePontos",
      "type": "int64"
    }
  ],
  "seconds": 0.05,
  "snapshot": "20260105T130000Z",
  "source_key": "lake/raw/clientes/snapshot=20260105T130000Z/clientes.csv",
  "stats": {
    "deletes": 1,
    "inserts": 2,
    "updates": 3
  },
  "status": "accepted",
  "table": "clientes"
}"""
STORED_REFUSED_RUN_RECORD = """{
  "base_snapshot": "20260105T090000Z",
  "error": "would delete 2 of 3 rows (67%)",
  "outputs": {},
  "refused_reason": "delete_guard",
  "schema": [],
  "schema_changes": [],
  "seconds": 0.05,
  "snapshot": "20260105T130000Z",
  "source_key": "lake/raw/clientes/snapshot=20260105T130000Z/clientes.csv",
  "stats": {},
  "status": "refused",
  "table": "clientes"
}"""
STORED_MANIFEST = """{
  "dataset": "owner/loyalty",
  "format": 1,
  "last_updated": "2026-01-05T08:00:00Z",
  "previous_snapshot": "20260105T090000Z",
  "snapshot": "20260105T130000Z",
  "tables": {
    "clientes": {
      "bytes": 12,
      "content_key": "lake/raw/clientes/snapshot=20260105T090000Z/clientes.csv",
      "content_snapshot": "20260105T090000Z",
      "file": "clientes.csv",
      "key": null,
      "sha256": "ab12",
      "status": "unchanged"
    },
    "produtos": {
      "bytes": 0,
      "content_key": null,
      "content_snapshot": null,
      "file": "produtos.csv",
      "key": null,
      "sha256": null,
      "status": "missing"
    }
  },
  "version": 2
}"""


def _accepted(snap: str, base: str | None = None, table: str = "clientes") -> RunRecord:
    return RunRecord(
        table=table,
        snapshot=snap,
        status="accepted",
        base_snapshot=base,
        source_key=f"lake/raw/{table}/snapshot={snap}/{table}.csv",
        outputs={"snapshot": f"lake/snapshots/{table}/snapshot={snap}/{table}.parquet", "cdc": None},
        stats={"inserts": 2, "updates": 1},
        schema=[{"name": "idCliente", "type": "string"}],
        schema_changes=[{"column": "x", "change": "removed", "type": "int64"}],
        seconds=1.5,
    )


def _refused(snap: str, base: str | None, table: str = "clientes") -> RunRecord:
    return RunRecord(
        table=table,
        snapshot=snap,
        status="refused",
        base_snapshot=base,
        source_key=f"lake/raw/{table}/snapshot={snap}/{table}.csv",
        refused_reason="delete_guard",
        error="would delete 2 of 3 rows",
        seconds=0.25,
    )


def _put(store: S3Store, key: str, body: str) -> None:
    store.client.put_object(Bucket=store.bucket, Key=key, Body=body.encode("utf-8"))


def _manifest() -> Manifest:
    return Manifest(
        snapshot=S2,
        dataset="owner/loyalty",
        version=2,
        last_updated="2026-01-05T08:00:00Z",
        previous_snapshot=S1,
        tables={
            "clientes": ManifestTable(
                file="clientes.csv",
                status="unchanged",
                sha256="ab12",
                bytes=12,
                content_snapshot=S1,
                content_key=f"lake/raw/clientes/snapshot={S1}/clientes.csv",
            ),
            "produtos": ManifestTable(file="produtos.csv", status="missing"),
        },
    )


# -- run records ---------------------------------------------------------------------------------
@pytest.mark.parametrize("record", [_accepted(S2, S1), _refused(S2, S1)], ids=["accepted", "refused"])
def test_a_run_record_reads_back_as_written(store, record):
    # When
    write_run_record(store, record)
    # Then it is stored under its table and snapshot, and reads back equal
    assert store.exists(f"lake/_runs/clientes/snapshot={S2}.json")
    assert read_run_record(store, "clientes", S2) == record


def test_a_run_record_stores_its_seconds_to_the_millisecond(store):
    # Given
    record = _accepted(S1).model_copy(update={"seconds": 1.23456})
    # When
    write_run_record(store, record)
    # Then
    assert json.loads(store.get_bytes(f"lake/_runs/clientes/snapshot={S1}.json"))["seconds"] == 1.235
    assert read_run_record(store, "clientes", S1) == record.model_copy(update={"seconds": 1.235})


def test_a_run_record_stored_before_the_model_reads_back_and_is_written_with_the_same_fields(store):
    # Given a run record as the previous writer stored it
    key = f"lake/_runs/clientes/snapshot={S2}.json"
    _put(store, key, STORED_RUN_RECORD)
    # When it is read, then written again
    record = read_run_record(store, "clientes", S2)
    assert record is not None
    store.delete(key)
    write_run_record(store, record)
    # Then it was read field for field, and the new document holds the same names and values
    assert record.accepted and record.base_snapshot == S1 and record.stats == {"deletes": 1, "inserts": 2, "updates": 3}
    assert record.columns == [{"name": "idCliente", "type": "string"}, {"name": "qtdePontos", "type": "int64"}]
    assert record.schema_changes == [{"change": "added", "column": "qtdePontos", "type": "int64"}]
    assert record.outputs["cdc"] == "lake/cdc/clientes/clientes_20260105_130000.parquet"
    assert record.seconds == 0.05
    assert json.loads(store.get_bytes(key)) == json.loads(STORED_RUN_RECORD)


def test_a_refused_run_record_stored_before_the_model_reads_back_and_is_written_with_the_same_fields(store):
    # Given a refused run record as the previous writer stored it
    key = f"lake/_runs/clientes/snapshot={S2}.json"
    _put(store, key, STORED_REFUSED_RUN_RECORD)
    # When it is read, then written again
    record = read_run_record(store, "clientes", S2)
    assert record is not None
    store.delete(key)
    write_run_record(store, record)
    # Then
    assert record == _refused(S2, S1).model_copy(update={"error": "would delete 2 of 3 rows (67%)", "seconds": 0.05})
    assert not record.accepted
    assert json.loads(store.get_bytes(key)) == json.loads(STORED_REFUSED_RUN_RECORD)


def test_a_missing_run_record_reads_as_none(store):
    assert read_run_record(store, "clientes", S1) is None


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("not json at all", "Invalid JSON"),
        ('{"table": "clientes", "snapshot": "20260105T090000Z", "status": "accepted"}', "source_key"),
        (STORED_RUN_RECORD.replace('"accepted"', '"maybe"'), "status"),
        ('["a", "list"]', "<document>"),
    ],
    ids=["not-json", "missing-field", "unknown-status", "not-an-object"],
)
def test_an_unreadable_run_record_raises_an_error_naming_its_key(store, body, named):
    # Given a foreign or damaged document where a run record belongs
    _put(store, f"lake/_runs/clientes/snapshot={S1}.json", body)
    # When / Then
    with pytest.raises(RecordError) as raised:
        read_run_record(store, "clientes", S1)
    message = str(raised.value)
    assert f"s3://{BUCKET}/lake/_runs/clientes/snapshot={S1}.json is not a readable RunRecord" in message
    assert named in message
    assert isinstance(raised.value, SnapcdcError)


# -- manifests -----------------------------------------------------------------------------------
def test_a_manifest_reads_back_as_written(store):
    # Given
    manifest = _manifest()
    # When
    write_manifest(store, manifest)
    # Then
    assert store.exists(f"lake/raw/_manifests/snapshot={S2}.json")
    assert read_manifest(store, S2) == manifest


def test_a_manifest_stored_before_the_model_reads_back_and_is_written_with_the_same_fields(store):
    # Given a manifest as the previous writer stored it
    key = f"lake/raw/_manifests/snapshot={S2}.json"
    _put(store, key, STORED_MANIFEST)
    # When it is read, then written again
    manifest = read_manifest(store, S2)
    store.delete(key)
    assert manifest is not None
    write_manifest(store, manifest)
    # Then it was read field for field, and the new document holds the same names and values
    assert manifest == _manifest()
    assert json.loads(store.get_bytes(key)) == json.loads(STORED_MANIFEST)


def test_a_missing_manifest_reads_as_none(store):
    assert read_manifest(store, S1) is None


def test_an_unreadable_manifest_raises_an_error_naming_its_key_and_field(store):
    # Given a manifest whose table entry has no file
    _put(store, f"lake/raw/_manifests/snapshot={S1}.json", STORED_MANIFEST.replace('"file": "produtos.csv",', ""))
    # When / Then
    expected = r"lake/raw/_manifests/snapshot=20260105T090000Z\.json is not a readable Manifest: tables\.produtos\.file"
    with pytest.raises(RecordError, match=expected):
        read_manifest(store, S1)


# -- the ledger ----------------------------------------------------------------------------------
def test_processed_snapshots_are_the_tables_run_records_oldest_first(store):
    # Given run records of two tables, written out of order, one refused
    for record in (_accepted(S3, S2), _accepted(S1), _refused(S2, S1), _accepted(S1, table="clientes_old")):
        write_run_record(store, record)
    # When
    processed = processed_snapshots(store, "clientes")
    # Then
    assert processed == [S1, S2, S3]
    assert processed_snapshots(store, "produtos") == []


def test_the_base_is_the_latest_accepted_snapshot_before(store):
    # Given S1 accepted, S2 refused, S3 accepted on S1
    for record in (_accepted(S1), _refused(S2, S1), _accepted(S3, S1)):
        write_run_record(store, record)
    processed = [S1, S2, S3]
    # When / Then a refused snapshot is never a base
    assert base_record(store, "clientes", S3, processed) == _accepted(S1)
    assert base_record(store, "clientes", S4, processed) == _accepted(S3, S1)
    # and the first snapshot has none
    assert base_record(store, "clientes", S1, processed) is None


def test_the_base_is_chosen_among_the_snapshots_given(store):
    # Given S1 and S2 accepted
    write_run_record(store, _accepted(S1))
    write_run_record(store, _accepted(S2, S1))
    # When S2 is left out (as replay does while recomputing it)
    base = base_record(store, "clientes", S3, [S1])
    # Then
    assert base == _accepted(S1)
