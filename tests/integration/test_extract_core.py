"""run_extract with a stub Kaggle source against moto: the failure paths the handler tests do not reach."""

from __future__ import annotations

import fcntl
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from snapcdc.config import parse_config
from snapcdc.errors import OutOfDiskSpaceError
from snapcdc.extract import ExtractPermissionError, run_extract
from snapcdc.kaggle import DatasetVersion, KaggleError
from snapcdc.layout import Layout
from snapcdc.local.fake_kaggle import build_zip
from snapcdc.safe_zip import UnsafeArchiveError
from snapcdc.store import S3Store

from tests.support import BUCKET, csv_bytes

CONFIG = parse_config(
    {
        "dataset": "owner/loyalty",
        "tables": [
            {"name": "clientes", "file": "clientes.csv", "delimiter": ";", "primary_key": ["idCliente"]},
            {"name": "produtos", "file": "produtos.csv", "delimiter": ";", "primary_key": ["IdProduto"]},
        ],
    }
)
FILES = {
    "clientes.csv": csv_bytes(["idCliente", "qtdePontos"], [["a", 1]]),
    "produtos.csv": csv_bytes(["IdProduto", "DescNomeProduto"], [["1", "chat"]]),
}
SNAP = "20260105T090000Z"


class StubSource:
    """Serves one zip as version ``number``; ``fail_download`` raises after writing a partial file."""

    def __init__(self, zip_bytes: bytes, number: int = 1, fail_download: Exception | None = None) -> None:
        self.zip_bytes = zip_bytes
        self.number = number
        self.fail_download = fail_download
        self.downloads: list[int | None] = []

    def current_version(self, dataset: str) -> DatasetVersion:
        return DatasetVersion(self.number, "2026-01-05T08:00:00Z")

    def download(self, dataset: str, dest_dir: Path, version: int | None = None) -> Path:
        self.downloads.append(version)
        dest_dir.mkdir(parents=True, exist_ok=True)
        path = dest_dir / "loyalty.zip"
        path.write_bytes(self.zip_bytes)
        if self.fail_download is not None:
            raise self.fail_download
        return path


