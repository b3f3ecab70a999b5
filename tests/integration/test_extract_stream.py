"""The streaming extract against moto: Kaggle -> S3 archive -> members by ranged reads -> raw/, no disk.

The archives here are a few MB with S3 parts of 5 MiB (the smallest S3 allows), so the multipart
paths run; the work dir gets no disk at all (:class:`tests.support.DiskBudget`).
"""

from __future__ import annotations

import hashlib
import io
import random
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from snapcdc.config import parse_config
from snapcdc.extract.s3_stream import MIB, S3Upload
from snapcdc.extract.safe_zip import RATIO_FLOOR_BYTES, UnsafeArchiveError
from snapcdc.extract.stage import run_extract
from snapcdc.lake.layout import Layout
from snapcdc.lake.s3_reader import S3RangeReader
from snapcdc.lake.store import S3Store

from tests.integration.test_extract_core import ARCHIVE_KEY, CONFIG, SNAP, StubSource
from tests.support import BUCKET, DiskBudget, object_versions

PART = 5 * MIB
LIMITS = {"max_member_bytes": 16 * MIB, "max_total_bytes": 32 * MIB, "max_compression_ratio": 200.0}
STREAM_CONFIG = parse_config({**CONFIG.model_dump(), **LIMITS})


def noise(size: int, seed: int) -> bytes:
    """Bytes that do not compress (so a stored or deflated member is about as large as the data)."""
    return random.Random(seed).randbytes(size)


def build(files: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2025, 1, 1, 0, 0, 0))
            info.compress_type = compression
            archive.writestr(info, data)
    return buffer.getvalue()


# clientes spans three parts, produtos fits in one
BIG = {"clientes.csv": noise(11 * MIB + 12345, 1), "produtos.csv": noise(300_000, 2)}


@contextmanager
def counted(client: Any) -> Iterator[Counter[str]]:
    """The S3 requests ``client`` makes inside ``with``, by operation (a botocore event hook)."""
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    client.meta.events.register("before-call.s3", count)
    try:
        yield calls
    finally:
        client.meta.events.unregister("before-call.s3", count)


@pytest.fixture
def store(s3_client):
    return S3Store(s3_client, BUCKET, Layout())  # no data prefix


def extract(store: S3Store, source: Any, snap: str = SNAP, config: Any = STREAM_CONFIG) -> Any:
    return run_extract(store=store, config=config, source=source, snap=snap, part_bytes=PART)


def raw_tables(store: S3Store) -> list[str]:
    return [k for k in store.list_keys("raw/") if not k.startswith(("raw/_archives/", "raw/_manifests/"))]


def open_uploads(store: S3Store) -> list[Any]:
    return list(store.client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []))


def test_an_archive_larger_than_the_work_dirs_disk_is_extracted_byte_for_byte(store, tmp_path):
    # Given an archive of 11.6 MB and a work dir (the function's /tmp) where nothing can be written
    zip_bytes = build(BIG)
    assert len(zip_bytes) > 2 * PART

    # When
    with DiskBudget(tmp_path) as disk:
        report = extract(store, StubSource(zip_bytes))

    # Then every table is in raw/, byte for byte, with its digest, and nothing touched the disk
    assert report.uploaded == ["clientes", "produtos"]
    for table, file in (("clientes", "clientes.csv"), ("produtos", "produtos.csv")):
        key = store.layout.raw_key(table, SNAP, file)
        assert store.get_bytes(key) == BIG[file]
        assert store.head_metadata(key)["sha256"] == hashlib.sha256(BIG[file]).hexdigest()
    assert store.get_bytes(ARCHIVE_KEY) == zip_bytes
    assert disk.refused == []
    assert not list(tmp_path.iterdir())
    assert open_uploads(store) == []


