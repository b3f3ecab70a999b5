"""The Spark driver's commit rules that need no cluster (snapcdc.spark.commit): which keys are stale
parts of a snapshot's outputs (never any other key), and the rows each merged output must hold."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from snapcdc.engine.spec import DiffStats
from snapcdc.lake.layout import Layout
from snapcdc.spark.commit import expected_feed_rows, stale_keys

KEY = "cdc/t/t_20260102_000000.parquet"
TEMPLATE = Layout.part_template(KEY)
parts = st.integers(min_value=0, max_value=99_999)
others = st.sampled_from(
    [
        KEY,
        "cdc/t/t_20260101_000000-part-00001.parquet",  # another snapshot's part
        "cdc/t/t_20260102_000000-part-00001.parquet.tmp",
        "cdc/t/t_20260102_000000-part-1.parquet",
        "cdc/u/t_20260102_000000-part-00001.parquet",
        "raw/t/snapshot=20260102T000000Z/t.csv",
    ]
)


@given(st.sets(parts), st.sets(parts), st.lists(others))
def test_stale_keys_are_this_templates_parts_not_kept(written: set[int], kept: set[int], noise: list[str]) -> None:
    # Given the keys listed under the template's prefix: parts of it, and look-alikes that are not
    listed = [Layout.part_key(KEY, p) for p in sorted(written)] + noise
    # When the stale ones are chosen, keeping this run's parts
    stale = stale_keys(listed, TEMPLATE, [Layout.part_key(KEY, p) for p in kept])
    # Then exactly the template's parts not kept: never a look-alike, never a kept key
    assert sorted(stale) == sorted(Layout.part_key(KEY, p) for p in written - kept)


def test_the_merged_outputs_hold_the_rows_the_counts_say() -> None:
    # Given a later snapshot's counts
    stats = DiffStats(10, 12, inserts=3, updates=2, deletes=1, quarantined=0, updates_without_date_bump=0,
                      date_only_updates=0, rows_snapshot=11)  # fmt: skip
    # Then the change set holds its changes, the changelog an update twice, DMS the changes
    assert expected_feed_rows(stats, first=False) == {"cdc": 6, "changelog": 8, "dms": 6}
    # and a first snapshot's feeds are its rows as inserts (it has no change set in the lake)
    assert expected_feed_rows(stats, first=True) == {"changelog": 11, "dms": 11}
