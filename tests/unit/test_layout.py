from datetime import UTC, datetime, timedelta, timezone

import pytest
from snapcdc.lake.layout import Layout, RawObject, snap_from_partition, snapshot_id, snapshot_time
from snapcdc.lake.records import OutputFile, RunRecord


def test_snapshot_id_is_the_utc_time_of_the_event():
    # Given a moment in UTC-3
    moment = datetime(2026, 1, 5, 6, 0, 0, tzinfo=timezone(timedelta(hours=-3)))
    # When / Then
    assert snapshot_id(moment) == "20260105T090000Z"
    assert snapshot_time("20260105T090000Z") == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_snapshot_ids_sort_in_time_order():
    moments = [datetime(2026, 1, 1) + timedelta(hours=4 * i) for i in range(10)]
    assert sorted(snapshot_id(m) for m in reversed(moments)) == [snapshot_id(m) for m in moments]


def test_bad_snapshot_id_is_refused():
    with pytest.raises(ValueError, match="not a snapshot id"):
        snapshot_time("2026-01-05")


@pytest.mark.parametrize("prefix", ["", "lake", "/lake/landing/"])
def test_keys_follow_the_documented_layout(prefix):
    # Given
    layout = Layout(prefix)
    head = prefix.strip("/") + "/" if prefix.strip("/") else ""
    snap = "20260105T090000Z"
    # Then
    assert layout.raw_key("clientes", snap, "clientes.csv") == f"{head}raw/clientes/snapshot={snap}/clientes.csv"
    assert layout.manifest_key(snap) == f"{head}raw/_manifests/snapshot={snap}.json"
    assert layout.cdc_key("clientes", snap) == f"{head}cdc/clientes/clientes_20260105_090000.parquet"
    assert layout.full_load_key("clientes") == f"{head}full-load/clientes/clientes.parquet"
    assert layout.snapshot_key("clientes", snap) == f"{head}snapshots/clientes/snapshot={snap}/clientes.parquet"
    assert layout.quarantine_key("clientes", snap) == f"{head}quarantine/clientes/snapshot={snap}/clientes.parquet"
    assert layout.run_record_key("clientes", snap) == f"{head}_runs/clientes/snapshot={snap}.json"


def test_raw_keys_parse_back_and_other_keys_do_not():
    layout = Layout("lake")
    key = layout.raw_key("transacao_produto", "20260105T090000Z", "transacao_produto.csv")
    assert layout.parse_raw_key(key) == RawObject("transacao_produto", "20260105T090000Z", "transacao_produto.csv")
    assert layout.parse_raw_key("raw/clientes/snapshot=20260105T090000Z/clientes.csv") is None  # outside prefix
    assert layout.parse_raw_key("lake/raw/_manifests/snapshot=20260105T090000Z.json") is None
    assert layout.parse_raw_key("lake/raw/clientes/snapshot=bad/clientes.csv") is None
    assert layout.parse_raw_key("lake/cdc/clientes/clientes_20260105_090000.parquet") is None


def test_partition_names_give_their_snapshot():
    assert snap_from_partition("raw/x/snapshot=20260105T090000Z/") == "20260105T090000Z"
    assert snap_from_partition("_runs/x/snapshot=20260105T090000Z.json") == "20260105T090000Z"
    assert snap_from_partition("raw/x/other/") is None


def test_an_output_of_n_files_keeps_its_prefix_and_names_each_part_by_number() -> None:
    # Given the single-file keys of three outputs
    layout = Layout("lake")
    keys = [layout.cdc_key("t", "20250101T000000Z"), layout.snapshot_key("t", "20250101T000000Z")]

    # When each is written as parts
    parts = [[Layout.part_key(key, part) for part in (0, 12)] for key in keys]

    # Then every part sits beside the single file, flat, numbered with five digits
    assert parts[0] == [
        "lake/cdc/t/t_20250101_000000-part-00000.parquet",
        "lake/cdc/t/t_20250101_000000-part-00012.parquet",
    ]
    assert all(p.rsplit("/", 1)[0] == k.rsplit("/", 1)[0] for k, ps in zip(keys, parts, strict=True) for p in ps)
    with pytest.raises(ValueError, match="not a Parquet output key"):
        Layout.part_template(layout.run_record_key("t", "20250101T000000Z"))


def test_a_run_record_lists_an_outputs_files_and_reads_older_records_as_one_file() -> None:
    # Given a record that lists two parts of its change set, and one written before files were listed
    listed = RunRecord(
        table="t",
        snapshot="20250101T000000Z",
        status="accepted",
        base_snapshot=None,
        source_key="raw",
        outputs={"cdc": "cdc/a-part-00000.parquet", "snapshot": None},
        files={
            "cdc": [
                OutputFile(key="cdc/a-part-00000.parquet", rows=3, bytes=10),
                OutputFile(key="cdc/a-part-00001.parquet", rows=2, bytes=9),
            ]
        },
    )
    older = RunRecord.model_validate_json(
        '{"table":"t","snapshot":"20250101T000000Z","status":"accepted","base_snapshot":null,'
        '"source_key":"raw","outputs":{"cdc":"cdc/a.parquet","snapshot":null}}'
    )

    # When their keys are read, and the listing is written and read back
    again = RunRecord.model_validate_json(listed.model_dump_json())

    # Then the listing wins, an older record is its one key, an output not written has none
    assert listed.keys("cdc") == ["cdc/a-part-00000.parquet", "cdc/a-part-00001.parquet"]
    assert older.keys("cdc") == ["cdc/a.parquet"] and older.keys("snapshot") == [] and older.keys("dms") == []
    assert again == listed and again.all_keys() == listed.keys("cdc")
    assert '"files"' not in older.model_dump_json()


def test_the_scd2_history_owns_its_current_and_closed_files_and_their_parts_only() -> None:
    # Given the keys of a table's SCD2 history and others beside them
    layout = Layout("lake")
    current, closed = layout.scd2_current_key("t"), layout.scd2_closed_key("t", "20250101T000000Z")
    # When each is asked about
    owned = [layout.is_scd2_key("t", key) for key in (current, closed, Layout.part_key(closed, 2))]
    others = [
        layout.is_scd2_key("t", key)
        for key in ("lake/scd2/t/notes.txt", layout.scd2_current_key("t2"), layout.cdc_key("t", "20250101T000000Z"))
    ]
    # Then its own files are, anything else is not
    assert owned == [True, True, True]
    assert others == [False, False, False]
