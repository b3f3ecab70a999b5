"""The CDC orchestration against S3 (moto in-process): bases, catch-up, refusals, replay, verify."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from snapcdc.cdc.batch import process_raw_keys
from snapcdc.cdc.stage import TableProcessor
from snapcdc.config import TableConfig
from snapcdc.lake.snapshot import Snapshot
from snapcdc.ops.replay import replay
from snapcdc.ops.verify import verify_table

from tests.support import csv_bytes, object_versions, put_raw

TABLE = TableConfig(
    name="clientes",
    file="clientes.csv",
    delimiter=";",
    primary_key=("idCliente",),
    date_field="DtAtualizacao",
    column_types={"qtdePontos": "int64", "DtAtualizacao": "timestamp"},
)
COLUMNS = ["idCliente", "qtdePontos", "DtAtualizacao"]
S1, S2, S3, S4 = "20260105T090000Z", "20260105T130000Z", "20260105T170000Z", "20260105T210000Z"

V1 = [["a", 10, "2026-01-01 10:00:00.000"], ["b", 20, "2026-01-01 10:00:00.000"], ["c", 30, "2026-01-01 10:00:00.000"]]
V2 = [["a", 11, "2026-01-05 12:00:00.000"], ["b", 20, "2026-01-01 10:00:00.000"], ["d", 40, "2026-01-05 12:00:00.000"]]
V3 = [["a", 11, "2026-01-05 12:00:00.000"], ["b", 25, "2026-01-01 10:00:00.000"], ["d", 40, "2026-01-05 12:00:00.000"]]


def _processor(store, tmp_path, table=TABLE):
    return TableProcessor(store, table, work_dir=tmp_path / "work")


def _read(store, key):
    return pq.read_table(pa.BufferReader(store.get_bytes(key)))


def test_first_snapshot_is_a_full_load_and_the_second_a_change_set(store, tmp_path):
    # Given
    put_raw(store, TABLE, S1, csv_bytes(COLUMNS, V1))
    put_raw(store, TABLE, S2, csv_bytes(COLUMNS, V2))
    processor = _processor(store, tmp_path)
    # When
    [first] = processor.process(Snapshot.parse(S1))
    [second] = processor.process(Snapshot.parse(S2))
    # Then
    assert first.accepted and first.base_snapshot is None
    assert first.outputs["full_load"] == "lake/full-load/clientes/clientes.parquet"
    assert _read(store, first.outputs["full_load"]).num_rows == 3
    assert second.base_snapshot == S1
    changes = _read(store, "lake/cdc/clientes/clientes_20260105_130000.parquet")
    ops = dict(zip(changes["idCliente"].to_pylist(), changes["_cdc_operation"].to_pylist(), strict=True))
    assert ops == {"a": "U", "c": "D", "d": "I"}
    assert second.stats["inserts"] == 1 and second.stats["updates"] == 1 and second.stats["deletes"] == 1
    assert verify_table(store, TABLE).ok


def test_an_update_without_a_date_bump_is_still_an_update_and_is_counted(store, tmp_path):
    # Given: b's points change but its DtAtualizacao does not
    for snap, rows in ((S1, V1), (S2, V2), (S3, V3)):
        put_raw(store, TABLE, snap, csv_bytes(COLUMNS, rows))
    # When
    records = _processor(store, tmp_path).process(Snapshot.parse(S3))
    # Then
    assert records[-1].stats["updates"] == 1
    assert records[-1].stats["updates_without_date_bump"] == 1


def test_reprocessing_a_snapshot_changes_nothing(store, tmp_path):
    # Given
    put_raw(store, TABLE, S1, csv_bytes(COLUMNS, V1))
    put_raw(store, TABLE, S2, csv_bytes(COLUMNS, V2))
    processor = _processor(store, tmp_path)
    processor.process(Snapshot.parse(S2))
    before = object_versions(store)
    # When the same object is delivered again
    again = processor.process(Snapshot.parse(S2))
    # Then
    assert again == []
    assert object_versions(store) == before


def test_out_of_order_events_catch_up_earlier_snapshots_first(store, tmp_path):
    # Given three snapshots, the newest delivered first
    for snap, rows in ((S1, V1), (S2, V2), (S3, V3)):
        put_raw(store, TABLE, snap, csv_bytes(COLUMNS, rows))
    # When
    records = _processor(store, tmp_path).process(Snapshot.parse(S3))
    # Then
    assert [(r.snapshot, r.base_snapshot) for r in records] == [(S1, None), (S2, S1), (S3, S2)]
    assert _processor(store, tmp_path).process(Snapshot.parse(S1)) == []
    assert verify_table(store, TABLE).ok


def test_a_mass_delete_is_refused_and_the_next_snapshot_diffs_against_the_last_accepted(store, tmp_path):
    # Given: S2 loses two of three rows (67% > 50%), S3 is back to normal
    put_raw(store, TABLE, S1, csv_bytes(COLUMNS, V1))
    put_raw(store, TABLE, S2, csv_bytes(COLUMNS, V1[:1]))
    put_raw(store, TABLE, S3, csv_bytes(COLUMNS, V2))
    processor = _processor(store, tmp_path)
    # When
    records = processor.process(Snapshot.parse(S3))
    # Then
    refused = records[1]
    assert refused.status == "refused" and refused.refused_reason == "delete_guard"
    assert not store.exists("lake/cdc/clientes/clientes_20260105_130000.parquet")
    assert records[2].base_snapshot == S1
    assert verify_table(store, TABLE).ok


def test_replay_with_mass_delete_allowed_accepts_the_refused_snapshot(store, tmp_path):
    # Given a refused mass delete followed by a normal snapshot
    put_raw(store, TABLE, S1, csv_bytes(COLUMNS, V1))
    put_raw(store, TABLE, S2, csv_bytes(COLUMNS, V1[:1]))
    put_raw(store, TABLE, S3, csv_bytes(COLUMNS, V2))
    _processor(store, tmp_path).process(Snapshot.parse(S3))
    allowed = TABLE.model_copy(update={"allow_mass_delete": True})
    # When the operator allows it and replays from the refused snapshot
    records = replay(_processor(store, tmp_path, allowed), Snapshot.parse(S2))
    # Then S2 is accepted and S3 is now based on it; the change stream still verifies
    assert [(r.snapshot, r.status, r.base_snapshot) for r in records] == [(S2, "accepted", S1), (S3, "accepted", S2)]
    assert store.exists("lake/cdc/clientes/clientes_20260105_130000.parquet")
    assert verify_table(store, allowed).ok


def test_replay_is_idempotent(store, tmp_path):
    # Given
    for snap, rows in ((S1, V1), (S2, V2), (S3, V3)):
        put_raw(store, TABLE, snap, csv_bytes(COLUMNS, rows))
    processor = _processor(store, tmp_path)
    processor.process(Snapshot.parse(S3))
    data_before = {k: v for k, v in object_versions(store).items() if "/_runs/" not in k}
    # When
    replay(processor)
    replay(processor, Snapshot.parse(S2), Snapshot.parse(S2))
    # Then
    assert {k: v for k, v in object_versions(store).items() if "/_runs/" not in k} == data_before
    assert verify_table(store, TABLE).ok


def test_a_malformed_file_is_refused_with_file_and_line_and_other_tables_go_on(store, tmp_path):
    # Given a clientes file with a short row on line 3, and a healthy produtos table
    produtos = TableConfig(name="produtos", file="produtos.csv", delimiter=";", primary_key=("IdProduto",))
    bad = b"idCliente;qtdePontos;DtAtualizacao\na;1;2026-01-01 10:00:00.000\nb;2\n"
    keys = [
        put_raw(store, TABLE, S1, bad),
        put_raw(store, produtos, S1, csv_bytes(["IdProduto", "DescNomeProduto"], [["1", "Café"]])),
    ]
    config = _config(TABLE, produtos)
    # When
    report = process_raw_keys(store, config, keys, work_dir=tmp_path / "work")
    # Then
    by_table = {r.table: r for r in report.records}
    assert by_table["clientes"].status == "refused"
    assert by_table["clientes"].refused_reason == "malformed_input"
    assert "clientes.csv" in by_table["clientes"].error and "line 3" in by_table["clientes"].error
    assert by_table["produtos"].accepted
    assert report.failures == {}


def test_keys_outside_the_layout_or_config_are_ignored(store, tmp_path):
    report = process_raw_keys(
        store,
        _config(TABLE),
        ["lake/raw/_manifests/snapshot=20260105T090000Z.json", "lake/raw/other/snapshot=20260105T090000Z/o.csv"],
    )
    assert report.records == [] and len(report.ignored_keys) == 2


def test_quarantined_rows_are_written_beside_the_run(store, tmp_path):
    # Given a duplicated key and an empty key
    rows = [*V1, ["a", 99, "2026-01-02 10:00:00.000"], ["", 5, "2026-01-02 10:00:00.000"]]
    put_raw(store, TABLE, S1, csv_bytes(COLUMNS, rows))
    # When
    [record] = _processor(store, tmp_path).process(Snapshot.parse(S1))
    # Then
    assert record.stats["quarantined"] == 3
    quarantine = _read(store, record.outputs["quarantine"])
    assert quarantine.num_rows == 3 and "_quarantine_reason" in quarantine.column_names
    assert sorted(_read(store, record.outputs["full_load"])["idCliente"].to_pylist()) == ["b", "c"]


def _config(*tables):
    from snapcdc.config import PipelineConfig

    return PipelineConfig(dataset="o/d", tables=tables)
