"""The catalog follows the data: the CDC stage syncs a table's Glue tables with moto's Glue and S3 (in-process)."""

from __future__ import annotations

from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto import mock_aws
from snapcdc.cdc.catalog import CatalogError, GlueCatalog
from snapcdc.cdc.stage import TableProcessor
from snapcdc.cli import main
from snapcdc.config import TableConfig
from snapcdc.lake.layout import Layout
from snapcdc.lake.ledger import read_run_record
from snapcdc.lake.snapshot import Snapshot
from snapcdc.lake.store import S3Store

from tests.support import BUCKET, csv_bytes, put_raw

DATABASE = "snapcdc"
TABLE = TableConfig(
    name="clientes",
    file="clientes.csv",
    delimiter=";",
    primary_key=("idCliente",),
    date_field="DtAtualizacao",
    column_types={"qtdePontos": "int64", "DtAtualizacao": "timestamp"},
)
GLUE_TABLES = ("clientes_cdc", "clientes_full_load", "clientes_snapshots")
COLUMNS = ["idCliente", "qtdePontos", "DtAtualizacao", "vlSaldo", "DtNascimento", "codLoja"]
V1 = [
    ["a", 10, "2026-01-01 10:00:00.000", "1.5", "1990-05-01", "7"],
    ["b", 20, "2026-01-01 10:00:00.000", "2.25", "1985-11-30", "8"],
    ["c", 30, "2026-01-01 10:00:00.000", "0.5", "2001-01-02", "9"],
]
V2 = [["a", 11, "2026-01-05 12:00:00.000", "1.5", "1990-05-01", "7"], *V1[1:]]
# The types the engine infers for the columns column_types does not declare (and the declared ones).
INFERRED = {
    "idcliente": "string",
    "qtdepontos": "bigint",
    "dtatualizacao": "timestamp",
    "vlsaldo": "double",
    "dtnascimento": "date",
    "codloja": "bigint",
}
S1, S2, S3 = "20260105T090000Z", "20260105T130000Z", "20260105T170000Z"


