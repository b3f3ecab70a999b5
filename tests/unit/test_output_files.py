"""An output read as its N files (snapcdc.lake.output_files): joined, the parts are the whole, for any split."""

from __future__ import annotations

import io
import itertools
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snapcdc.lake.layout import Layout
from snapcdc.lake.output_files import OutputFilesError, download_output, listed_file, read_output
from snapcdc.lake.records import OutputFile, RunRecord
from snapcdc.lake.store import S3Store

WHOLE = "snapshots/t/snapshot=20250101T000000Z/t.parquet"


class FakeS3:
    """The S3 calls the readers make, on a dict of objects."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def _missing(self, key: str) -> ClientError:
        return ClientError({"Error": {"Code": "404", "Message": key}}, "GetObject")

    def get_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        if Key not in self.objects:
            raise self._missing(Key)
        return {"Body": io.BytesIO(self.objects[Key])}

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        if Key not in self.objects:
            raise self._missing(Key)
        return {"ContentLength": len(self.objects[Key])}

    def download_file(self, bucket: str, key: str, path: str) -> None:
        if key not in self.objects:
            raise self._missing(key)
        Path(path).write_bytes(self.objects[key])


def _parquet(table: pa.Table, group_rows: int = 3) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=group_rows)
    return sink.getvalue()


def _rows(count: int) -> pa.Table:
    schema = pa.schema([("id", pa.int64()), ("name", pa.string())], metadata={b"snapcdc.hash": b"sig"})
    return pa.table({"id": list(range(count)), "name": [f"n{i}" for i in range(count)]}, schema=schema)


def _split(store: S3Store, whole: pa.Table, cuts: list[int]) -> RunRecord:
    """``whole`` written as parts cut at ``cuts``, and the record that lists them."""
    bounds = [0, *sorted(cuts), whole.num_rows]
    files = []
    for part, (start, end) in enumerate(itertools.pairwise(bounds)):
        key = Layout.part_key(WHOLE, part)
        body = _parquet(whole.slice(start, end - start))
        store.client.objects[key] = body
        files.append(OutputFile(key=key, rows=end - start, bytes=len(body)))
    return RunRecord(
        table="t",
        snapshot="20250101T000000Z",
        status="accepted",
        base_snapshot=None,
        source_key="raw/t/snapshot=20250101T000000Z/t.csv",
        outputs={"snapshot": files[0].key},
        files={"snapshot": files},
    )


@st.composite
def splits(draw: st.DrawFn) -> tuple[int, list[int]]:
    count = draw(st.integers(min_value=0, max_value=40))
    cuts = draw(st.lists(st.integers(min_value=0, max_value=count), max_size=6))
    return count, cuts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(split=splits())
def test_joining_the_parts_gives_the_whole_for_any_split(split: tuple[int, list[int]], tmp_path: Path) -> None:
    # Given a table written as N parts cut anywhere (empty parts included)
    count, cuts = split
    store = S3Store(FakeS3(), "bucket")
    whole = _rows(count)
    record = _split(store, whole, cuts)
    keys = record.keys("snapshot")
    # When the output is read as a table and joined into one local file
    read = read_output(store, keys, record)
    joined = download_output(store, keys, tmp_path / f"joined-{len(cuts)}-{count}.parquet", record)
    # Then both are the whole, rows in order, with the first part's metadata
    assert read.equals(whole)
    assert pq.read_table(joined.path).equals(whole)
    assert (joined.rows, joined.files) == (count, len(cuts) + 1)
    assert pq.read_schema(joined.path).metadata[b"snapcdc.hash"] == b"sig"


def test_one_file_is_downloaded_as_it_is(tmp_path: Path) -> None:
    # Given an output of one file (the CDC function's)
    store = S3Store(FakeS3(), "bucket")
    body = _parquet(_rows(5))
    store.client.objects[WHOLE] = body
    # When it is downloaded
    joined = download_output(store, [WHOLE], tmp_path / "one.parquet")
    # Then the local file is the object, byte for byte
    assert joined.path.read_bytes() == body
    assert joined.rows == 5


def _read(reader: str, store: S3Store, record: RunRecord, work: Path) -> object:
    if reader == "read":
        return read_output(store, record.keys("snapshot"), record)
    return download_output(store, record.keys("snapshot"), work / "x.parquet", record)


@pytest.mark.parametrize("reader", ["read", "download"])
def test_a_missing_part_is_named(reader: str, tmp_path: Path) -> None:
    # Given three parts, the second one gone
    store = S3Store(FakeS3(), "bucket")
    record = _split(store, _rows(9), [3, 6])
    gone = record.keys("snapshot")[1]
    del store.client.objects[gone]
    # When the output is read
    with pytest.raises(OutputFilesError) as raised:
        _read(reader, store, record, tmp_path)
    # Then the error names that part
    assert raised.value.key == gone
    assert "is missing" in str(raised.value)


@pytest.mark.parametrize("reader", ["read", "download"])
def test_a_part_short_of_its_listed_rows_is_named(reader: str, tmp_path: Path) -> None:
    # Given three parts, the last one rewritten with a row fewer than the record lists
    store = S3Store(FakeS3(), "bucket")
    record = _split(store, _rows(9), [3, 6])
    short = record.keys("snapshot")[2]
    store.client.objects[short] = _parquet(_rows(2))
    # When the output is read
    with pytest.raises(OutputFilesError) as raised:
        _read(reader, store, record, tmp_path)
    # Then the error names the part and both counts
    assert raised.value.key == short
    assert "has 2 rows, its run record lists 3" in str(raised.value)


def test_a_listed_file_is_found_by_key_and_an_unlisted_one_is_not() -> None:
    # Given a record listing three parts
    store = S3Store(FakeS3(), "bucket")
    record = _split(store, _rows(9), [3, 6])
    # When a part and a key it does not list are looked up
    found = listed_file(record, Layout.part_key(WHOLE, 1))
    # Then the part's entry comes back, the other key none
    assert found is not None and found.rows == 3
    assert listed_file(record, WHOLE) is None
    assert listed_file(None, WHOLE) is None


def test_a_part_key_gives_back_its_whole_key() -> None:
    # Given a part key and a single-file key
    part = Layout.part_key(WHOLE, 7)
    # When each is turned into its whole key
    # Then the part's is the single file's, the single file's is itself
    assert Layout.whole_key(part) == WHOLE
    assert Layout.whole_key(WHOLE) == WHOLE
    assert Layout.is_part(part) and not Layout.is_part(WHOLE)