def test_the_requests_of_an_extract_stay_within_the_stated_bound(store):
    # Given an archive of 3 parts whose members are read with windows of 8 MiB
    zip_bytes = build(BIG)
    parts = -(-len(zip_bytes) // PART)

    # When a first snapshot is extracted
    with counted(store.client) as calls:
        extract(store, StubSource(zip_bytes))

    # Then (docs/design.md, "The extract streams"): the archive in parts; one GET for the
    # directory; per member, per pass, one GET per 8 MiB window it spans (+1 for its start);
    # clientes (11 MiB) in three parts, produtos in one PutObject; the bookkeeping reads; the manifest
    assert calls["CreateMultipartUpload"] == 2  # the archive, clientes
    assert calls["UploadPart"] == parts + 3
    assert calls["CompleteMultipartUpload"] == 2
    assert calls["PutObject"] == 2  # produtos, the manifest
    windows = 2 * (2 + 1) + 2 * 1  # clientes spans 2 windows (+1), produtos one; two passes each
    assert calls["GetObject"] <= 1 + windows + 1  # + the manifest lookup
    assert calls["AbortMultipartUpload"] == 0
    assert sum(calls.values()) <= 40, calls


def test_an_unchanged_table_is_read_once_and_not_uploaded(store):
    # Given a first snapshot, then a version in which only produtos changed
    extract(store, StubSource(build(BIG)))
    changed = {**BIG, "produtos.csv": noise(300_000, 3)}

    # When the next snapshot is extracted
    with counted(store.client) as calls:
        report = extract(store, StubSource(build(changed), number=2), snap="20260105T130000Z")

    # Then clientes (11 MiB) was hashed once, never uploaded; produtos written in one request
    assert report.uploaded == ["produtos"]
    assert report.unchanged == ["clientes"]
    assert calls["CreateMultipartUpload"] == 1  # the archive only
    assert calls["PutObject"] == 2  # produtos, the manifest


class FlakyClient:
    """An S3 client whose ``method`` fails on its ``fail_at``-th call (S3 failing part-way)."""

    def __init__(self, client: Any, method: str, fail_at: int) -> None:
        self._client, self._method, self._fail_at, self.calls = client, method, fail_at, 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        if name != self._method:
            return real

        def call(**kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == self._fail_at:
                raise ConnectionError(f"injected S3 failure on {name} call #{self._fail_at}")
            return real(**kwargs)

        return call


@pytest.mark.parametrize(
    "fail_at",
    [
        pytest.param(2, id="archive-part-2"),  # the archive's second part, while downloading
        pytest.param(5, id="clientes-part-2"),  # clientes' second part (archive: 3 parts; clientes: 1st)
    ],
)
def test_a_failure_in_the_middle_of_a_multipart_upload_aborts_it(store, fail_at):
    # Given S3 failing one UploadPart part-way
    flaky = S3Store(FlakyClient(store.client, "upload_part", fail_at), BUCKET, Layout())

    # When / Then the failure is raised as it is (Lambda retries the event)
    with pytest.raises(ConnectionError, match="injected S3 failure"):
        extract(flaky, StubSource(build(BIG)))
    # and no upload is left open (no orphan parts billed), no table object, no manifest
    assert open_uploads(store) == []
    assert raw_tables(store) == []
    assert store.manifest_snapshots() == []


def test_a_retried_extract_after_a_crash_gives_the_same_objects(store):
    # Given a run that crashed while uploading clientes, after the archive was stored
    zip_bytes = build(BIG)
    crashed = S3Store(FlakyClient(store.client, "complete_multipart_upload", 2), BUCKET, Layout())
    with pytest.raises(ConnectionError):
        extract(crashed, StubSource(zip_bytes))

    # When the event is retried
    report = extract(store, StubSource(zip_bytes))

    # Then the objects are those of a run that never crashed
    assert report.uploaded == ["clientes", "produtos"]
    retried = {k: store.get_bytes(k) for k in store.list_keys("")}
    with mock_aws():
        clean_client = boto3.client("s3")
        clean_client.create_bucket(Bucket=BUCKET)
        clean = S3Store(clean_client, BUCKET, Layout())
        extract(clean, StubSource(zip_bytes))
        assert {k: clean.get_bytes(k) for k in clean.list_keys("")} == retried
    assert open_uploads(store) == []
    # and a third delivery changes nothing
    before = object_versions(store)
    assert extract(store, StubSource(zip_bytes)).status == "already_done"
    assert object_versions(store) == before


def _bad_crc(files: dict[str, bytes]) -> bytes:
    data = bytearray(build(files))
    offset = data.index(files["produtos.csv"][:64])
    data[offset + 10] ^= 0xFF  # a stored member: the byte flips, its CRC no longer matches
    return bytes(data)


def _lying_size(files: dict[str, bytes]) -> bytes:
    """produtos declares 1 KB but holds 20 MB: its header lies."""
    data = bytearray(build({**files, "produtos.csv": b"x" * (20 * MIB)}, zipfile.ZIP_DEFLATED))
    archive = zipfile.ZipFile(io.BytesIO(bytes(data)))
    info = archive.getinfo("produtos.csv")
    real = info.file_size.to_bytes(4, "little")
    fake = (1000).to_bytes(4, "little")
    data = bytearray(bytes(data).replace(real, fake))
    return bytes(data)


HOSTILE: list[Any] = [
    pytest.param(
        lambda f: build({**f, "../clientes.csv": b"pwned"}), "member '../clientes.csv' climbs out", id="escape"
    ),
    pytest.param(lambda f: build({**f, "/etc/x.csv": b"x"}), "member '/etc/x.csv' is an absolute path", id="absolute"),
    pytest.param(
        lambda f: build({**f, "produtos.csv": b"0" * (RATIO_FLOOR_BYTES * 4)}, zipfile.ZIP_DEFLATED),
        "member 'produtos.csv' declares a compression ratio of",
        id="ratio-bomb",
    ),
    pytest.param(_bad_crc, "member 'produtos.csv' is corrupt: Bad CRC-32", id="bad-crc"),
    pytest.param(
        lambda f: build({**f, "produtos.csv": noise(17 * MIB, 4)}),
        "member 'produtos.csv' declares 17825792 bytes, over the limit of 16777216 (max_member_bytes)",
        id="oversized",
    ),
    pytest.param(lambda f: b"PK\x03\x04" + noise(PART + 1, 5), "not a readable zip archive", id="not-a-zip"),
]


@pytest.mark.parametrize(("hostile", "named"), HOSTILE)
def test_a_hostile_archive_streamed_from_s3_is_refused_and_no_table_is_written(store, hostile, named):
    # Given a hostile archive in which clientes (read first) is fine
    zip_bytes = hostile(BIG)

    # When / Then the same error as the disk path, naming the archive and the member
    with pytest.raises(UnsafeArchiveError, match=re.escape(f"loyalty.zip: {named}")):
        extract(store, StubSource(zip_bytes))
    # and nothing under raw/<table>/, no manifest, no upload left open: only the archive itself
    assert raw_tables(store) == []
    assert list(store.list_keys("")) == [ARCHIVE_KEY]
    assert open_uploads(store) == []


def test_a_member_whose_header_lies_about_its_size_is_refused(store):
    # Given produtos declaring far fewer bytes than its data holds (zipfile stops at the declared size)
    # When / Then
    with pytest.raises(UnsafeArchiveError, match=re.escape("loyalty.zip: member 'produtos.csv'")):
        extract(store, StubSource(_lying_size(BIG)))
    assert raw_tables(store) == []


# -- the ranged reader ---------------------------------------------------------------------------
DATA = noise(300_000, 6)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("ranged") / "object"
    path.write_bytes(DATA)
    return path


@pytest.fixture(scope="module")
def object_store() -> Iterator[Callable[[int, int], S3RangeReader]]:
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key="object", Body=DATA)
        yield lambda block, tail: S3RangeReader(client, BUCKET, "object", len(DATA), block_bytes=block, tail_bytes=tail)


WINDOWS_PER_READ = 64  # a read spans at most this many windows: a 1-byte window and a 100 kB read is 100,000 GETs


@st.composite
def reads(draw: st.DrawFn) -> tuple[int, int, list[tuple[int, int, int]]]:
    """A window size, a tail size and seeks/reads, each read spanning at most WINDOWS_PER_READ windows
    (read-to-the-end, -1, only where the whole object is that few windows)."""
    block = draw(st.integers(1, 70_000))
    tail = draw(st.integers(1, 70_000))
    smallest = -1 if block * WINDOWS_PER_READ >= len(DATA) else 0
    size = st.integers(smallest, min(100_000, block * WINDOWS_PER_READ))
    steps = draw(st.lists(st.tuples(st.sampled_from([0, 1, 2]), st.integers(-400_000, 400_000), size), max_size=12))
    return block, tail, steps


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=reads())
def test_the_ranged_reader_reads_what_a_file_reads_for_any_seeks_and_reads(object_store, data_file, case):
    # Given the object read through S3 and the same bytes as a file
    block, tail, steps = case
    reader = object_store(block, tail)
    with data_file.open("rb") as file:
        _same_reads(reader, file, steps)


