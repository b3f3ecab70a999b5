"""The two columns a change set adds to the table's own: ``_cdc_operation`` and ``_cdc_timestamp``."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from snapcdc.engine import arrow_numpy
from snapcdc.engine.spec import CDC_OPERATION, CDC_TIMESTAMP


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def with_cdc(table: pa.Table, operation: str, observed_at: datetime) -> pa.Table:
    count = table.num_rows
    table = table.append_column(CDC_OPERATION, pa.repeat(arrow_numpy.scalar(operation, pa.string()), count))
    micros = arrow_numpy.arrow(np.array([_micros(observed_at)], dtype=np.int64)).cast(pa.timestamp("us", tz="UTC"))
    return table.append_column(CDC_TIMESTAMP, pa.repeat(micros[0], count))


def _micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware ``moment``."""
    since = utc(moment) - datetime(1970, 1, 1, tzinfo=UTC)
    return (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds
