"""Hostile inputs end to end, over the embedded S3 (moto server on 127.0.0.1) and the fake Kaggle API.

A flaky, stalling or truncating Kaggle API; hostile zips served as the dataset download; hostile CSVs
published as a table file; missing or wrong credentials. Each scenario starts from an accepted
snapshot and ends with ``verify`` passing for every table, every earlier raw object still present,
and nothing written outside the places the scenario expects.

Two worlds:

* ``lab`` (one per test): scenarios that write (a retried extract, a refused CSV, the next version).
* ``settled`` (one per test class, snapshot 0 extracted and accepted): scenarios whose extract must
  fail and write nothing. Each asserts that the bucket and the tmp folder are exactly as the class
  fixture left them, which also keeps them independent of one another. (moto's state is global to
  the process, so a class holds only ``settled`` tests: no other embedded S3 starts meanwhile.)

The extract's Kaggle retries record their backoff instead of sleeping (the handler's ``RetryPolicy``
gets that sleep), and a stalled read times out after ``READ_TIMEOUT`` seconds (the function's
``KAGGLE_READ_TIMEOUT_SECONDS`` setting). The retry policy itself is the real one (4 attempts,
exponential backoff from 1 s with jitter).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import json
import os
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from snapcdc.extract.kaggle import KaggleDeadlineError, KaggleError, RetryPolicy
from snapcdc.lake.layout import snapshot_id
from snapcdc.lake.ledger import read_run_record
from snapcdc.lake.records import RunRecord
from snapcdc_dev.demo import BUCKET
from snapcdc_dev.embedded_aws import patched_environ
from snapcdc_dev.events import LocalLambdaContext
from snapcdc_dev.fake_kaggle import BLOB_RPC, FakeKaggle, build_zip

from tests.e2e.conftest import CONFIG, MOMENTS, Lab, open_lab

DATASET = CONFIG.dataset
ARCHIVE = f"{DATASET.split('/')[1]}.zip"  # the name the extract gives the download
READ_TIMEOUT = 0.5
STALL = 60.0  # far longer than READ_TIMEOUT; the fake releases held requests when it stops
ATTEMPTS = 4  # the default attempt budget (KAGGLE_MAX_ATTEMPTS)
SNAPS = [snapshot_id(m) for m in MOMENTS]


# -- fixtures and helpers ------------------------------------------------------------------------
def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def first_snapshot_done(lab: Lab) -> None:
    """Snapshot 0 extracted and accepted for every table."""
    report = lab.deliver(lab.publish_and_extract(MOMENTS[0]))
    assert report["failures"] == {}
    assert {r["status"] for r in report["processed"]} == {"accepted"}


@dataclass
class Settled:
    """A lab whose snapshot 0 is done, and the state every write-nothing scenario must leave."""

    lab: Lab
    objects: dict[str, str]
    tmp_files: set[str]

    def assert_untouched(self, archive_of: str | None = None) -> None:
        """Nothing written; or, with ``archive_of``, only the download of that snapshot, which the
        extract streams to raw/_archives/ before it can read the zip's directory (and may not delete)."""
        after = self.lab.objects()
        if archive_of is not None:
            assert after.pop(self.lab.store.layout.archive_key(archive_of, ARCHIVE), None) is not None
        assert after == self.objects
        assert files_under(self.lab.tmp_path) == self.tmp_files
        assert files_under(self.lab.work_dir / "extract") == set()
        self.lab.assert_verified()


@pytest.fixture(scope="class")
def _settled_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settled]:
    with open_lab(tmp_path_factory.mktemp("settled")) as lab:
        first_snapshot_done(lab)
        yield Settled(lab, lab.objects(), files_under(lab.tmp_path))


@pytest.fixture
def settled(_settled_world: Settled, capsys: pytest.CaptureFixture[str]) -> Iterator[Settled]:
    lab = _settled_world.lab
    lab.watch_stdout(capsys)
    lab.kaggle.clear_requests()
    try:
        yield _settled_world
    finally:
        lab.kaggle.clear_faults()


@pytest.fixture
def sleeps() -> list[float]:
    """The backoff delays the extract chose (recorded, not slept)."""
    return []


