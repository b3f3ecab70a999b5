"""The Spark bench's inputs: the demo's ``transacoes`` table (``snapcdc_dev.sample_data``: its columns,
``;``-separated, millisecond timestamps, points as quantity x value, its five source systems) at 1M to
50M rows, and the next snapshot after one publisher cycle of it (``TRANSACTION_CYCLE``: 1% of the rows
updated, a refund flipping the points' sign; 0.5% deleted; 5% of what is left inserted).

Written in chunks of a million rows, each drawn from its own seed, so memory stays flat at any size and
a size's files are the same on every machine. Cached under ``.bench-data/`` with the counts the diff
must find (``expected.json``, written last: a half-written size is made again).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from snapcdc_dev.sample_data import (
    POINT_QUANTITIES,
    POINT_VALUES,
    SYSTEMS,
    TRANSACOES_COLUMNS,
    TRANSACTION_CYCLE,
)

from bench.engine_bench import DATA

KEY = TRANSACOES_COLUMNS[0]  # IdTransacao
DELIMITER = ";"
CHUNK_ROWS = 1_000_000
CLIENTS_PER_TRANSACTION = 0.1  # a client makes ten transactions on average
NOW = np.datetime64("2026-01-05T09:00:00", "ms")
DAY_MS = 86_400_000
_HEX = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)), np.uint8).reshape(256, 2)


@dataclass(frozen=True)
class Inputs:
    """A size's two snapshots and what diffing them must find."""

    rows: int
    old: Path
    new: Path
    inserts: int
    updates: int
    deletes: int

    @property
    def new_rows(self) -> int:
        return self.rows - self.deletes + self.inserts


def _uuid_text(raw: np.ndarray) -> pa.Array:
    """UUID4 strings (8-4-4-4-12) of 16 random bytes per row, made without a Python loop."""
    raw = raw.copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexed = _HEX[raw].reshape(len(raw), 32)
    text = np.full((len(raw), 36), ord("-"), np.uint8)
    for start, stop, at in ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19), (20, 32, 24)):
        text[:, at : at + stop - start] = hexed[:, start:stop]
    offsets = np.arange(0, 36 * (len(raw) + 1), 36, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), len(raw), [None, pa.py_buffer(offsets), pa.py_buffer(text)])


def _splitmix(values: np.ndarray) -> np.ndarray:
    z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return np.asarray(z ^ (z >> np.uint64(31)))


def _client_ids(numbers: np.ndarray) -> pa.Array:
    """A client's id, the same UUID wherever its number appears."""
    words = np.stack([_splitmix(2 * numbers), _splitmix(2 * numbers + 1)], axis=1)
    return _uuid_text(np.ascontiguousarray(words).view(np.uint8).reshape(len(numbers), 16))


def _transactions(rng: np.random.Generator, count: int, clients: int, days_back: float) -> pa.Table:
    """``count`` transactions made in the ``days_back`` days before :data:`NOW`."""
    created = NOW - rng.integers(0, int(days_back * DAY_MS), count).astype("timedelta64[ms]")
    quantity = np.array(POINT_QUANTITIES)[rng.integers(0, len(POINT_QUANTITIES), count)]
    value = np.array(POINT_VALUES)[rng.integers(0, len(POINT_VALUES), count)]
    columns = [
        _uuid_text(rng.integers(0, 256, (count, 16), dtype=np.uint8)),
        _client_ids(rng.integers(0, clients, count)),
        pc.strftime(pa.array(created), format="%Y-%m-%d %H:%M:%S"),  # milliseconds, as the publisher
        pa.array(quantity * value),
        pa.array(SYSTEMS).take(pa.array(rng.integers(0, len(SYSTEMS), count))),
    ]
    return pa.table(columns, names=list(TRANSACOES_COLUMNS))


def _next_cycle(rng: np.random.Generator, old: pa.Table, clients: int) -> tuple[pa.Table, int, int, int]:
    """The chunk after one cycle: (new rows, inserts, updates, deletes)."""
    cycle = TRANSACTION_CYCLE
    kept = old.filter(pa.array(rng.random(old.num_rows) >= 1 / cycle.delete_one_in))
    flipped = rng.random(kept.num_rows) < 1 / cycle.update_one_in
    points = kept.column("QtdePontos")
    kept = kept.set_column(3, "QtdePontos", pc.if_else(pa.array(flipped), pc.negate(points), points))
    inserted = _transactions(rng, kept.num_rows // cycle.insert_one_in, clients, 1 / 6)  # the last 4 hours
    deletes = old.num_rows - kept.num_rows
    return pa.concat_tables([kept, inserted]), inserted.num_rows, int(flipped.sum()), deletes


def inputs(rows: int, folder: Path | None = None, seed: int = 22) -> Inputs:
    """The two CSV snapshots of ``rows`` rows (made once, then read from the cache)."""
    folder = folder or DATA / f"spark-transacoes-{rows}"
    expected = folder / "expected.json"
    if expected.is_file():
        return Inputs(**{**json.loads(expected.read_text()), "old": folder / "old.csv", "new": folder / "new.csv"})
    folder.mkdir(parents=True, exist_ok=True)
    clients = max(1, int(rows * CLIENTS_PER_TRANSACTION))
    counts = {"inserts": 0, "updates": 0, "deletes": 0}
    options = pacsv.WriteOptions(delimiter=DELIMITER, include_header=True, quoting_style="none")  # as csv.writer
    schema = None
    old_writer = new_writer = None
    try:
        for chunk, start in enumerate(range(0, rows, CHUNK_ROWS)):
            rng = np.random.default_rng([seed, rows, chunk])
            old = _transactions(rng, min(CHUNK_ROWS, rows - start), clients, 400)
            new, inserts, updates, deletes = _next_cycle(rng, old, clients)
            if schema is None:
                schema = old.schema
                old_writer = pacsv.CSVWriter(folder / "old.csv", schema, write_options=options)
                new_writer = pacsv.CSVWriter(folder / "new.csv", schema, write_options=options)
            assert old_writer is not None and new_writer is not None
            old_writer.write_table(old)
            new_writer.write_table(new.cast(schema))
            for name, count in zip(counts, (inserts, updates, deletes), strict=True):
                counts[name] += count
    finally:
        for handle in (old_writer, new_writer):
            if handle is not None:
                handle.close()
    made = Inputs(rows, folder / "old.csv", folder / "new.csv", **counts)
    expected.write_text(json.dumps({k: v for k, v in asdict(made).items() if k not in {"old", "new"}}))
    return made