class DenyingClient:
    """A boto3 S3 client that answers 403 to HEAD requests, as S3 does without s3:GetObject."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def head_object(self, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadObject")


@pytest.fixture
def store():
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield S3Store(client, BUCKET, Layout())


def test_a_role_without_read_on_raw_gets_an_error_naming_the_grant(store, tmp_path):
    # Given an S3 client that may not HEAD raw objects
    denied = S3Store(DenyingClient(store.client), BUCKET, Layout())

    # When / Then
    with pytest.raises(ExtractPermissionError, match=r"s3:ListBucket on raw/ and s3:GetObject on raw/\*"):
        run_extract(store=denied, config=CONFIG, source=StubSource(build_zip(FILES)), snap=SNAP, work_dir=tmp_path)
    assert list(store.list_keys("")) == []


@pytest.mark.parametrize(
    ("failure", "error"),
    [(KaggleError("Kaggle DownloadDataset failed after 4 attempts"), KaggleError), (None, UnsafeArchiveError)],
)
def test_a_failed_run_writes_no_manifest_and_cleans_the_work_dir(store, tmp_path, failure, error):
    # Given a download that fails, or an archive that is refused
    zip_bytes = build_zip(FILES) if failure else build_zip({**FILES, "/etc/produtos.csv": b"x"})
    source = StubSource(zip_bytes, fail_download=failure)

    # When / Then
    with pytest.raises(error):
        run_extract(store=store, config=CONFIG, source=source, snap=SNAP, work_dir=tmp_path)
    assert list(store.list_keys("")) == []
    assert not any((tmp_path / "extract").rglob("*"))


def test_stale_files_from_a_crashed_invocation_are_removed(store, tmp_path):
    # Given leftovers of an earlier invocation in the reused /tmp (a folder no live run has locked)
    stale = tmp_path / "extract" / "20260101T000000Z" / "files" / "clientes.csv"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")

    # When
    report = run_extract(store=store, config=CONFIG, source=StubSource(build_zip(FILES)), snap=SNAP, work_dir=tmp_path)

    # Then
    assert report.uploaded == ["clientes", "produtos"]
    assert not stale.exists()


def test_the_checked_version_is_the_one_downloaded(store, tmp_path):
    # Given Kaggle at version 7
    source = StubSource(build_zip(FILES), number=7)

    # When
    report = run_extract(store=store, config=CONFIG, source=source, snap=SNAP, work_dir=tmp_path)

    # Then the download is pinned to it, so the manifest's version describes the bytes
    assert source.downloads == [7]
    assert report.version == 7
    assert store.get_json(store.layout.manifest_key(SNAP))["version"] == 7


class DiskFullSource(StubSource):
    """Downloads onto a full disk: /dev/full answers every write with ENOSPC."""

    def download(self, dataset: str, dest_dir: Path, version: int | None = None) -> Path:
        self.downloads.append(version)
        dest_dir.mkdir(parents=True, exist_ok=True)
        with open("/dev/full", "wb") as disk:
            disk.write(self.zip_bytes)
        raise AssertionError("unreachable: /dev/full is always full")


def test_a_full_disk_while_downloading_is_a_clear_permanent_failure_and_nothing_is_written(store, tmp_path):
    # Given a download that runs out of disk space
    source = DiskFullSource(build_zip(FILES), number=3)

    # When / Then the error says what ran out, where, and during which step
    with pytest.raises(OutOfDiskSpaceError) as failure:
        run_extract(store=store, config=CONFIG, source=source, snap=SNAP, work_dir=tmp_path)
    message = str(failure.value)
    assert message.startswith(f"no space left in the work dir {tmp_path / 'extract'}/{SNAP}-")
    assert "while downloading Kaggle owner/loyalty version 3 (No space left on device)" in message
    assert message.endswith("give the extract function more ephemeral storage (extract_ephemeral_storage_mb)")
    # and nothing was written, nothing left in the work dir
    assert list(store.list_keys("")) == []
    assert list((tmp_path / "extract").iterdir()) == []


class GatedSource(StubSource):
    """Pauses inside the download, after writing the zip, until the test lets it go on."""

    def __init__(self, zip_bytes: bytes) -> None:
        super().__init__(zip_bytes)
        self.downloaded = threading.Event()
        self.go_on = threading.Event()

    def download(self, dataset: str, dest_dir: Path, version: int | None = None) -> Path:
        path = super().download(dataset, dest_dir, version)
        self.downloaded.set()
        assert self.go_on.wait(timeout=60)
        return path


def test_two_runs_sharing_a_work_dir_do_not_remove_each_others_files(store, tmp_path):
    # Given a run paused between its download and the extraction, in the work dir a second run shares
    gated = GatedSource(build_zip(FILES))
    results: dict[str, Any] = {}

    def first_run() -> None:
        first = S3Store(store.client, BUCKET, Layout("first"))
        try:
            results["first"] = run_extract(store=first, config=CONFIG, source=gated, snap=SNAP, work_dir=tmp_path)
        except Exception as error:  # surfaced below
            results["first"] = error

    thread = threading.Thread(target=first_run)
    thread.start()
    try:
        assert gated.downloaded.wait(timeout=60)

        # When a second run starts, extracts and finishes meanwhile
        second = S3Store(store.client, BUCKET, Layout("second"))
        later = "20260105T130000Z"
        results["second"] = run_extract(
            store=second, config=CONFIG, source=StubSource(build_zip(FILES)), snap=later, work_dir=tmp_path
        )
    finally:
        gated.go_on.set()
        thread.join(timeout=60)

    # Then the first run still finds its download and completes
    assert not isinstance(results["first"], Exception), results["first"]
    assert results["first"].uploaded == ["clientes", "produtos"]
    assert results["second"].uploaded == ["clientes", "produtos"]
    assert list((tmp_path / "extract").iterdir()) == []


def _leave_run_folder(runs: Path, name: str) -> Path:
    """The folder and lock file a run leaves when it is killed (its lock then is no longer held)."""
    (runs / name / "files").mkdir(parents=True)
    (runs / name / "files" / "clientes.csv").write_bytes(b"old")
    (runs / f"{name}.lock").touch()
    return runs / name


def test_the_folder_of_a_killed_run_is_removed_and_that_of_a_run_still_going_is_kept(store, tmp_path):
    # Given the folder of a run killed by a Lambda timeout, and one of a run still going (its lock held)
    runs = tmp_path / "extract"
    killed = _leave_run_folder(runs, "20260105T050000Z-0123456789ab")
    going = _leave_run_folder(runs, "20260105T090000Z-ba9876543210")
    with (runs / f"{going.name}.lock").open("r") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)

        # When a run starts in the same work dir
        report = run_extract(
            store=store, config=CONFIG, source=StubSource(build_zip(FILES)), snap=SNAP, work_dir=tmp_path
        )

        # Then the killed run's folder and lock are gone, the live run's are untouched
        assert report.uploaded == ["clientes", "produtos"]
        assert not killed.exists()
        assert sorted(p.name for p in runs.iterdir()) == [going.name, f"{going.name}.lock"]
        assert (going / "files" / "clientes.csv").read_bytes() == b"old"
