"""The Glue job writes in place: its tasks write every output at its final part keys
(``Layout.part_key``), the driver commits with counts and file lists only, and the run record, written
last, lists every file with its rows and bytes (what S3 holds). A retried run rewrites the same keys and
leaves no stale part; the delete guard refuses before anything is committed. On moto's server (the
tasks are separate Python processes), local Spark."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from snapcdc.cdc.stage import TableProcessor
from snapcdc.config import OutputsConfig, TableConfig
from snapcdc.engine import TableSpec, diff_files
from snapcdc.engine.hash_columns import data_only
from snapcdc.lake.layout import Layout
from snapcdc.lake.ledger import read_run_record
from snapcdc.lake.records import RunRecord
from snapcdc.lake.snapshot import Snapshot
from snapcdc.lake.store import S3Store
from snapcdc.spark import merge
from snapcdc.spark.job import SparkEngine
from snapcdc_dev.embedded_aws import embedded_aws

BUCKET = "lake"
TABLE = TableConfig(
    name="t", file="t.csv", primary_key=("id",), outputs=OutputsConfig(changelog=True, dms=True, scd2={})
)
FIRST, SECOND = Snapshot.parse("20260101T000000Z"), Snapshot.parse("20260102T000000Z")


@dataclass(frozen=True)
class Lake:
    store: S3Store
    processor: TableProcessor


@pytest.fixture
def lake(spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lake]:
    monkeypatch.setattr(merge, "CHANGE_FILE_BYTES", 2_000)  # small files: the change set in several
    with embedded_aws() as aws:
        s3 = aws.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        store = S3Store(s3, BUCKET, Layout())
        engine = SparkEngine(spark, endpoint_url=aws.endpoint)
        yield Lake(store, TableProcessor(store, TABLE, work_dir=tmp_path / "work", engine=engine))


def _csv(rows: range, changed: range = range(0), note: str = "") -> bytes:
    lines = ["id,name,amount"]
    lines += [f"{i},{'B' if i in changed else 'n'}{i}{note},{i * 1.5}" for i in rows]
    return ("\n".join(lines) + "\n").encode()


def _put(lake: Lake, at: Snapshot, body: bytes) -> None:
    lake.store.put_bytes(lake.store.layout.raw_key("t", at.id, "t.csv"), body)


def _listed(store: S3Store, key: str) -> tuple[int, int]:
    """The rows (the Parquet footer's) and bytes S3 holds at ``key``."""
    size = store.size(key)
    assert size is not None, key
    with store.reader(key, size) as handle:
        return pq.ParquetFile(handle).metadata.num_rows, size


def _read(store: S3Store, keys: list[str], folder: Path) -> pa.Table:
    tables = [pq.read_table(store.download_file(k, folder / f"{i}.parquet")) for i, k in enumerate(keys)]
    return pa.concat_tables([t.replace_schema_metadata(None) for t in tables], promote_options="permissive")


def _parts_of(key: str) -> re.Pattern[str]:
    return re.compile(re.escape(Layout.part_template(key).partition("{part:05d}")[0]) + r"\d{5}\.parquet$")


def _everything(store: S3Store) -> set[str]:
    return set(store.list_keys(""))


def test_a_run_writes_n_parts_per_output_at_the_final_keys_and_the_record_lists_them(
    lake: Lake, tmp_path: Path
) -> None:
    # Given a first snapshot and a second one with inserts, updates and deletes
    _put(lake, FIRST, _csv(range(300)))
    _put(lake, SECOND, _csv(range(20, 340), changed=range(100, 160)))
    # When the job processes both
    first, second = lake.processor.process(SECOND)
    # Then every output of each is N part files at its final keys (flat, beside its single-file key)
    layout = lake.store.layout
    assert first.accepted and second.accepted
    expected = {
        first.snapshot: {
            "snapshot": layout.snapshot_key("t", FIRST.id),
            "full_load": layout.full_load_key("t"),
            "changelog": layout.changelog_key("t", FIRST.id),
            "dms": layout.dms_load_key("t"),
        },
        second.snapshot: {
            "snapshot": layout.snapshot_key("t", SECOND.id),
            "cdc": layout.cdc_key("t", SECOND.id),
            "changelog": layout.changelog_key("t", SECOND.id),
            "dms": layout.dms_cdc_key("t", SECOND.id),
        },
    }
    for record in (first, second):
        assert set(record.files) == set(expected[record.snapshot]), record.files.keys()
        for name, key in expected[record.snapshot].items():
            keys = record.keys(name)
            assert keys and all(_parts_of(key).match(k) for k in keys), (name, keys)
            assert record.outputs[name] == keys[0]
            # and the record's rows and bytes are what S3 holds
            assert [(f.rows, f.bytes) for f in record.files[name]] == [_listed(lake.store, k) for k in keys]
    assert len(second.keys("snapshot")) >= 4  # a part per bucket
    assert len(second.keys("cdc")) > 1  # the change set merged into files of CHANGE_FILE_BYTES (2,000 here)
    assert first.keys("dms")[0] == "dms/t/LOAD00000001-part-00000.parquet"
    # and the counts add up: the change set is the Lambda engine's, and the feeds hold its rows
    assert sum(f.rows for f in second.files["snapshot"]) == second.stats["rows_snapshot"] == 320
    changes = second.stats["inserts"] + second.stats["updates"] + second.stats["deletes"]
    assert (
        sum(f.rows for f in second.files["cdc"]) == changes == 40 + 60 + 20
    )  # ids 300-339 new, 100-159 changed, 0-19 gone
    assert sum(f.rows for f in second.files["changelog"]) == changes + second.stats["updates"]
    assert sum(f.rows for f in second.files["dms"]) == changes
    (tmp_path / "raw").mkdir()
    old, new = tmp_path / "raw" / "old.csv", tmp_path / "raw" / "new.csv"
    old.write_bytes(_csv(range(300)))
    new.write_bytes(_csv(range(20, 340), changed=range(100, 160)))
    spec = TableSpec.from_config(TABLE)
    lam = diff_files(old=old, new=new, spec=spec, observed_at=SECOND.time, out_dir=tmp_path / "lambda")
    got = _read(lake.store, second.keys("cdc"), tmp_path / "cdc")
    reference = pq.read_table(lam.changes_path).replace_schema_metadata(None)
    order = [("id", "ascending")]
    assert got.take(pc.sort_indices(got, order)).equals(reference.take(pc.sort_indices(reference, order)))
    snapshot = data_only(_read(lake.store, second.keys("snapshot"), tmp_path / "snap").schema)
    assert snapshot.names == ["id", "name", "amount"]
    # and nothing is left in the scratch prefix
    assert not [k for k in _everything(lake.store) if k.startswith("_spark-parts/")]


def _stale(key: str) -> str:
    return Layout.part_key(key, 99)


def test_a_retried_run_rewrites_the_same_keys_and_leaves_no_stale_part(lake: Lake) -> None:
    # Given a table with a first snapshot done, and a second one processed once
    _put(lake, FIRST, _csv(range(300)))
    _put(lake, SECOND, _csv(range(20, 340), changed=range(100, 160)))
    lake.processor.process(FIRST)
    (done,) = lake.processor.process(SECOND)
    before = {k: lake.store.get_bytes(k) for k in done.all_keys()}
    # and an earlier attempt's leftovers: parts of this snapshot's outputs it no longer writes, scratch,
    # and keys of others that merely look alike (they must survive)
    layout = lake.store.layout
    stale = [_stale(layout.snapshot_key("t", SECOND.id)), _stale(layout.cdc_key("t", SECOND.id))]
    stale += [_stale(layout.changelog_key("t", SECOND.id)), _stale(layout.quarantine_key("t", SECOND.id))]
    scratch = f"{layout.spark_parts_prefix('t', SECOND.id)}changes/part-00001.parquet"
    others = [_stale(layout.cdc_key("t", FIRST.id)), "cdc/t/t_20260102_000000-part-00003.parquet.tmp"]
    for key in [*stale, scratch, *others]:
        lake.store.put_bytes(key, b"left over")
    # When the snapshot is processed again (its run record gone: the retry of a run that died before it)
    lake.store.delete(layout.run_record_key("t", SECOND.id))
    (again,) = lake.processor.process(SECOND)
    # Then the same keys, with the same bytes; no stale part nor scratch left; the look-alikes untouched
    assert again.all_keys() == done.all_keys()
    assert {k: lake.store.get_bytes(k) for k in again.all_keys()} == before
    everything = _everything(lake.store)
    assert not ({*stale, scratch} & everything)
    assert set(others) <= everything
    record = read_run_record(lake.store, "t", SECOND.id)
    assert record is not None and record.files == again.files


def test_the_delete_guard_refuses_before_anything_is_committed(lake: Lake) -> None:
    # Given a first snapshot done, and a second one that deletes most of the table
    _put(lake, FIRST, _csv(range(300)))
    _put(lake, SECOND, _csv(range(40)))
    lake.processor.process(FIRST)
    layout = lake.store.layout
    leftover = _stale(layout.snapshot_key("t", SECOND.id))  # and an earlier attempt's part of it
    lake.store.put_bytes(leftover, b"left over")
    after_first = _everything(lake.store) - {leftover}
    # When the job processes the second
    (record,) = lake.processor.process(SECOND)
    # Then it is refused by the guard, and the bucket holds what it held, plus the refusal's record
    assert record.status == "refused" and record.refused_reason == "delete_guard"
    assert record.files == {} and record.all_keys() == []
    assert _everything(lake.store) == after_first | {layout.run_record_key("t", SECOND.id)}


def test_the_record_is_the_only_reader_of_the_files(lake: Lake) -> None:
    # Given a first snapshot processed by the job
    _put(lake, FIRST, _csv(range(50)))
    (record,) = lake.processor.process(FIRST)
    # Then the record read back from the bucket lists the files it was returned with
    stored = read_run_record(lake.store, "t", FIRST.id)
    assert isinstance(stored, RunRecord) and stored.files == record.files
    assert stored.commit_version == 1
    # and the SCD2 history (on the driver) holds the first snapshot's rows
    history = lake.store.get_bytes(lake.store.layout.scd2_current_key("t"))
    assert history is not None and pq.read_table(pa.BufferReader(history)).num_rows == 50
