"""The CDC stage keeps the Iceberg tables: each accepted snapshot committed before its run record,
verify checks them against the ledger and the newest snapshot, replay rebuilds them."""

from __future__ import annotations

from pathlib import Path

from snapcdc.cdc.iceberg.commit import committed_snapshots
from snapcdc.cdc.stage import TableProcessor
from snapcdc.config import TableConfig
from snapcdc.lake.ledger import read_run_record
from snapcdc.lake.snapshot import Snapshot
from snapcdc.ops.replay import replay
from snapcdc.ops.verify import verify_table

from tests.iceberg.conftest import sorted_rows
from tests.support import csv_bytes, put_raw

TABLE = TableConfig(
    name="clientes",
    file="clientes.csv",
    delimiter=";",
    primary_key=("idCliente",),
    column_types={"idCliente": "string", "qtdePontos": "int64"},
    iceberg=True,
)
COLUMNS = ["idCliente", "qtdePontos", "Descrição"]
S1, S2, S3 = "20260105T090000Z", "20260105T130000Z", "20260105T170000Z"
V1 = [["a", 10, "um"], ["b", 20, "dois"], ["c", 30, "três"]]
V2 = [["a", 11, "um"], ["b", 20, "dois"], ["d", 40, "quatro"]]
V3 = [["a", 11, "um"], ["b", 25, "dois"], ["d", 40, "quatro"]]


def _processor(lake, tmp_path: Path, table: TableConfig = TABLE) -> TableProcessor:
    return TableProcessor(lake.store, table, work_dir=tmp_path / "work", iceberg=lake)


def test_the_stage_commits_each_accepted_snapshot_and_verify_checks_the_tables(lake, tmp_path):
    # Given
    for snap, rows in ((S1, V1), (S2, V2), (S3, V3)):
        put_raw(lake.store, TABLE, snap, csv_bytes(COLUMNS, rows))
    # When
    records = _processor(lake, tmp_path).process(Snapshot.parse(S3))
    # Then
    assert [r.snapshot for r in records] == [S1, S2, S3]
    table = lake.catalog.load_table(lake.identifier("clientes"))
    assert list(committed_snapshots(table)) == [S1, S2, S3]
    assert [f.name for f in table.schema().fields] == ["idcliente", "qtdepontos", "descricao"]
    assert table.schema().find_field("descricao").doc == "Descrição"
    state = sorted_rows(table.scan().to_arrow(), key="idcliente")
    assert [(r["idcliente"], r["qtdepontos"]) for r in state] == [("a", 11), ("b", 25), ("d", 40)]
    result = verify_table(lake.store, TABLE, lake)
    assert result.ok and "iceberg OK" in result.message, result.line()


def test_verify_fails_when_a_commit_names_no_accepted_run(lake, tmp_path):
    # Given: two snapshots committed, the second's run record then lost with its raw object and every
    # file it listed (a snapshot file left behind would fail verify first, as a file no record lists)
    for snap, rows in ((S1, V1), (S2, V2)):
        put_raw(lake.store, TABLE, snap, csv_bytes(COLUMNS, rows))
    _processor(lake, tmp_path).process(Snapshot.parse(S2))
    lost = read_run_record(lake.store, "clientes", S2)
    assert lost is not None
    for key in [*lost.all_keys(), lake.store.layout.run_record_key("clientes", S2)]:
        lake.store.delete(key)
    lake.store.delete(lake.store.layout.raw_key("clientes", S2, TABLE.file))
    # When
    result = verify_table(lake.store, TABLE, lake)
    # Then
    assert not result.ok and f"no accepted run record: ['{S2}']" in result.message


def test_a_table_that_turns_iceberg_on_later_is_caught_up_and_replay_rebuilds_it(lake, tmp_path):
    # Given: two snapshots processed without Iceberg
    for snap, rows in ((S1, V1), (S2, V2), (S3, V3)):
        put_raw(lake.store, TABLE, snap, csv_bytes(COLUMNS, rows))
    _processor(lake, tmp_path, TABLE.model_copy(update={"iceberg": False})).process(Snapshot.parse(S2))
    # When: the third comes with Iceberg on
    _processor(lake, tmp_path).process(Snapshot.parse(S3))
    # Then: the earlier accepted snapshots were committed first, in order
    for name in ("clientes", "clientes_changes"):
        assert list(committed_snapshots(lake.catalog.load_table(lake.identifier(name)))) == [S1, S2, S3]
    assert verify_table(lake.store, TABLE, lake).ok
    # When: a replay
    replay(_processor(lake, tmp_path))
    # Then: the tables were rebuilt from the snapshots, one commit each, and still verify
    table = lake.catalog.load_table(lake.identifier("clientes"))
    assert list(committed_snapshots(table)) == [S1, S2, S3] and len(table.snapshots()) == 3
    assert read_run_record(lake.store, "clientes", S3) is not None
    assert verify_table(lake.store, TABLE, lake).ok