class RecordingGlue:
    """A Glue client that records the name of every call it passes on (a fake wrapper, not a mock)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(**kwargs: Any) -> Any:
            self.calls.append(name)
            return method(**kwargs)

        return call


@pytest.fixture
def aws():
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        glue = boto3.client("glue", region_name="us-east-1")
        glue.create_database(DatabaseInput={"Name": DATABASE})
        yield S3Store(s3, BUCKET, Layout("lake")), glue


@pytest.fixture
def store(aws):
    return aws[0]


@pytest.fixture
def glue(aws):
    return RecordingGlue(aws[1])


def _processor(store, glue, tmp_path, table=TABLE):
    catalog = GlueCatalog(glue, DATABASE, BUCKET, store.layout)
    return TableProcessor(store, table, work_dir=tmp_path / "work", catalog=catalog)


def _table(glue, name) -> dict[str, Any]:
    table: dict[str, Any] = glue._client.get_table(DatabaseName=DATABASE, Name=name)["Table"]
    return table


def _types(glue, name) -> dict[str, str]:
    return {c["Name"]: c["Type"] for c in _table(glue, name)["StorageDescriptor"]["Columns"]}


def _put(store, snap, columns, rows):
    put_raw(store, TABLE, snap, csv_bytes(columns, rows))


def test_a_first_accepted_snapshot_creates_the_three_tables_with_the_inferred_types(store, glue, tmp_path):
    # Given a first snapshot whose columns are partly undeclared in column_types
    _put(store, S1, COLUMNS, V1)
    # When it is processed
    [record] = _processor(store, glue, tmp_path).process(Snapshot.parse(S1))
    # Then the three Glue tables exist, typed as the engine wrote the Parquet (names lower-cased by Glue)
    assert _types(glue, "clientes_full_load") == INFERRED
    assert _types(glue, "clientes_snapshots") == INFERRED
    assert _types(glue, "clientes_cdc") == {**INFERRED, "_cdc_operation": "string", "_cdc_timestamp": "timestamp"}
    assert list(_types(glue, "clientes_cdc"))[-2:] == ["_cdc_operation", "_cdc_timestamp"]
    # And the run record lists them as created, every column added
    assert [(c.table, c.action) for c in record.catalog_changes] == [(t, "created") for t in GLUE_TABLES]
    assert record.catalog_changes[1].columns[3] == {"column": "vlsaldo", "change": "added", "type": "double"}
    stored = read_run_record(store, "clientes", S1)
    assert stored is not None and stored.catalog_changes == record.catalog_changes


def test_the_created_tables_keep_what_the_synth_time_tables_had(store, glue, tmp_path):
    # Given
    _put(store, S1, COLUMNS, V1)
    # When
    _processor(store, glue, tmp_path).process(Snapshot.parse(S1))
    # Then: Parquet SerDe over the table's prefix, classification, descriptions, key comments
    cdc, full_load, snapshots = (_table(glue, name) for name in GLUE_TABLES)
    base = f"s3://{BUCKET}/lake"
    assert cdc["StorageDescriptor"]["Location"] == f"{base}/cdc/clientes/"
    assert full_load["StorageDescriptor"]["Location"] == f"{base}/full-load/clientes/"
    assert snapshots["StorageDescriptor"]["Location"] == f"{base}/snapshots/clientes/"
    for table in (cdc, full_load, snapshots):
        descriptor = table["StorageDescriptor"]
        assert descriptor["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
        assert descriptor["InputFormat"].endswith("MapredParquetInputFormat")
        assert table["TableType"] == "EXTERNAL_TABLE"
        assert table["Parameters"]["classification"] == "parquet"
        assert table["Description"]
        assert descriptor["Columns"][0] == {"Name": "idcliente", "Type": "string", "Comment": "primary key"}
        assert all("Comment" not in c for c in descriptor["Columns"][1:6])
    # And the snapshots table is partitioned by snapshot with injected projection (as Athena queries expect)
    assert snapshots["PartitionKeys"] == [{"Name": "snapshot", "Type": "string"}]
    assert snapshots["Parameters"]["projection.enabled"] == "true"
    assert snapshots["Parameters"]["projection.snapshot.type"] == "injected"
    assert snapshots["Parameters"]["storage.location.template"] == f"{base}/snapshots/clientes/snapshot=${{snapshot}}/"
    assert not cdc.get("PartitionKeys") and not full_load.get("PartitionKeys")


def test_a_column_added_to_the_data_is_appended_to_all_three_tables(store, glue, tmp_path):
    # Given a first snapshot processed, then one with a new column
    _put(store, S1, COLUMNS, V1)
    _put(store, S2, [*COLUMNS, "DescCanal"], [[*row, "app"] for row in V2])
    processor = _processor(store, glue, tmp_path)
    processor.process(Snapshot.parse(S1))
    # When
    [record] = processor.process(Snapshot.parse(S2))
    # Then the column is appended last in every table (before the _cdc columns), the other types unchanged
    assert _types(glue, "clientes_full_load") == {**INFERRED, "desccanal": "string"}
    assert _types(glue, "clientes_snapshots") == {**INFERRED, "desccanal": "string"}
    assert list(_types(glue, "clientes_cdc")) == [*INFERRED, "desccanal", "_cdc_operation", "_cdc_timestamp"]
    # And the run record lists the three updates
    added = [{"column": "desccanal", "change": "added", "type": "string"}]
    assert [(c.table, c.action, c.columns) for c in record.catalog_changes] == [
        (t, "updated", added) for t in GLUE_TABLES
    ]


def test_an_unchanged_schema_costs_one_get_table_per_glue_table_and_no_update(store, glue, tmp_path):
    # Given a first snapshot processed, and a second with the same columns and types
    _put(store, S1, COLUMNS, V1)
    _put(store, S2, COLUMNS, V2)
    processor = _processor(store, glue, tmp_path)
    processor.process(Snapshot.parse(S1))
    versions = {name: _table(glue, name)["VersionId"] for name in GLUE_TABLES}
    glue.calls.clear()
    # When
    [record] = processor.process(Snapshot.parse(S2))
    # Then
    assert glue.calls == ["get_table"] * 3
    assert {name: _table(glue, name)["VersionId"] for name in GLUE_TABLES} == versions
    assert record.catalog_changes == []


def test_a_widened_column_updates_its_type(store, glue, tmp_path):
    # Given codLoja, inferred int64 at first, holds text in the next snapshot (the engine widens it)
    _put(store, S1, COLUMNS, V1)
    _put(store, S2, COLUMNS, [[*row[:5], "loja-7"] for row in V2])
    processor = _processor(store, glue, tmp_path)
    processor.process(Snapshot.parse(S1))
    # When
    [record] = processor.process(Snapshot.parse(S2))
    # Then every table says string, as the Parquet files from now on do
    for name in GLUE_TABLES:
        assert _types(glue, name)["codloja"] == "string", name
    assert record.catalog_changes[0].columns == [
        {"column": "codloja", "change": "retyped", "from": "bigint", "to": "string"}
    ]
    assert [c["column"] for c in record.schema_changes] == ["codLoja"]


def test_a_refused_snapshot_leaves_the_catalog_alone(store, glue, tmp_path):
    # Given a first snapshot processed, then one that deletes two of three rows and adds a column
    _put(store, S1, COLUMNS, V1)
    _put(store, S2, [*COLUMNS, "DescCanal"], [[*V1[0], "app"]])
    processor = _processor(store, glue, tmp_path)
    processor.process(Snapshot.parse(S1))
    before = {name: _table(glue, name)["VersionId"] for name in GLUE_TABLES}
    glue.calls.clear()
    # When the delete guard refuses it
    [record] = processor.process(Snapshot.parse(S2))
    # Then no Glue call was made and the tables are as they were
    assert record.refused_reason == "delete_guard"
    assert glue.calls == []
    assert {name: _table(glue, name)["VersionId"] for name in GLUE_TABLES} == before
    assert "desccanal" not in _types(glue, "clientes_cdc")
    assert record.catalog_changes == []


def test_columns_colliding_when_lower_cased_are_an_error_naming_both(store, glue, tmp_path):
    # Given a snapshot with two columns that Glue would store under one name
    _put(store, S1, ["idCliente", "qtdePontos", "QtdePontos"], [["a", 1, 2], ["b", 3, 4]])
    # When / Then the sync fails naming both, before the run record (so the snapshot is not done)
    with pytest.raises(CatalogError, match=r"'qtdePontos' and 'QtdePontos'.*'qtdepontos'"):
        _processor(store, glue, tmp_path).process(Snapshot.parse(S1))
    assert glue.calls == []
    assert read_run_record(store, "clientes", S1) is None


class RacingGlue(RecordingGlue):
    """GetTable answers "not found" once per table, as if another run created it just after."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self._hidden: set[str] = set()

    def get_table(self, **kwargs: Any) -> Any:
        self.calls.append("get_table")
        if kwargs["Name"] not in self._hidden:
            self._hidden.add(kwargs["Name"])
            raise self._client.exceptions.EntityNotFoundException(
                {"Error": {"Code": "EntityNotFoundException", "Message": "not found"}}, "GetTable"
            )
        return self._client.get_table(**kwargs)


