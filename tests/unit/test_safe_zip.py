"""safe_zip treats the Kaggle zip as hostile: every refusal names the member, nothing lands outside dest."""

from __future__ import annotations

import os
import re
import stat
import struct
import zipfile
from pathlib import Path
from typing import NamedTuple

import pytest
from snapcdc.errors import OutOfDiskSpaceError
from snapcdc.extract.safe_zip import (
    DISK_HEADROOM_BYTES,
    RATIO_FLOOR_BYTES,
    UnsafeArchiveError,
    extract_members,
)

LIMITS = {"max_member_bytes": 10 * 1024 * 1024, "max_total_bytes": 20 * 1024 * 1024, "max_compression_ratio": 100.0}
CSV = b"idCliente;qtdePontos\n6c031199;260\n72ff5d2a;4827\n"


def make_zip(
    tmp_path: Path,
    members: list[tuple[str | zipfile.ZipInfo, bytes]],
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    path = tmp_path / "dataset.zip"
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


def extract(zip_path: Path, dest: Path, wanted: set[str] | None = None, **limits: float) -> dict[str, Path]:
    return extract_members(zip_path, dest, wanted, **{**LIMITS, **limits})  # type: ignore[arg-type]


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_wanted_members_are_extracted_flat_by_base_name(tmp_path):
    # Given CSVs at the top level and in a folder, plus a file nobody asked for
    zip_path = make_zip(
        tmp_path, [("clientes.csv", CSV), ("data/produtos.csv", b"IdProduto\n1\n"), ("database.db", b"x")]
    )

    # When
    result = extract(zip_path, tmp_path / "out", {"clientes.csv", "produtos.csv", "transacoes.csv"})

    # Then only the wanted ones, flat in dest; an absent name is simply not in the result
    assert result == {
        "clientes.csv": tmp_path / "out" / "clientes.csv",
        "produtos.csv": tmp_path / "out" / "produtos.csv",
    }
    assert result["clientes.csv"].read_bytes() == CSV
    assert files_under(tmp_path / "out") == ["clientes.csv", "produtos.csv"]


def test_all_files_are_extracted_when_nothing_is_named(tmp_path):
    # Given
    zip_path = make_zip(tmp_path, [("a.csv", b"1"), ("folder/", b""), ("b.csv", b"2")])

    # When
    result = extract(zip_path, tmp_path / "out")

    # Then directories are skipped
    assert sorted(result) == ["a.csv", "b.csv"]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../clientes.csv", "climbs out"),
        ("data/../../clientes.csv", "climbs out"),
        ("..\\clientes.csv", "climbs out"),
        ("/etc/clientes.csv", "absolute path"),
        ("C:\\temp\\clientes.csv", "absolute path"),
    ],
)
def test_a_member_path_escaping_dest_is_refused_and_nothing_is_written(tmp_path, name, problem):
    # Given a hostile member next to a good one
    zip_path = make_zip(tmp_path, [("produtos.csv", b"ok"), (name, b"pwned")])
    dest = tmp_path / "deep" / "out"

    # When / Then
    with pytest.raises(UnsafeArchiveError, match=re.escape(f"member {name!r}") + f" .*{problem}"):
        extract(zip_path, dest, {"produtos.csv", "clientes.csv"})
    assert files_under(tmp_path) == ["dataset.zip"]


def test_a_hostile_path_is_refused_even_when_not_wanted(tmp_path):
    # Given a tampered archive whose bad member we would not extract anyway
    zip_path = make_zip(tmp_path, [("clientes.csv", CSV), ("../../evil.sh", b"rm -rf /")])

    # When / Then the whole archive is refused
    with pytest.raises(UnsafeArchiveError, match=re.escape("'../../evil.sh'")):
        extract(zip_path, tmp_path / "out", {"clientes.csv"})
    assert not (tmp_path / "out" / "clientes.csv").exists()


