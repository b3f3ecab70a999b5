"""diff_files runs with Python's cycle collector paused, and leaves it as it found it."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from snapcdc.engine import InputError, TableSpec, api, diff_files

OBSERVED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SPEC = TableSpec(primary_key=("id",), date_field="updated")


def _csv(path: Path, rows: int, bump: int = 0) -> Path:
    lines = ["id,name,amount,updated"]
    amount = [i * 3 + (bump if i % 10 == 0 else 0) for i in range(rows)]
    lines += [f"{i},n{i % 97},{amount[i]},2026-01-0{1 + i % 9} 10:00:00" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def collector_on() -> Iterator[None]:
    was_on = gc.isenabled()
    gc.enable()
    yield
    if not was_on:
        gc.disable()


@pytest.fixture
def collector_during_diff(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether the collector was on when the diff proper (run_diff) started, once per diff."""
    seen: list[bool] = []
    real = api.run_diff

    def observed(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "run_diff", observed)
    return seen


@pytest.mark.usefixtures("collector_on")
def test_the_collector_is_off_during_a_diff_and_on_again_after(
    tmp_path: Path, collector_during_diff: list[bool]
) -> None:
    # Given two 2,000-row snapshots, the second updating every tenth row, and the collector on
    old, new = _csv(tmp_path / "old.csv", 2_000), _csv(tmp_path / "new.csv", 2_000, bump=1)
    # When the files are diffed
    outcome = diff_files(old=old, new=new, spec=SPEC, observed_at=OBSERVED, out_dir=tmp_path / "out")
    # Then the diff is right, both its passes ran with the collector off, and it is on again
    assert outcome.stats.updates == 200
    assert collector_during_diff == [False, False]  # the old CSV accepted, then the diff
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_on")
def test_a_failed_diff_leaves_the_collector_on(tmp_path: Path) -> None:
    # Given a new file with a short row
    old = _csv(tmp_path / "old.csv", 10)
    new = tmp_path / "new.csv"
    new.write_text("id,name,amount,updated\n1,a\n")
    # When diffed, it fails; then the collector is on again
    with pytest.raises(InputError):
        diff_files(old=old, new=new, spec=SPEC, observed_at=OBSERVED, out_dir=tmp_path / "out")
    assert gc.isenabled()


def test_a_diff_leaves_a_paused_collector_paused(tmp_path: Path) -> None:
    # Given a caller that has turned the collector off
    old, new = _csv(tmp_path / "old.csv", 100), _csv(tmp_path / "new.csv", 100, bump=1)
    gc.disable()
    try:
        # When a diff runs
        diff_files(old=old, new=new, spec=SPEC, observed_at=OBSERVED, out_dir=tmp_path / "out")
        # Then it is still off
        assert not gc.isenabled()
    finally:
        gc.enable()