def _same_reads(reader: S3RangeReader, file: Any, steps: list[tuple[int, int, int]]) -> None:
    for whence, offset, size in steps:
        # When both seek and read the same way
        try:
            expected_position = file.seek(offset, whence)
        except (OSError, ValueError) as error:
            with pytest.raises(type(error)):
                reader.seek(offset, whence)
            continue
        # Then they agree on positions and bytes
        assert reader.seek(offset, whence) == expected_position
        assert reader.read(size) == file.read(size)
        assert reader.tell() == file.tell()


def test_the_s3_upload_writes_small_and_multipart_objects_and_abort_leaves_nothing(store):
    # Given
    small, large = noise(1000, 7), noise(2 * PART + 3, 8)

    # When
    for key, data in (("small", small), ("large", large)):
        with S3Upload(store.client, BUCKET, key, part_bytes=PART) as upload:
            for start in range(0, len(data), 777_777):
                upload.write(data[start : start + 777_777])
            upload.complete()
    with pytest.raises(RuntimeError, match="the producer failed"):
        _write_then_fail(S3Upload(store.client, BUCKET, "aborted", part_bytes=PART), large)

    # Then
    assert store.get_bytes("small") == small
    assert store.get_bytes("large") == large
    assert not store.exists("aborted")
    assert open_uploads(store) == []


def _write_then_fail(upload: S3Upload, data: bytes) -> None:
    with upload:
        upload.write(data)  # two parts sent
        raise RuntimeError("the producer failed")