def test_a_symlink_member_is_refused(tmp_path):
    # Given a member stored as a unix symbolic link to /etc/passwd
    link = zipfile.ZipInfo("clientes.csv")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    zip_path = make_zip(tmp_path, [(link, b"/etc/passwd")])

    # When / Then
    with pytest.raises(UnsafeArchiveError, match=re.escape("'clientes.csv' is a symbolic link")):
        extract(zip_path, tmp_path / "out", {"clientes.csv"})
    assert files_under(tmp_path / "out") == []


def test_a_zip_bomb_is_refused_by_its_compression_ratio(tmp_path):
    # Given 30 MB of zeros that compress about 1000:1
    zip_path = make_zip(tmp_path, [("clientes.csv", bytes(30 * 1024 * 1024))])
    assert zip_path.stat().st_size < 100_000

    # When / Then
    with pytest.raises(UnsafeArchiveError, match=r"'clientes.csv' declares a compression ratio of \d+:1"):
        extract(zip_path, tmp_path / "out", max_member_bytes=10**9, max_total_bytes=10**9)
    assert files_under(tmp_path / "out") == []


def test_small_members_may_compress_well(tmp_path):
    # Given a repetitive CSV below the ratio floor
    body = b"a;b\n" + b"1;1\n" * (RATIO_FLOOR_BYTES // 8)
    zip_path = make_zip(tmp_path, [("clientes.csv", body)])

    # When
    result = extract(zip_path, tmp_path / "out", max_compression_ratio=2.0)

    # Then
    assert result["clientes.csv"].read_bytes() == body


def test_an_oversized_member_is_refused_by_its_declared_size(tmp_path):
    # Given
    zip_path = make_zip(tmp_path, [("clientes.csv", os.urandom(5000))])

    # When / Then
    with pytest.raises(UnsafeArchiveError, match=r"'clientes.csv' declares 5000 bytes.*max_member_bytes"):
        extract(zip_path, tmp_path / "out", max_member_bytes=4096)


def test_the_total_size_cap_counts_every_extracted_member(tmp_path):
    # Given two members that fit alone but not together
    zip_path = make_zip(tmp_path, [("a.csv", os.urandom(3000)), ("b.csv", os.urandom(3000))])

    # When / Then
    with pytest.raises(UnsafeArchiveError, match=r"'b.csv' declare 6000 bytes in total.*max_total_bytes"):
        extract(zip_path, tmp_path / "out", max_total_bytes=5000)
    assert files_under(tmp_path / "out") == []


def _patch_declared_size(zip_path: Path, size: int) -> None:
    """Rewrite the uncompressed size in the local and central headers (a lying archive)."""
    data = bytearray(zip_path.read_bytes())
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, size)
    struct.pack_into("<I", data, central + 24, size)
    zip_path.write_bytes(bytes(data))


def test_a_lying_declared_size_does_not_get_past_the_limits(tmp_path):
    # Given a member of 2 MB whose headers claim 100 bytes
    payload = os.urandom(2 * 1024 * 1024)
    zip_path = make_zip(tmp_path, [("clientes.csv", payload)])
    _patch_declared_size(zip_path, 100)
    assert zipfile.ZipFile(zip_path).getinfo("clientes.csv").file_size == 100

    # When / Then the streamed bytes do not match the header: refused, nothing kept
    with pytest.raises(UnsafeArchiveError, match=re.escape("'clientes.csv'")):
        extract(zip_path, tmp_path / "out", max_member_bytes=1024)
    assert files_under(tmp_path / "out") == []


def test_a_member_shorter_than_declared_is_refused(tmp_path):
    # Given a member whose headers claim more than it holds
    zip_path = make_zip(tmp_path, [("clientes.csv", CSV)], compression=zipfile.ZIP_STORED)
    _patch_declared_size(zip_path, len(CSV) + 1000)

    # When / Then
    with pytest.raises(UnsafeArchiveError, match=re.escape("'clientes.csv'")):
        extract(zip_path, tmp_path / "out")


