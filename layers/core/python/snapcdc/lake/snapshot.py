"""One snapshot of the source, parsed once: its id (``YYYYMMDDTHHMMSSZ``, the UTC time of the scheduled
event), that time, and the stamp that names its change files (``YYYYMMDD_HHMMSS``).

The id is what the bucket's keys and the run records carry; a :class:`Snapshot` is what code passes
around, so the id is checked once, where it enters (an event, a key, a CLI argument).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from snapcdc.errors import PermanentError

SNAP_FORMAT = "%Y%m%dT%H%M%SZ"
STAMP_FORMAT = "%Y%m%d_%H%M%S"
_SNAP_RE = re.compile(r"^\d{8}T\d{6}Z$")


class SnapshotIdError(PermanentError, ValueError):
    """Text that is not a snapshot id; the message quotes it and the expected form."""


@dataclass(frozen=True, order=True)
class Snapshot:
    """A snapshot id with its time; ordered (and equal) by id, which sorts as time does."""

    id: str
    time: datetime = field(compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        if not isinstance(text, str) or not _SNAP_RE.match(text):
            raise SnapshotIdError(f"not a snapshot id (expected YYYYMMDDTHHMMSSZ): {text!r}")
        try:
            moment = datetime.strptime(text, SNAP_FORMAT).replace(tzinfo=UTC)
        except ValueError as error:
            raise SnapshotIdError(f"not a snapshot id (no such date or time): {text!r}") from error
        return cls(text, moment)

    @classmethod
    def at(cls, moment: datetime) -> Snapshot:
        """The snapshot of a moment (a naive datetime is taken as UTC; sub-seconds are dropped)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return cls.parse(moment.astimezone(UTC).strftime(SNAP_FORMAT))

    @property
    def stamp(self) -> str:
        """``YYYYMMDD_HHMMSS``: how change files are named."""
        return self.time.strftime(STAMP_FORMAT)

    def __str__(self) -> str:
        return self.id
