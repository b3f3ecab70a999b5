"""Reading an untrusted zip (the Kaggle download) with hard limits, to disk or as a stream.

The archive is treated as hostile: member paths that are absolute or climb out (``..``),
symlinks, encrypted members, oversized members (by the declared size AND by the bytes actually
produced while streaming, so a lying header gains nothing), too many bytes in total, a
compression ratio typical of zip bombs, and corrupt data (bad CRC, truncated streams) all raise
:class:`UnsafeArchiveError` naming the member. The checks live in one place, :class:`SafeArchive`,
which reads the archive from a path or any seekable file object (the extract streams it from S3
with :class:`snapcdc.lake.s3_reader.S3RangeReader`) and yields each member's bytes in checked chunks,
never whole in memory. :func:`extract_members` is the disk path on top of it: members written
flat into ``dest_dir`` under their base name, so a write can never land outside it; on any error,
the files written by the call are removed.

Size limits mean "at most N bytes": N bytes pass, N + 1 fail. On the disk path the total is also
capped by the free space of ``dest_dir``'s file system, measured when the extraction starts, less
:data:`DISK_HEADROOM_BYTES`: an archive that would fill the disk raises
:class:`OutOfDiskSpaceError` before a byte is written, and so does a disk that fills up anyway
(``ENOSPC``), e.g. because something else writes to it meanwhile.
"""

from __future__ import annotations

import errno
import io
import shutil
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any, NamedTuple, cast

from snapcdc.errors import OutOfDiskSpaceError, PermanentError

CHUNK_BYTES = 1024 * 1024
# Small members cannot do harm whatever their ratio (a header-only CSV compresses well):
# the ratio limit applies once a member has produced this many bytes.
RATIO_FLOOR_BYTES = 1024 * 1024
# Kept free beyond the extracted bytes: file system blocks and metadata, the small files of the run.
DISK_HEADROOM_BYTES = 16 * 1024 * 1024
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_STORAGE_HINT = "give the extract function more ephemeral storage (extract_ephemeral_storage_mb)"