def test_a_crc_error_names_the_member_and_removes_what_was_extracted(tmp_path):
    # Given a good first member and a stored second member with a flipped byte
    zip_path = make_zip(tmp_path, [("a.csv", CSV), ("b.csv", CSV)], compression=zipfile.ZIP_STORED)
    data = bytearray(zip_path.read_bytes())
    second = data.rfind(CSV)
    data[second + 3] ^= 0xFF
    zip_path.write_bytes(bytes(data))

    # When / Then
    with pytest.raises(UnsafeArchiveError, match=re.escape("member 'b.csv' is corrupt: Bad CRC-32")):
        extract(zip_path, tmp_path / "out")
    assert files_under(tmp_path / "out") == []


@pytest.mark.parametrize(
    "content",
    [b"this is not a zip file at all", b"", b"PK\x03\x04" + b"\x00" * 40],
    ids=["garbage", "empty", "bare-header"],
)
def test_a_file_that_is_not_a_zip_is_refused(tmp_path, content):
    # Given
    zip_path = tmp_path / "dataset.zip"
    zip_path.write_bytes(content)

    # When / Then
    with pytest.raises(UnsafeArchiveError, match=re.escape("dataset.zip: not a readable zip archive")):
        extract(zip_path, tmp_path / "out")


def test_a_truncated_archive_is_refused(tmp_path):
    # Given the first half of a real archive (a short download that slipped through)
    zip_path = make_zip(tmp_path, [("clientes.csv", os.urandom(4000))])
    zip_path.write_bytes(zip_path.read_bytes()[:2000])

    # When / Then
    with pytest.raises(UnsafeArchiveError, match=re.escape("dataset.zip")):
        extract(zip_path, tmp_path / "out")


def test_two_members_with_the_same_base_name_are_ambiguous(tmp_path):
    # Given
    zip_path = make_zip(tmp_path, [("2025/clientes.csv", CSV), ("2026/clientes.csv", CSV)])

    # When / Then
    with pytest.raises(
        UnsafeArchiveError, match=re.escape("'2025/clientes.csv' and '2026/clientes.csv' have the same file name")
    ):
        extract(zip_path, tmp_path / "out", {"clientes.csv"})


def test_an_encrypted_member_is_refused(tmp_path):
    # Given a member flagged as encrypted (general purpose bit 0, in both headers)
    zip_path = make_zip(tmp_path, [("clientes.csv", CSV)])
    data = bytearray(zip_path.read_bytes())
    data[data.find(b"PK\x03\x04") + 6] |= 0x1
    data[data.find(b"PK\x01\x02") + 8] |= 0x1
    zip_path.write_bytes(bytes(data))

    # When / Then
    with pytest.raises(UnsafeArchiveError, match=re.escape("'clientes.csv' is encrypted")):
        extract(zip_path, tmp_path / "out")


def test_extraction_overwrites_a_stale_file_in_dest(tmp_path):
    # Given a leftover from an earlier run in a reused /tmp
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "clientes.csv").write_bytes(b"stale")
    zip_path = make_zip(tmp_path, [("clientes.csv", CSV)])

    # When
    result = extract(zip_path, tmp_path / "out", {"clientes.csv"})

    # Then
    assert result["clientes.csv"].read_bytes() == CSV


# -- "at most N bytes", and never more than the disk can take -------------------------------------
class DiskUsage(NamedTuple):
    """What shutil.disk_usage answers, for a disk of a chosen size."""

    total: int
    used: int
    free: int


def free_space(free: int):
    def disk_usage(path: Path) -> DiskUsage:
        return DiskUsage(total=free * 2, used=free, free=free)

    return disk_usage