def test_a_table_created_by_a_concurrent_run_is_compared_not_overwritten(store, glue, tmp_path):
    # Given the Glue tables created by another run between this run's GetTable and CreateTable
    _put(store, S1, COLUMNS, V1)
    _processor(store, glue, tmp_path).process(Snapshot.parse(S1))
    snapshot = pq.read_schema(pa.BufferReader(store.get_bytes(store.layout.snapshot_key("clientes", S1))))
    schema = pa.schema([f for f in snapshot if f.name not in ("_key_hash", "_row_hash")])
    racing = RacingGlue(glue._client)
    # When this run syncs the same schema
    sync = GlueCatalog(racing, DATABASE, BUCKET, store.layout).sync_table("clientes", schema, TABLE.primary_key)
    # Then its CreateTable failed, it compared with the table found and changed nothing
    assert racing.calls == ["get_table", "create_table", "get_table"] * 3
    assert sync.changes == ()


def test_cli_replay_with_a_glue_database_syncs_the_tables(store, glue, tmp_path, capsys):
    # Given a raw snapshot in the bucket and no Glue table yet
    _put(store, S1, COLUMNS, V1)
    # When the operator replays it with --glue-database
    code = main(["replay", "--bucket", BUCKET, "--prefix", "lake", "--table", "clientes", "--glue-database", DATABASE])
    # Then the table's Glue tables exist, typed as the Parquet it wrote
    assert code == 0
    assert capsys.readouterr().out.count('"status": "accepted"') == 1
    assert _types(glue, "clientes_full_load")["idcliente"] == "string"