class UnsafeArchiveError(PermanentError, ValueError):
    """The archive is corrupt or breaks a safety limit; the message names the member.

    Permanent: a retry downloads the same version, with the same archive.
    """


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` is the operating system's "no space left on device" (or quota exceeded)."""
    return isinstance(error, OSError) and error.errno in _DISK_FULL


class _TotalLimit(NamedTuple):
    """The total cap in force: the configured one, or the disk's if that is smaller."""

    limit: int
    configured: int
    dest: Path | None  # the work dir whose free space is the cap, if any
    free: int

    @property
    def by_disk(self) -> bool:
        return self.limit < self.configured

    def error(self, archive_name: str, what: str) -> Exception:
        if self.by_disk:
            return OutOfDiskSpaceError(
                f"{archive_name}: {what}, more than the {self.limit} bytes the work dir {self.dest} can take "
                f"({self.free} bytes free, less {DISK_HEADROOM_BYTES} of headroom): {_STORAGE_HINT}"
            )
        return UnsafeArchiveError(f"{archive_name}: {what}, over the limit of {self.limit} (max_total_bytes)")


def _member_problem(name: str) -> str | None:
    """Why a member name is unsafe, or None."""
    if "\x00" in name:
        return "contains a NUL byte"
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        return "is an absolute path"
    if ".." in PurePosixPath(normalized).parts:
        return "climbs out of the extraction folder ('..')"
    return None


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return info.create_system == 3 and stat.S_ISLNK(mode)


def _base_name(info: zipfile.ZipInfo) -> str:
    return PurePosixPath(info.filename.replace("\\", "/")).name


class SafeArchive:
    """An untrusted zip opened for reading, from a path or any seekable binary file (such as
    :class:`snapcdc.lake.s3_reader.S3RangeReader`): the checks both the disk and the stream paths share.

    Opening it checks every member's name (escapes, symlinks) and the wanted members' flags
    (encryption), names (one per base name) and declared sizes and ratios, from the central
    directory alone; :attr:`members` are the wanted members that passed, by base name. Their bytes
    then come from :meth:`chunks`, checked while they are produced (actual size, total, ratio, CRC
    and length). A member can be read more than once; the total counts each member once.
    """

    def __init__(
        self,
        file: str | Path | IO[bytes] | io.RawIOBase,
        archive_name: str,
        wanted: set[str] | None,
        *,
        max_member_bytes: int,
        max_total_bytes: int,
        max_compression_ratio: float,
        total_limit: _TotalLimit | None = None,
    ) -> None:
        self.archive_name = archive_name
        self.max_member_bytes = max_member_bytes
        self.max_compression_ratio = max_compression_ratio
        self.total_limit = total_limit or _TotalLimit(max_total_bytes, max_total_bytes, None, 0)
        try:
            self._zip = zipfile.ZipFile(cast("str | Path | IO[bytes]", file))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as error:
            raise UnsafeArchiveError(f"{archive_name}: not a readable zip archive: {error}") from None
        try:
            selected = _select(self._zip, archive_name, wanted, max_member_bytes, self.total_limit)
            _check_ratios(selected, archive_name, max_compression_ratio)
        except BaseException:
            self._zip.close()
            raise
        self.members: dict[str, zipfile.ZipInfo] = {_base_name(info): info for info in selected}
        self._produced: dict[str, int] = {}

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> SafeArchive:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def chunks(self, base: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        """The bytes of member ``base``, in chunks, each checked before it is yielded.

        A member that breaks a limit or is corrupt raises :class:`UnsafeArchiveError` (a bad CRC or
        a short stream only at its end: a consumer completes nothing before the iteration ends).
        """
        info = self.members[base]
        member, name = info.filename, self.archive_name
        produced = 0
        others = sum(count for other, count in self._produced.items() if other != base)
        ratio_budget = max(info.compress_size, 1) * self.max_compression_ratio
        limit = self.total_limit
        try:
            with self._zip.open(info) as source:
                while chunk := source.read(chunk_bytes):
                    produced += len(chunk)
                    if produced > self.max_member_bytes:
                        raise UnsafeArchiveError(
                            f"{name}: member {member!r} expands past {self.max_member_bytes} bytes "
                            "(max_member_bytes), more than its header declares"
                        )
                    if others + produced > limit.limit:
                        raise limit.error(name, f"extraction passes {limit.limit} bytes in total at member {member!r}")
                    if produced > RATIO_FLOOR_BYTES and produced > ratio_budget:
                        raise UnsafeArchiveError(
                            f"{name}: member {member!r} expands more than {self.max_compression_ratio:g}:1 "
                            "(max_compression_ratio; a zip bomb?)"
                        )
                    self._produced[base] = produced
                    yield chunk
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as error:
            raise UnsafeArchiveError(f"{name}: member {member!r} is corrupt: {error}") from None
        if produced != info.file_size:  # zipfile stops at the declared size; a shortfall is corruption
            raise UnsafeArchiveError(
                f"{name}: member {member!r} produced {produced} bytes but declares {info.file_size}"
            )


def extract_members(
    zip_path: Path,
    dest_dir: Path,
    wanted: set[str] | None,
    *,
    max_member_bytes: int,
    max_total_bytes: int,
    max_compression_ratio: float,
    disk_usage: Callable[[Path], Any] = shutil.disk_usage,
) -> dict[str, Path]:
    """Extract the members whose base name is in ``wanted`` (all files if None) to disk.

    Returns base name -> extracted path. A wanted name absent from the archive is simply not
    in the result (the caller decides what a missing table means). ``disk_usage`` (anything with
    a ``free`` attribute, like :func:`shutil.disk_usage`) measures the free space of ``dest_dir``.
    """
    zip_path = Path(zip_path)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    free = int(disk_usage(dest).free)
    total_limit = _TotalLimit(min(max_total_bytes, max(0, free - DISK_HEADROOM_BYTES)), max_total_bytes, dest, free)
    written: list[Path] = []
    with SafeArchive(
        zip_path,
        zip_path.name,
        wanted,
        max_member_bytes=max_member_bytes,
        max_total_bytes=max_total_bytes,
        max_compression_ratio=max_compression_ratio,
        total_limit=total_limit,
    ) as archive:
        try:
            total = 0
            result: dict[str, Path] = {}
            for base, info in archive.members.items():
                target = dest / base
                if target.parent != dest:  # base names have no separators; belt and braces
                    raise UnsafeArchiveError(f"{archive.archive_name}: member {info.filename!r} escapes the folder")
                written.append(target)
                total = _write(archive, base, target, total)
                result[base] = target
            return result
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise


def _write(archive: SafeArchive, base: str, target: Path, total: int) -> int:
    """Copy one member to ``target``; returns the new total. Running out of disk is named."""
    try:
        with target.open("wb") as out:
            for chunk in archive.chunks(base):
                total += len(chunk)
                out.write(chunk)
    except OSError as error:
        if not is_disk_full(error):
            raise
        member = archive.members[base].filename
        raise OutOfDiskSpaceError(
            f"{archive.archive_name}: no space left in the work dir {target.parent} while writing member {member!r} "
            f"({total} bytes extracted in total, {archive.total_limit.free} were free at the start): {_STORAGE_HINT}"
        ) from None
    return total


def _select(
    archive: zipfile.ZipFile,
    archive_name: str,
    wanted: set[str] | None,
    max_member_bytes: int,
    total_limit: _TotalLimit,
) -> list[zipfile.ZipInfo]:
    """Check every member's name, then the declared sizes of the wanted ones."""
    selected: list[zipfile.ZipInfo] = []
    seen: dict[str, str] = {}
    declared_total = 0
    for info in archive.infolist():
        # Names are checked for every member: a hostile path anywhere means a tampered archive.
        problem = _member_problem(info.filename)
        if problem:
            raise UnsafeArchiveError(f"{archive_name}: member {info.filename!r} {problem}")
        if _is_symlink(info):
            raise UnsafeArchiveError(f"{archive_name}: member {info.filename!r} is a symbolic link")
        if info.is_dir():
            continue
        base = _base_name(info)
        if wanted is not None and base not in wanted:
            continue
        if base in seen:
            raise UnsafeArchiveError(
                f"{archive_name}: members {seen[base]!r} and {info.filename!r} have the same file name"
            )
        seen[base] = info.filename
        if info.flag_bits & 0x1:
            raise UnsafeArchiveError(f"{archive_name}: member {info.filename!r} is encrypted")
        if info.file_size > max_member_bytes:
            raise UnsafeArchiveError(
                f"{archive_name}: member {info.filename!r} declares {info.file_size} bytes, "
                f"over the limit of {max_member_bytes} (max_member_bytes)"
            )
        declared_total += info.file_size
        if declared_total > total_limit.limit:
            raise total_limit.error(
                archive_name, f"members up to {info.filename!r} declare {declared_total} bytes in total"
            )
        selected.append(info)
    return selected


def _check_ratios(selected: list[zipfile.ZipInfo], archive_name: str, max_ratio: float) -> None:
    for info in selected:
        if info.file_size <= RATIO_FLOOR_BYTES:
            continue
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > max_ratio:
            raise UnsafeArchiveError(
                f"{archive_name}: member {info.filename!r} declares a compression ratio of {ratio:.0f}:1, "
                f"over the limit of {max_ratio:g}:1 (max_compression_ratio; a zip bomb?)"
            )