@pytest.mark.parametrize(
    ("limit", "allowed"),
    [
        pytest.param("max_member_bytes", 3000, id="member-at-its-limit"),
        pytest.param("max_total_bytes", 6000, id="total-at-its-limit"),
    ],
)
def test_a_size_limit_of_n_bytes_lets_n_bytes_through(tmp_path, limit, allowed):
    # Given two members of 3000 bytes (6000 in total), and a limit of exactly that size
    zip_path = make_zip(tmp_path, [("a.csv", os.urandom(3000)), ("b.csv", os.urandom(3000))])

    # When
    result = extract(zip_path, tmp_path / "out", **{limit: allowed})

    # Then "at most N bytes" includes N
    assert sorted(result) == ["a.csv", "b.csv"]
    assert sum(p.stat().st_size for p in result.values()) == 6000


@pytest.mark.parametrize(
    ("limit", "allowed", "named"),
    [
        pytest.param("max_member_bytes", 2999, r"'a.csv' declares 3000 bytes, over the limit of 2999", id="member"),
        pytest.param(
            "max_total_bytes", 5999, r"'b.csv' declare 6000 bytes in total, over the limit of 5999", id="total"
        ),
    ],
)
def test_a_size_limit_of_n_bytes_refuses_n_plus_one(tmp_path, limit, allowed, named):
    # Given the same archive, and a limit one byte short of it
    zip_path = make_zip(tmp_path, [("a.csv", os.urandom(3000)), ("b.csv", os.urandom(3000))])

    # When / Then one byte too many is refused, naming the limit, and nothing is kept
    with pytest.raises(UnsafeArchiveError, match=named + rf" \({limit}\)"):
        extract(zip_path, tmp_path / "out", **{limit: allowed})
    assert files_under(tmp_path / "out") == []


def test_the_total_is_capped_by_the_free_space_of_the_work_dir_not_only_by_the_config(tmp_path):
    # Given 6000 bytes to extract, a configured total cap far above it, and a disk with 5999 bytes
    # free beyond the headroom
    zip_path = make_zip(tmp_path, [("a.csv", os.urandom(3000)), ("b.csv", os.urandom(3000))])
    dest = tmp_path / "out"

    # When / Then the archive is refused before a byte is written, naming the disk and what to change
    with pytest.raises(OutOfDiskSpaceError) as failure:
        extract_members(
            zip_path,
            dest,
            None,
            **{**LIMITS, "max_total_bytes": 10**12},  # type: ignore[arg-type]
            disk_usage=free_space(DISK_HEADROOM_BYTES + 5999),
        )
    assert str(failure.value) == (
        f"dataset.zip: members up to 'b.csv' declare 6000 bytes in total, more than the 5999 bytes the work dir "
        f"{dest.resolve()} can take ({DISK_HEADROOM_BYTES + 5999} bytes free, less {DISK_HEADROOM_BYTES} of "
        "headroom): give the extract function more ephemeral storage (extract_ephemeral_storage_mb)"
    )
    assert files_under(dest) == []


def test_an_archive_that_just_fits_on_the_disk_is_extracted(tmp_path):
    # Given 6000 bytes to extract and exactly 6000 bytes free beyond the headroom
    zip_path = make_zip(tmp_path, [("a.csv", os.urandom(3000)), ("b.csv", os.urandom(3000))])

    # When
    result = extract_members(
        zip_path,
        tmp_path / "out",
        None,
        **{**LIMITS, "max_total_bytes": 10**12},  # type: ignore[arg-type]
        disk_usage=free_space(DISK_HEADROOM_BYTES + 6000),
    )

    # Then
    assert sorted(result) == ["a.csv", "b.csv"]


def test_a_disk_that_fills_up_while_extracting_is_named_and_what_was_written_is_removed(tmp_path):
    # Given a second member whose target is a full disk: /dev/full answers every write with ENOSPC
    zip_path = make_zip(tmp_path, [("a.csv", CSV), ("b.csv", CSV)])
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "b.csv").symlink_to("/dev/full")

    # When / Then the error says what ran out, where, and at which member
    with pytest.raises(OutOfDiskSpaceError, match=r"dataset.zip: no space left in the work dir .* member 'b.csv'"):
        extract(zip_path, dest)
    # and the member written before it is removed
    assert list(dest.iterdir()) == []
