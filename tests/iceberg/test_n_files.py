"""The Iceberg tables built from a lake whose outputs are N files (docs/design.md, "An output is N files"):
catching up and rebuilding read each accepted snapshot's state and change set as all of its parts."""

from __future__ import annotations

from pathlib import Path

from snapcdc.cdc.iceberg.commit import committed_snapshots
from snapcdc.cdc.stage import TableProcessor
from snapcdc.config import TableConfig
from snapcdc.lake.snapshot import Snapshot
from snapcdc.ops.verify import verify_table

from tests.iceberg.conftest import sorted_rows
from tests.parts import split_run
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
V1 = [["a", 10, "um"], ["b", 20, "dois"], ["c", 30, "três"], ["e", 50, "cinco"]]
V2 = [["a", 11, "um"], ["b", 20, "dois"], ["d", 40, "quatro"], ["e", 50, "cinco"]]
V3 = [["a", 11, "um"], ["b", 25, "dois"], ["d", 40, "quatro"], ["e", 51, "cinco"]]


def _processor(lake, tmp_path: Path, table: TableConfig = TABLE) -> TableProcessor:
    return TableProcessor(lake.store, table, work_dir=tmp_path / "work", iceberg=lake)


def _split_lake(lake, tmp_path: Path, iceberg: bool) -> None:
    """S1 and S2 processed, each run's outputs then split into three parts."""
    table = TABLE.model_copy(update={"iceberg": iceberg})
    for snap, rows in ((S1, V1), (S2, V2)):
        put_raw(lake.store, TABLE, snap, csv_bytes(COLUMNS, rows))
        _processor(lake, tmp_path, table).process(Snapshot.parse(snap))
        split_run(lake.store, TABLE.name, snap)


def _state(lake) -> list[tuple[str, int]]:
    table = lake.catalog.load_table(lake.identifier("clientes"))
    return [(r["idcliente"], r["qtdepontos"]) for r in sorted_rows(table.scan().to_arrow(), key="idcliente")]


def test_catching_up_reads_the_earlier_snapshots_as_their_parts(lake, tmp_path):
    # Given two snapshots processed without Iceberg, their outputs three parts each
    _split_lake(lake, tmp_path, iceberg=False)
    assert not lake.store.exists(lake.store.layout.snapshot_key("clientes", S2))
    # When the third comes with Iceberg on
    put_raw(lake.store, TABLE, S3, csv_bytes(COLUMNS, V3))
    _processor(lake, tmp_path).process(Snapshot.parse(S3))
    # Then S1 and S2 were committed first from their parts, and the tables verify
    for name in ("clientes", "clientes_changes"):
        assert list(committed_snapshots(lake.catalog.load_table(lake.identifier(name)))) == [S1, S2, S3]
    assert _state(lake) == [("a", 11), ("b", 25), ("d", 40), ("e", 51)]
    result = verify_table(lake.store, TABLE, lake)
    assert result.ok and "iceberg OK" in result.message, result.line()


def test_a_rebuild_reads_every_snapshot_as_its_parts(lake, tmp_path):
    # Given two snapshots committed, then their outputs split into three parts
    _split_lake(lake, tmp_path, iceberg=True)
    # When the tables are rebuilt from the lake
    lake.rebuild("clientes", tmp_path)
    # Then each accepted snapshot is committed once, from all of its parts
    table = lake.catalog.load_table(lake.identifier("clientes"))
    assert list(committed_snapshots(table)) == [S1, S2]
    assert _state(lake) == [("a", 11), ("b", 20), ("d", 40), ("e", 50)]
    changes = lake.catalog.load_table(lake.identifier("clientes_changes")).scan().to_arrow()
    assert changes.num_rows == len(V1) + 3  # the full load's inserts, then a updated, c deleted, d inserted
    result = verify_table(lake.store, TABLE, lake)
    assert result.ok and "iceberg OK" in result.message, result.line()
