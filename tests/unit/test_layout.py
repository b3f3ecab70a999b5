from datetime import UTC, datetime, timedelta, timezone

import pytest
from snapcdc.lake.layout import Layout, RawObject, snap_from_partition, snapshot_id, snapshot_time


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