@pytest.fixture(autouse=True)
def _fast_kaggle_retries(request: pytest.FixtureRequest, sleeps: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAGGLE_READ_TIMEOUT_SECONDS", str(READ_TIMEOUT))
    fast = functools.partial(RetryPolicy, sleep=sleeps.append)
    if "lab" in request.fixturenames:
        monkeypatch.setattr(request.getfixturevalue("lab").extract, "RetryPolicy", fast)
    if "settled" in request.fixturenames:
        monkeypatch.setattr(request.getfixturevalue("settled").lab.extract, "RetryPolicy", fast)


def metric(lab: Lab, name: str, table: str | None = None) -> list[float]:
    """Every value of one EMF metric printed in this test (of one table, if given)."""
    values: list[float] = []
    for document in lab.metrics():
        if name in document and (table is None or document.get("table") == table):
            value = document[name]
            values.extend(value if isinstance(value, list) else [value])
    return values


def run_record(lab: Lab, table: str, snap: str) -> RunRecord:
    record = read_run_record(lab.store, table, snap)
    assert record is not None, f"no run record for {table}@{snap}"
    return record


def assert_only_written_for(lab: Lab, before: dict[str, str], snap: str) -> None:
    """Every earlier object is still there, unchanged, and every object added since ``before`` is one
    of the keys the pipeline writes for snapshot ``snap``. (The one object each run rewrites by design,
    a table's SCD2 current versions file, is the exception.)"""
    layout = lab.store.layout
    expected = {layout.manifest_key(snap), layout.archive_key(snap, ARCHIVE)}
    rewritten = {layout.scd2_current_key(t.name) for t in CONFIG.tables if t.outputs.scd2 is not None}
    for table in CONFIG.tables:
        expected |= {
            layout.raw_key(table.name, snap, table.file),
            layout.snapshot_key(table.name, snap),
            layout.quarantine_key(table.name, snap),
            layout.cdc_key(table.name, snap),
            layout.run_record_key(table.name, snap),
            layout.changelog_key(table.name, snap),
            layout.dms_cdc_key(table.name, snap),
            layout.scd2_closed_key(table.name, snap),
        }
    after = lab.objects()
    assert {k: after.get(k) for k in before if k not in rewritten} == {
        k: v for k, v in before.items() if k not in rewritten
    }
    added = set(after) - set(before)
    assert added, "nothing was written"
    assert added <= expected, sorted(added - expected)


def assert_backoff(sleeps: list[float]) -> None:
    """Exponential from 1 s, each delay jittered into [0.5, 1.5) of its step, capped at 30 s."""
    for attempt, delay in enumerate(sleeps, start=1):
        step = min(30.0, 2.0 ** (attempt - 1))
        assert 0.5 * step <= delay <= min(30.0, 1.5 * step), (attempt, sleeps)


def stored_zip(files: dict[str, bytes]) -> bytes:
    """A zip with uncompressed (stored) members: valid, and the members' bytes appear as they are."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2025, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


# -- 5. a flaky Kaggle API -----------------------------------------------------------------------
TRANSIENT_FAULTS: list[Any] = [
    pytest.param(
        lambda k: k.fail_next(429, times=2, rpc="GetDataset"), "GetDataset", 2, id="429-twice-on-version-check"
    ),
    pytest.param(lambda k: k.fail_next(500, times=3, rpc=BLOB_RPC), BLOB_RPC, 3, id="500-thrice-on-the-download"),
    # a held request is recorded only once the fake answers it: count the DownloadDataset calls
    pytest.param(lambda k: k.delay_next(STALL, rpc=BLOB_RPC), "DownloadDataset", 1, id="stalled-download"),
    pytest.param(lambda k: k.truncate_next(), BLOB_RPC, 1, id="download-cut-short"),
]


@pytest.mark.parametrize(("inject", "counted_rpc", "failures"), TRANSIENT_FAULTS)
def test_a_transient_kaggle_fault_is_retried_with_backoff_and_the_pipeline_goes_on(
    lab: Lab, sleeps: list[float], inject: Callable[[FakeKaggle], None], counted_rpc: str, failures: int
):
    # Given a first snapshot done and a new dataset version
    first_snapshot_done(lab)
    before = lab.objects()
    lab.publish_next()
    lab.kaggle.clear_requests()
    # and the Kaggle API failing a few times (errors, a stalled answer, a body cut short)
    inject(lab.kaggle)

    # When the schedule fires
    result = lab.run_extract(MOMENTS[1])

    # Then the extract retried once per failure, with jittered exponential backoff, and succeeded
    assert result["status"] == "extracted", result
    assert sorted(result["uploaded"]) == sorted(CONFIG.table_names)
    assert len(sleeps) == failures
    assert_backoff(sleeps)
    assert lab.kaggle.request_count(counted_rpc) == failures + 1
    # and left no partial download behind
    assert files_under(lab.work_dir / "extract") == set()
    # And the pipeline goes on: every table's change set, and the change stream is exact
    report = lab.deliver(lab.raw_keys(MOMENTS[1]))
    assert report["failures"] == {}
    assert sorted((r["table"], r["status"]) for r in report["processed"]) == sorted(
        (t, "accepted") for t in CONFIG.table_names
    )
    assert_only_written_for(lab, before, SNAPS[1])
    lab.assert_verified()


PERSISTENT_FAULTS: list[Any] = [
    pytest.param(
        lambda k: k.fail_next(503, times=100),
        "GetDataset",
        rf"Kaggle GetDataset {DATASET} failed after {ATTEMPTS} attempts: HTTP 503",
        id="503-on-every-request",
    ),
    pytest.param(
        lambda k: k.truncate_next(times=100),
        BLOB_RPC,
        rf"Kaggle DownloadDataset {DATASET} version \d+ failed after {ATTEMPTS} attempts: short download",
        id="every-download-cut-short",
    ),
    pytest.param(
        lambda k: k.delay_next(STALL, times=100, rpc="GetDataset"),
        None,  # held requests are recorded only once the fake answers them
        rf"Kaggle GetDataset {DATASET} failed after {ATTEMPTS} attempts: timed out",
        id="kaggle-stalled",
    ),
]


class TestPersistentKaggleFaults:
    """Kaggle failing for good: a bounded number of attempts, a clear error, nothing written."""

    @pytest.mark.parametrize(("inject", "counted_rpc", "message"), PERSISTENT_FAULTS)
    def test_a_persistent_kaggle_fault_fails_clearly_after_a_bounded_number_of_attempts(
        self,
        settled: Settled,
        sleeps: list[float],
        inject: Callable[[FakeKaggle], None],
        counted_rpc: str | None,
        message: str,
    ):
        # Given a first snapshot done and a new dataset version
        lab = settled.lab
        lab.publish_next()
        # and the Kaggle API failing for good
        inject(lab.kaggle)

        # When the schedule fires
        with pytest.raises(KaggleError) as failure:
            lab.run_extract(MOMENTS[1])

        # Then the handler raises a clear error (so Lambda retries the event later) after the attempt budget
        assert re.match(message, str(failure.value)), str(failure.value)
        assert len(sleeps) == ATTEMPTS - 1
        assert_backoff(sleeps)
        if counted_rpc is not None:
            assert lab.kaggle.request_count(counted_rpc) == ATTEMPTS
        assert metric(lab, "ExtractFailed") == [1.0]
        # and nothing was written (no raw object, no manifest for that snapshot), nothing left in /tmp
        settled.assert_untouched()

    def test_a_download_dripping_in_is_cut_at_the_deadline_before_the_function_would_be_killed(
        self, settled: Settled, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
    ):
        # Given a first snapshot done and a new dataset version
        lab = settled.lab
        files = lab.publish_next()
        # and Kaggle sending its zip 16 bytes every 50 ms: every read gets data well within the read timeout,
        # and the whole zip would take longer than the function has
        lab.kaggle.drip_next(0.05, chunk_bytes=16)
        assert len(build_zip(files)) / 16 * 0.05 > 30
        # and a function with 8 s left, of which 3 s are kept for the uploads
        monkeypatch.setenv("UPLOAD_MARGIN_SECONDS", "3")
        context = LocalLambdaContext("snapcdc-extract", timeout_seconds=8)

        # When the schedule fires
        with pytest.raises(KaggleDeadlineError) as failure:
            lab.run_extract(MOMENTS[1], context)

        # Then the handler raises (so Lambda retries the event later) an error naming the call and the deadline
        message = str(failure.value)
        assert re.match(
            rf"Kaggle DownloadDataset {DATASET} version \d+ stopped at its deadline: attempt 1 was cut off", message
        )
        assert "minus UPLOAD_MARGIN_SECONDS=3 kept for the S3 uploads" in message
        # before the invocation ran out of time (Lambda did not kill it), without a retry past the deadline
        assert context.get_remaining_time_in_millis() > 0
        assert sleeps == []
        assert lab.kaggle.request_count(BLOB_RPC) == 1
        assert metric(lab, "ExtractFailed") == [1.0]
        # and nothing was written (no raw object, no manifest for that snapshot), nothing left in /tmp
        settled.assert_untouched()


def test_after_a_kaggle_outage_the_retried_event_extracts_the_snapshot(lab: Lab, sleeps: list[float]):
    # Given a first snapshot done, and the extract of a new version failed: Kaggle answered 503 throughout
    first_snapshot_done(lab)
    before = lab.objects()
    lab.publish_next()
    lab.kaggle.fail_next(503, times=100)
    with pytest.raises(KaggleError, match=f"after {ATTEMPTS} attempts"):
        lab.run_extract(MOMENTS[1])

    # When Kaggle recovers and Lambda retries the same event
    lab.kaggle.clear_faults()
    result = lab.run_extract(MOMENTS[1])
    report = lab.deliver(lab.raw_keys(MOMENTS[1]))

    # Then that snapshot is extracted and processed as if nothing had happened
    assert result["status"] == "extracted"
    assert report["failures"] == {}
    assert len(sleeps) == ATTEMPTS - 1
    assert_only_written_for(lab, before, SNAPS[1])
    lab.assert_verified()


# -- 8. hostile zips served as the dataset download ----------------------------------------------
def _climbing_out(lab: Lab, files: dict[str, bytes]) -> bytes:
    # WORK_DIR/extract/<SNAP>/files/../../../../ is the lab's tmp folder, beside WORK_DIR
    return build_zip({**files, "../../../../clientes.csv": b"pwned"})


def _absolute(lab: Lab, files: dict[str, bytes]) -> bytes:
    return build_zip({**files, str(lab.tmp_path / "escaped" / "clientes.csv"): b"pwned"})


def _ratio_bomb(lab: Lab, files: dict[str, bytes]) -> bytes:
    # 32 MiB of line breaks after the real rows: deflates several hundred to one
    return build_zip({**files, "transacoes.csv": files["transacoes.csv"] + b"\n" * (32 << 20)})


def _over_the_total_cap(lab: Lab, files: dict[str, bytes]) -> bytes:
    # Four members of 2 MiB each: each under max_member_bytes, together over max_total_bytes
    return build_zip({name: os.urandom(2 << 20) for name in files})


def _not_a_zip(lab: Lab, files: dict[str, bytes]) -> bytes:
    return b"<html><body>503 Service Temporarily Unavailable</body></html>"


def _cut_short(lab: Lab, files: dict[str, bytes]) -> bytes:
    # Served whole with its own Content-Length: the transport is fine, the archive is not
    archive = build_zip(files)
    return archive[: len(archive) // 2]


def _bad_crc(lab: Lab, files: dict[str, bytes]) -> bytes:
    data = bytearray(stored_zip(files))
    data[data.find(files["produtos.csv"][40:80])] ^= 0x20  # one flipped bit in produtos.csv's data
    return bytes(data)


HOSTILE_ZIPS: list[Any] = [
    pytest.param(
        _climbing_out, "member '../../../../clientes.csv' climbs out of the extraction folder", id="member-path-../"
    ),
    pytest.param(_absolute, "/escaped/clientes.csv' is an absolute path", id="member-path-absolute"),
    pytest.param(
        _ratio_bomb,
        "member 'transacoes.csv' declares a compression ratio of ",
        id="zip-bomb-compression-ratio",
    ),
    pytest.param(
        _over_the_total_cap,
        "declare 8388608 bytes in total, over the limit of 6291456 (max_total_bytes)",
        id="zip-bomb-total-size-cap",
    ),
    pytest.param(_not_a_zip, "not a readable zip archive", id="corrupt-not-a-zip"),
    pytest.param(_cut_short, "not a readable zip archive", id="corrupt-archive-cut-short"),
    pytest.param(_bad_crc, "member 'produtos.csv' is corrupt: Bad CRC-32", id="corrupt-member-bad-crc"),
]


@contextlib.contextmanager
def small_zip_limits(folder: Path) -> Iterator[None]:
    """The packaged config with zip size limits a test can reach (2 GiB per member, 4 GiB in total by default)."""
    config = CONFIG.model_copy(update={"max_member_bytes": 4 << 20, "max_total_bytes": 6 << 20})
    path = folder / "pipeline.json"
    path.write_text(config.model_dump_json())
    with patched_environ({"PIPELINE_CONFIG": str(path)}):
        yield


def _serve_hostile_zip(lab: Lab, hostile: Callable[[Lab, dict[str, bytes]], bytes]) -> dict[str, Any]:
    """The next dataset version served as ``hostile`` archive bytes, and the extract of snapshot 1."""
    lab.dataset.advance()
    lab.kaggle.publish_zip(DATASET, hostile(lab, lab.dataset.files()))
    return lab.run_extract(MOMENTS[1])


class TestHostileZips:
    """A hostile or corrupt archive as the download: refused, nothing escapes, nothing written."""

    @pytest.mark.parametrize(("hostile", "named"), HOSTILE_ZIPS)
    def test_a_hostile_zip_is_refused_clearly_and_nothing_escapes_or_is_written(
        self, settled: Settled, tmp_path: Path, hostile: Callable[[Lab, dict[str, bytes]], bytes], named: str
    ):
        lab = settled.lab
        limits = small_zip_limits(tmp_path) if hostile is _over_the_total_cap else contextlib.nullcontext()
        with limits:
            # Given a first snapshot done
            # When the next version's download is a hostile or corrupt archive
            result = _serve_hostile_zip(lab, hostile)

        # Then the extract fails clearly, naming the archive and its problem, and asks for no retry
        assert result["status"] == "failed", result
        assert result["retryable"] is False
        assert result["error_type"] == "UnsafeArchiveError"
        assert result["error"].startswith(f"{ARCHIVE}: "), result["error"]
        assert named in result["error"], result["error"]
        assert metric(lab, "ExtractFailed") == [1.0]
        # and nothing escaped the work dir: no file where the hostile paths point, none new in the tmp folder
        assert not (lab.tmp_path / "clientes.csv").exists()
        assert not (lab.tmp_path / "escaped").exists()
        # and nothing was written to the bucket but the download (no raw object, no manifest), nothing left
        # in the work dir, the earlier data is intact and verified
        settled.assert_untouched(archive_of=SNAPS[1])


def test_after_a_hostile_zip_the_next_good_version_is_extracted_against_the_last_complete_snapshot(lab: Lab):
    # Given a first snapshot done, then a version whose archive was refused
    first_snapshot_done(lab)
    before = lab.objects()
    assert _serve_hostile_zip(lab, _climbing_out)["status"] == "failed"
    before[lab.store.layout.archive_key(SNAPS[1], ARCHIVE)] = lab.objects()[
        lab.store.layout.archive_key(SNAPS[1], ARCHIVE)
    ]

    # When the publisher ships a good version and the schedule fires again
    keys = lab.publish_and_extract(MOMENTS[2])
    report = lab.deliver(keys)

    # Then it is compared with, and diffed against, snapshot 0 (snapshot 1 left nothing)
    assert (
        json.loads(lab.store.get_bytes(lab.store.layout.manifest_key(SNAPS[2])) or b"null")["previous_snapshot"]
        == SNAPS[0]
    )
    assert report["failures"] == {}
    assert {run_record(lab, t, SNAPS[2]).base_snapshot for t in CONFIG.table_names} == {SNAPS[0]}
    assert_only_written_for(lab, before, SNAPS[2])
    lab.assert_verified()


# -- 9. hostile CSVs published as a table file -----------------------------------------------------
def _replace_line(data: bytes, number: int, line: bytes) -> bytes:
    lines = data.split(b"\n")
    lines[number - 1] = line
    return b"\n".join(lines)


def _line(data: bytes, number: int) -> bytes:
    return data.split(b"\n")[number - 1]


MALFORMED_CSVS: list[Any] = [
    pytest.param(
        lambda d: _replace_line(d, 4, _line(d, 4) + b";surplus"), 4, "expected 4 fields, found 5", id="field-too-many"
    ),
    pytest.param(lambda d: _replace_line(d, 6, b"6;Daily Loot"), 6, "expected 4 fields, found 2", id="fields-missing"),
    pytest.param(
        lambda d: _replace_line(d, 3, b"3;Resgatar P\xf4nei;Latin-1, not UTF-8;ponei"),
        3,
        "invalid UTF-8 (byte 13 of the line)",
        id="invalid-utf8",
    ),
    pytest.param(lambda d: _replace_line(d, 5, b"5;Daily\x00Loot;x;rpg"), 5, "NUL byte in data", id="nul-byte"),
    pytest.param(
        lambda d: _replace_line(d, 1, b"IdProduto;DescNomeProduto;DescNomeProduto;DescCategoriaProduto"),
        1,
        "duplicate column name 'DescNomeProduto' in header",
        id="duplicate-column-names",
    ),
    pytest.param(
        lambda d: _replace_line(d, 1, b"IdProduto;;DescDescricaoProduto;DescCategoriaProduto"),
        1,
        "header column 2 has an empty name",
        id="empty-column-name",
    ),
    pytest.param(lambda d: b"", 1, "empty file: no header line", id="empty-file"),
]


def _publish_hostile_produtos(lab: Lab, corrupt: Callable[[bytes], bytes]) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Snapshot 0 accepted; snapshot 1 = a version in which clientes changed and produtos.csv is
    ``corrupt(next produtos.csv)``, extracted and delivered to the CDC. Returns the files of that
    version and the CDC handler's result."""
    first_snapshot_done(lab)
    files = lab.dataset.files()
    lab.dataset.advance()
    advanced = lab.dataset.files()
    files = {**files, "clientes.csv": advanced["clientes.csv"], "produtos.csv": corrupt(advanced["produtos.csv"])}
    lab.kaggle.publish(DATASET, files)
    extracted = lab.run_extract(MOMENTS[1])
    assert sorted(extracted["uploaded"]) == ["clientes", "produtos"]  # the extract does not judge content
    return files, lab.deliver(lab.raw_keys(MOMENTS[1]))


def _assert_refused_and_skipped(lab: Lab, published: dict[str, bytes], report: dict[str, Any]) -> RunRecord:
    """produtos@1 refused (only its run record written, its raw object kept), clientes@1 accepted;
    then a good produtos@2 is diffed against produtos@0. Returns the refused run record."""
    layout = lab.store.layout
    raw_key = layout.raw_key("produtos", SNAPS[1], "produtos.csv")
    # the CDC handler does not fail (a refusal is recorded and alarmed on, not retried)
    assert report["failures"] == {}
    assert {r["table"]: r["status"] for r in report["processed"]} == {"clientes": "accepted", "produtos": "refused"}
    record = run_record(lab, "produtos", SNAPS[1])
    assert record.status == "refused"
    assert record.base_snapshot == SNAPS[0]
    assert record.source_key == raw_key
    assert record.outputs == {}
    # the raw object is kept as published; nothing but the run record was written for produtos@1
    assert lab.store.get_bytes(raw_key) == published["produtos.csv"]
    assert {k for k in lab.objects() if "produtos" in k} == {
        layout.raw_key("produtos", SNAPS[0], "produtos.csv"),
        layout.full_load_key("produtos"),
        layout.snapshot_key("produtos", SNAPS[0]),
        layout.run_record_key("produtos", SNAPS[0]),
        raw_key,
        layout.run_record_key("produtos", SNAPS[1]),
    }
    raw_before = lab.raw_objects()

    # When the publisher fixes produtos.csv in the next version (the other files unchanged)
    lab.dataset.advance()
    lab.kaggle.publish(DATASET, {**published, "produtos.csv": lab.dataset.files()["produtos.csv"]})
    assert lab.run_extract(MOMENTS[2])["uploaded"] == ["produtos"]
    report = lab.deliver(lab.raw_keys(MOMENTS[2]))

    # Then the refused snapshot is no base: produtos@2 is diffed against produtos@0, the last accepted one
    assert report["failures"] == {}
    later = run_record(lab, "produtos", SNAPS[2])
    assert (later.status, later.base_snapshot) == ("accepted", SNAPS[0])
    assert raw_before < lab.raw_objects()
    lab.assert_verified()
    return record


@pytest.mark.parametrize(("corrupt", "line", "problem"), MALFORMED_CSVS)
def test_a_malformed_table_file_is_refused_naming_file_and_line_and_the_others_go_on(
    lab: Lab, corrupt: Callable[[bytes], bytes], line: int, problem: str
):
    # Given a first snapshot done, and a version whose produtos.csv is malformed
    # When it is extracted and its S3 events reach the CDC
    published, report = _publish_hostile_produtos(lab, corrupt)

    # Then produtos@1 is refused with a message naming the file, the line and the problem,
    # the other table of the snapshot is processed, and the next good snapshot skips the refused one
    record = _assert_refused_and_skipped(lab, published, report)
    assert record.refused_reason == "malformed_input"
    assert record.error == f"s3://{BUCKET}/{record.source_key}: line {line}: {problem}"
    # and the refusal is counted in the per-table metric the alarm watches
    assert sum(metric(lab, "MalformedSnapshots", "produtos")) == 1
    assert sum(metric(lab, "MalformedSnapshots", "clientes")) == 0


def test_a_header_only_table_file_is_a_mass_delete_that_the_delete_guard_refuses(lab: Lab):
    # Given a first snapshot done, and a version whose produtos.csv has its header and no rows
    # When it is extracted and its S3 events reach the CDC
    published, report = _publish_hostile_produtos(lab, lambda data: data.split(b"\n", 1)[0] + b"\n")

    # Then it parses (zero rows) but would delete every product: refused by the delete guard
    # (DESIGN: more than max_delete_ratio of the table deleted; nothing written to cdc/)
    record = _assert_refused_and_skipped(lab, published, report)
    assert record.refused_reason == "delete_guard"
    rows = run_record(lab, "produtos", SNAPS[0]).stats["rows_snapshot"]
    assert rows > 0
    assert record.error == (
        f"refusing snapshot: {rows} deletes of {rows} rows (ratio 1.000 > limit 0.500); "
        "set allow_mass_delete to accept it"
    )
    assert sum(metric(lab, "DeleteGuardRefused", "produtos")) == 1


def test_a_100_mb_single_field_is_accepted_and_round_trips_into_the_change_file(lab: Lab):
    # Given a first snapshot done
    first_snapshot_done(lab)
    # and a version in which one product's description is a single 100 MiB field (valid CSV: no
    # delimiter, quote or line break in it), shipped in a zip with stored members (deflating 100 MiB
    # of random text would only slow the test down; the ratio cap does not bite on stored data)
    big = base64.b64encode(os.urandom(75 << 20))
    assert len(big) == 100 << 20
    lab.dataset.advance()
    files = lab.dataset.files()
    header, first, rest = files["produtos.csv"].split(b"\n", 2)
    product_id, name, _, category = first.split(b";")
    files["produtos.csv"] = b"\n".join([header, b";".join([product_id, name, big, category]), rest])
    lab.kaggle.publish_zip(DATASET, stored_zip(files))

    # When it is extracted and its S3 events reach the CDC
    assert lab.run_extract(MOMENTS[1])["status"] == "extracted"
    report = lab.deliver(lab.raw_keys(MOMENTS[1]))

    # Then it is accepted, and the 100 MiB value is in the change file as an update of that product
    assert report["failures"] == {}
    record = run_record(lab, "produtos", SNAPS[1])
    assert record.status == "accepted", record.error
    changes = pq.read_table(io.BytesIO(lab.store.get_bytes(record.outputs["cdc"] or "") or b""))
    row = changes.filter(pc.equal(changes["IdProduto"], product_id.decode()))
    assert row["_cdc_operation"].to_pylist() == ["U"]
    assert row["DescDescricaoProduto"][0].as_py() == big.decode()
    lab.assert_verified()


# -- 10. missing or wrong Kaggle credentials ----------------------------------------------------------
def _set_secret(lab: Lab, stack: contextlib.ExitStack, text: str) -> None:
    """Replace the Kaggle secret's value for the rest of the test."""
    secrets, arn = lab.aws.client("secretsmanager"), os.environ["KAGGLE_SECRET_ARN"]
    good = secrets.get_secret_value(SecretId=arn)["SecretString"]
    secrets.put_secret_value(SecretId=arn, SecretString=text)
    stack.callback(secrets.put_secret_value, SecretId=arn, SecretString=good)


def _wrong_key(lab: Lab, stack: contextlib.ExitStack) -> None:
    _set_secret(lab, stack, json.dumps({"username": lab.kaggle.username, "key": "revoked-key"}))


def _unknown_user(lab: Lab, stack: contextlib.ExitStack) -> None:
    _set_secret(lab, stack, json.dumps({"username": "someone-else", "key": lab.kaggle.key}))


def _secret_missing(lab: Lab, stack: contextlib.ExitStack) -> None:
    arn = os.environ["KAGGLE_SECRET_ARN"].replace("snapcdc/kaggle", "snapcdc/deleted")
    stack.enter_context(patched_environ({"KAGGLE_SECRET_ARN": arn}))


def _secret_not_json(lab: Lab, stack: contextlib.ExitStack) -> None:
    _set_secret(lab, stack, f"{lab.kaggle.username}:{lab.kaggle.key}")


def _secret_without_key(lab: Lab, stack: contextlib.ExitStack) -> None:
    _set_secret(lab, stack, json.dumps({"username": lab.kaggle.username}))


def _secret_with_empty_username(lab: Lab, stack: contextlib.ExitStack) -> None:
    _set_secret(lab, stack, json.dumps({"username": " ", "key": lab.kaggle.key}))


@contextlib.contextmanager
def _without_environment(name: str) -> Iterator[None]:
    saved = os.environ.pop(name)
    try:
        yield
    finally:
        os.environ[name] = saved


def _no_secret_configured(lab: Lab, stack: contextlib.ExitStack) -> None:
    stack.enter_context(_without_environment("KAGGLE_SECRET_ARN"))


HINT = "set a valid Kaggle username and API key (the Kaggle secret's 'username' and 'key' fields"
BAD_CREDENTIALS: list[Any] = [
    pytest.param(_wrong_key, "KaggleAuthError", ["HTTP 401", HINT], 1, id="wrong-api-key"),
    pytest.param(_unknown_user, "KaggleAuthError", ["'someone-else'", "HTTP 401", HINT], 1, id="unknown-user"),
    pytest.param(
        _secret_missing,
        "KaggleSecretError",
        ["{arn}", "(KAGGLE_SECRET_ARN) cannot be read: ResourceNotFoundException"],
        0,
        id="secret-missing",
    ),
    pytest.param(
        _secret_not_json,
        "KaggleSecretError",
        ["{arn}", 'must be a JSON object {"username": ..., "key": ...}'],
        0,
        id="secret-not-json",
    ),
    pytest.param(
        _secret_without_key,
        "KaggleSecretError",
        ["{arn}", "field 'key' is missing or empty"],
        0,
        id="secret-without-key",
    ),
    pytest.param(
        _secret_with_empty_username,
        "KaggleSecretError",
        ["{arn}", "field 'username' is missing or empty"],
        0,
        id="secret-with-blank-username",
    ),
    pytest.param(
        _no_secret_configured,
        "SettingsError",
        ["invalid Lambda environment: KAGGLE_SECRET_ARN: Field required"],
        0,
        id="no-secret-arn",
    ),
]


class TestBadCredentials:
    """Missing, malformed or refused Kaggle credentials: a clear failure, no retry storm, nothing written."""

    @pytest.mark.parametrize(("break_credentials", "error_type", "named", "requests"), BAD_CREDENTIALS)
    def test_bad_kaggle_credentials_fail_clearly_without_a_retry_storm_and_write_nothing(
        self,
        settled: Settled,
        sleeps: list[float],
        break_credentials: Callable[[Lab, contextlib.ExitStack], None],
        error_type: str,
        named: list[str],
        requests: int,
    ):
        # Given a first snapshot done and a new dataset version
        lab = settled.lab
        lab.publish_next()
        with contextlib.ExitStack() as stack:
            # and the credentials broken
            break_credentials(lab, stack)
            arn = os.environ.get("KAGGLE_SECRET_ARN", "")

            # When the schedule fires
            result = lab.run_extract(MOMENTS[1])

        # Then the extract returns (so Lambda does not retry) a failure that names what to set
        assert result["status"] == "failed", result
        assert result["retryable"] is False
        assert result["error_type"] == error_type
        for text in named:
            assert text.replace("{arn}", arn) in result["error"], result["error"]
        assert metric(lab, "ExtractFailed") == [1.0]
        # and Kaggle saw at most the one request it refused: no retries
        assert lab.kaggle.request_count() == requests
        assert sleeps == []
        # and nothing was written
        settled.assert_untouched()
