"""The change feeds through the CDC stage (moto in-process): changelog with pre-images, SCD2 history,
DMS layout; verify checks each, replay rebuilds them."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from snapcdc.cdc import feeds
from snapcdc.cdc.stage import TableProcessor
from snapcdc.config import TableConfig
from snapcdc.lake.layout import snapshot_time
from snapcdc.lake.ledger import read_run_record
from snapcdc.lake.snapshot import Snapshot
from snapcdc.ops.replay import replay
from snapcdc.ops.verify import scd2_history, verify_table

from tests.support import csv_bytes, put_raw

COLUMNS = ["idCliente", "qtdePontos", "nome", "DtAtualizacao"]
BASE = {
    "name": "clientes",
    "file": "clientes.csv",
    "delimiter": ";",
    "primary_key": ("idCliente",),
    "date_field": "DtAtualizacao",
    "column_types": {"qtdePontos": "int64", "DtAtualizacao": "timestamp"},
}
ALL = TableConfig.model_validate({**BASE, "outputs": {"changelog": True, "scd2": True, "dms": True}})
S1, S2, S3, S4 = "20260105T090000Z", "20260105T130000Z", "20260105T170000Z", "20260105T210000Z"
T1, T2 = "2026-01-01 10:00:00", "2026-01-05 12:00:00"
V1 = [["a", 10, "Ana", T1], ["b", 20, "Bia", T1], ["c", 30, "Caio", T1]]
V2 = [["a", 11, "Ana", T2], ["b", 20, "Bia", T1], ["d", 40, "Davi", T2]]  # a updated, c deleted, d inserted
V3 = [["a", 11, "Ana M", T2], ["b", 25, "Bia", T1], ["c", 31, "Caio", T2], ["d", 40, "Davi", T2]]  # c is back
V4 = [["a", 11, "Ana M", T2], ["b", 25, "Bia", T1], ["c", 31, "Caio", T2]]  # d deleted


def _read(store, key):
    return pq.read_table(pa.BufferReader(store.get_bytes(key)))


def _run(store, tmp_path, table=ALL, versions=(V1, V2, V3, V4), snaps=(S1, S2, S3, S4)):
    processor = TableProcessor(store, table, work_dir=tmp_path / "work")
    for snap, rows in zip(snaps, versions, strict=False):
        put_raw(store, table, snap, csv_bytes(COLUMNS, rows))
        processor.process(Snapshot.parse(snap))
    return processor


def test_each_feed_is_written_beside_cdc_and_verify_checks_it(store, tmp_path):
    _run(store, tmp_path)
    layout = store.layout
    keys = set(store.list_keys("lake/"))
    assert layout.changelog_key("clientes", S2) in keys
    assert "lake/dms/clientes/LOAD00000001.parquet" in keys
    assert "lake/dms/clientes/20260105-130000000.parquet" in keys
    assert layout.scd2_current_key("clientes") in keys
    [result] = [verify_table(store, ALL)]
    assert result.ok, result.message
    assert "changelog OK" in result.message and "scd2 OK" in result.message and "dms OK" in result.message
    records = [read_run_record(store, "clientes", s) for s in (S1, S2, S3, S4)]
    assert [r.commit_version for r in records] == [1, 2, 3, 4]


def test_the_changelog_carries_pre_images_and_commit_versions(store, tmp_path):
    _run(store, tmp_path)
    rows = _read(store, store.layout.changelog_key("clientes", S2)).to_pylist()
    kinds = [(r[feeds.CHANGE_TYPE], r["idCliente"], r["qtdePontos"]) for r in rows]
    assert kinds == [
        ("insert", "d", 40),
        ("delete", "c", 30),
        ("update_preimage", "a", 10),
        ("update_postimage", "a", 11),
    ]
    assert {r[feeds.COMMIT_VERSION] for r in rows} == {2}
    assert {r[feeds.COMMIT_TIMESTAMP] for r in rows} == {snapshot_time(S2)}


def test_scd2_versions_close_and_reopen(store, tmp_path):
    _run(store, tmp_path)
    history = scd2_history(store, "clientes").to_pylist()
    c = sorted((r["valid_from"], r["valid_to"], r["is_current"]) for r in history if r["idCliente"] == "c")
    t1, t2, t3 = snapshot_time(S1), snapshot_time(S2), snapshot_time(S3)
    assert c == [(t1, t2, False), (t3, None, True)]  # closed at its delete, a new version when it came back
    d = [(r["valid_from"], r["valid_to"]) for r in history if r["idCliente"] == "d"]
    assert d == [(t2, snapshot_time(S4))]


def test_dms_files_put_op_first_and_the_timestamp_as_dms_writes_it(store, tmp_path):
    _run(store, tmp_path)
    load = _read(store, "lake/dms/clientes/LOAD00000001.parquet")
    assert load.column_names[:2] == ["Op", "dms_timestamp"]
    assert set(load["Op"].to_pylist()) == {"I"}
    assert set(load["dms_timestamp"].to_pylist()) == {"2026-01-05 09:00:00.000000"}
    change = _read(store, "lake/dms/clientes/20260105-130000000.parquet")
    assert sorted(zip(change["Op"].to_pylist(), change["idCliente"].to_pylist(), strict=True)) == [
        ("D", "c"),
        ("I", "d"),
        ("U", "a"),
    ]


def test_track_history_columns_update_the_current_version_in_place(store, tmp_path):
    table = TableConfig.model_validate({**BASE, "outputs": {"scd2": {"track_history_columns": ["nome"]}}})
    _run(store, tmp_path, table)
    history = scd2_history(store, "clientes").to_pylist()
    a = sorted((r["valid_from"], r["valid_to"], r["qtdePontos"], r["nome"]) for r in history if r["idCliente"] == "a")
    # qtdePontos 10 -> 11 at S2 (not tracked): in place; nome at S3 (tracked): a new version
    assert a == [(snapshot_time(S1), snapshot_time(S3), 11, "Ana"), (snapshot_time(S3), None, 11, "Ana M")]
    assert verify_table(store, table).ok


def test_default_table_writes_no_feed(store, tmp_path):
    _run(store, tmp_path, TableConfig.model_validate(BASE))
    keys = list(store.list_keys("lake/"))
    assert not [k for k in keys if k.split("/")[1] in {"changelog", "scd2", "dms"}]


def test_verify_finds_a_tampered_scd2_history(store, tmp_path):
    _run(store, tmp_path)
    key = store.layout.scd2_closed_key("clientes", S2)
    closed = _read(store, key)
    store.put_bytes(key, _parquet(closed.slice(0, 1)))  # a closed version lost
    result = verify_table(store, ALL)
    assert not result.ok and "scd2" in result.message


def _parquet(table):
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def test_replay_rebuilds_every_feed_to_the_same_objects(store, tmp_path):
    processor = _run(store, tmp_path)
    before = {
        k: store.get_bytes(k) for k in store.list_keys("lake/") if k.split("/")[1] in {"changelog", "scd2", "dms"}
    }
    replay(processor, Snapshot.parse(S2))
    after = {k: store.get_bytes(k) for k in store.list_keys("lake/") if k.split("/")[1] in {"changelog", "scd2", "dms"}}
    assert after.keys() == before.keys()
    for key in before:
        assert _read_bytes(after[key]).equals(_read_bytes(before[key])), key
    assert verify_table(store, ALL).ok


def _read_bytes(body):
    return pq.read_table(pa.BufferReader(body)).replace_schema_metadata(None)


def test_a_retry_after_the_scd2_step_does_not_apply_it_twice(store, tmp_path):
    processor = _run(store, tmp_path, versions=(V1, V2), snaps=(S1, S2))
    # an attempt that wrote the SCD2 files but not the run record
    store.delete(store.layout.run_record_key("clientes", S2))
    processor.process(Snapshot.parse(S2))
    assert verify_table(store, ALL).ok


def test_a_column_added_later_reaches_every_feed_file(store, tmp_path):
    processor = _run(store, tmp_path, versions=(V1, V2), snaps=(S1, S2))
    put_raw(store, ALL, S3, csv_bytes([*COLUMNS, "email"], [[*row, f"{row[0]}@x"] for row in V3]))
    processor.process(Snapshot.parse(S3))
    result = verify_table(store, ALL)
    assert result.ok, result.message
    load = _read(store, "lake/dms/clientes/LOAD00000001.parquet")
    assert load.column_names[:2] == ["Op", "dms_timestamp"] and load.column_names[-1] == "email"
