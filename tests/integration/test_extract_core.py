"""run_extract with a stub Kaggle source against moto: the failure paths the handler tests do not reach."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from snapcdc.config import parse_config
from snapcdc.extract.kaggle import DatasetVersion, KaggleError
from snapcdc.extract.kaggle.source import DownloadSink
from snapcdc.extract.safe_zip import UnsafeArchiveError
from snapcdc.extract.stage import ExtractPermissionError, run_extract
from snapcdc.lake.layout import Layout
from snapcdc.lake.store import S3Store
from snapcdc_dev.fake_kaggle import build_zip

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
ARCHIVE_KEY = f"raw/_archives/snapshot={SNAP}/loyalty.zip"


class StubSource:
    """Serves one zip as version ``number`` into the extract's sink, in chunks, as KaggleSource does;
    ``fail_download`` raises after writing part of it (the sink then aborted, as KaggleSource does)."""

    def __init__(self, zip_bytes: bytes, number: int = 1, fail_download: Exception | None = None) -> None:
        self.zip_bytes = zip_bytes
        self.number = number
        self.fail_download = fail_download
        self.downloads: list[int | None] = []

    def current_version(self, dataset: str) -> DatasetVersion:
        return DatasetVersion(self.number, "2026-01-05T08:00:00Z")

    def download_to(self, dataset: str, open_sink: Callable[[], DownloadSink], version: int | None = None) -> int:
        self.downloads.append(version)
        sink = open_sink()
        try:
            for start in range(0, len(self.zip_bytes), CHUNK):
                sink.write(self.zip_bytes[start : start + CHUNK])
                if self.fail_download is not None and start + CHUNK >= len(self.zip_bytes) // 2:
                    raise self.fail_download
            sink.complete()
        except BaseException:
            sink.abort()
            raise
        return len(self.zip_bytes)


CHUNK = 1 << 20


class DenyingClient:
    """A boto3 S3 client that answers 403 to HEAD requests, as S3 does without s3:GetObject."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def head_object(self, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadObject")


@pytest.fixture
def store(s3_client):
    return S3Store(s3_client, BUCKET, Layout())  # no data prefix


def test_a_role_without_read_on_raw_gets_an_error_naming_the_grant(store, tmp_path):
    # Given an S3 client that may not HEAD raw objects
    denied = S3Store(DenyingClient(store.client), BUCKET, Layout())

    # When / Then
    with pytest.raises(ExtractPermissionError, match=r"s3:ListBucket on raw/ and s3:GetObject on raw/\*"):
        run_extract(store=denied, config=CONFIG, source=StubSource(build_zip(FILES)), snap=SNAP)
    assert list(store.list_keys("")) == []


@pytest.mark.parametrize(
    ("failure", "error"),
    [(KaggleError("Kaggle DownloadDataset failed after 4 attempts"), KaggleError), (None, UnsafeArchiveError)],
)
def test_a_failed_run_writes_no_table_and_no_manifest(store, failure, error):
    # Given a download that fails, or an archive that is refused
    zip_bytes = build_zip(FILES) if failure else build_zip({**FILES, "/etc/produtos.csv": b"x"})
    source = StubSource(zip_bytes, fail_download=failure)

    # When / Then
    with pytest.raises(error):
        run_extract(store=store, config=CONFIG, source=source, snap=SNAP)
    # a failed download leaves nothing (its multipart upload aborted); a refused archive only itself,
    # under raw/_archives/ (the role may not delete; the bucket's lifecycle rule expires it)
    assert list(store.list_keys("")) == ([] if failure else [ARCHIVE_KEY])
    assert store.client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_the_checked_version_is_the_one_downloaded(store):
    # Given Kaggle at version 7
    source = StubSource(build_zip(FILES), number=7)

    # When
    report = run_extract(store=store, config=CONFIG, source=source, snap=SNAP)

    # Then the download is pinned to it, so the manifest's version describes the bytes
    assert source.downloads == [7]
    assert report.version == 7
    assert json.loads(store.get_bytes(store.layout.manifest_key(SNAP)) or b"null")["version"] == 7
    assert store.head_metadata(ARCHIVE_KEY) == {
        "kaggle-dataset": "owner/loyalty",
        "kaggle-version": "7",
        "kaggle-last-updated": "2026-01-05T08:00:00Z",
    }
