"""The plan that groups a Spark run's small change parts into files of about CHANGE_FILE_BYTES
(snapcdc.spark.merge.plan): every part in exactly one file, in order, no file over the limit unless it
is one part, and no two neighbouring files that would fit in one."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st
from snapcdc.spark.merge import CHANGE_FILE_BYTES, plan

sizes = st.lists(st.integers(min_value=0, max_value=400), max_size=60)
limits = st.integers(min_value=1, max_value=500)


@given(sizes, limits)
def test_every_part_is_in_exactly_one_file_in_order(parts: list[int], limit: int) -> None:
    # Given parts of any sizes and a limit
    # When planned
    files = plan(parts, limit)
    # Then the files, read in order, hold every part once and in order, numbered 0..n-1
    assert [i for f in files for i in f.sources] == list(range(len(parts)))
    assert [f.part for f in files] == list(range(len(files)))


@given(sizes, limits)
def test_no_file_is_over_the_limit_unless_it_is_one_part(parts: list[int], limit: int) -> None:
    # Given / When
    files = plan(parts, limit)
    # Then a file over the limit holds a single part (one bigger than the limit)
    for file in files:
        held = sum(parts[i] for i in file.sources)
        assert held <= limit or len(file.sources) == 1


@given(sizes, limits)
def test_no_file_could_take_the_next_files_first_part(parts: list[int], limit: int) -> None:
    # Given / When
    files = plan(parts, limit)
    # Then each file was closed only because the next part did not fit: as few files as first fit gives
    for file, following in itertools.pairwise(files):
        held = sum(parts[i] for i in file.sources)
        assert held + parts[following.sources[0]] > limit


def test_no_part_is_one_empty_file() -> None:
    # Given no part at all (a run whose change set is empty)
    # When planned
    files = plan([])
    # Then one file, holding nothing: it still says the schema
    assert len(files) == 1 and files[0].sources == ()


def test_many_small_parts_make_few_files() -> None:
    # Given 4,000 buckets' change parts of 100 KB each (400 MB)
    parts = [100_000] * 4_000
    # When planned with the default size
    files = plan(parts)
    # Then about 400 MB / 128 MiB files
    assert len(files) == -(-sum(parts) // (CHANGE_FILE_BYTES // 100_000 * 100_000))
    assert len(files) == 3
