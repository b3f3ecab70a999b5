"""Inputs are read as what they are (issue 21, findings 2, 3, 6 and 9): a Parquet file argument is that
file (no hive partition discovery), every column a spec names is checked against the header with the
closest match suggested, keys compare as text whatever they look like."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from snapcdc.config import TableConfig
from snapcdc.engine import InputError, TableSpec, diff_files, diff_tables
from snapcdc.engine.hash_columns import data_only

from tests.unit.engine.diff_model import csv_table as read_bytes_as_csv

OBSERVED = datetime(2026, 1, 5, 9, tzinfo=UTC)


def test_a_parquet_in_a_hive_style_folder_gets_no_partition_column(tmp_path: Path) -> None:
    # Given the same rows as a CSV and as a Parquet inside snapshot=.../ (the layout snapcdc writes)
    rows = pa.table({"id": ["a", "b", "c"], "v": ["1", "2", "3"]})
    folder = tmp_path / "snapshot=20260101T000000Z"
    folder.mkdir()
    pq.write_table(rows, folder / "t.parquet")
    (tmp_path / "t.csv").write_text("id,v\na,1\nb,2\nc,3\n")
    spec = TableSpec(primary_key=("id",))
    # When the Parquet is diffed against the CSV
    outcome = diff_files(
        old=tmp_path / "t.csv", new=folder / "t.parquet", spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "o"
    )
    # Then nothing changed: no `snapshot` column, no false update
    assert outcome.stats.updates == 0 and outcome.stats.inserts == 0
    assert outcome.schema_changes == []
    assert "snapshot" not in outcome.schema.names


@pytest.mark.parametrize(
    "keys", [("1.0", "1.00"), ("7", "007"), ("1e3", "1000"), ("2025-01-01 00:00", "2025-01-01T00:00")]
)
def test_two_key_texts_are_two_keys_whatever_they_look_like(keys: tuple[str, str]) -> None:
    # Given two rows whose keys are different texts that parse to the same number or time
    text = f"id,v\n{keys[0]},x\n{keys[1]},y\n".encode()
    # When loaded
    result = diff_tables(None, read_bytes_as_csv(text), TableSpec(primary_key=("id",)), OBSERVED)
    # Then both are kept, as written, in a text key column
    assert result.quarantine is None
    assert result.schema.field("id").type == pa.string()
    assert sorted(data_only(result.snapshot)["id"].to_pylist()) == sorted(keys)


def test_a_configured_key_type_is_kept() -> None:
    spec = TableSpec(primary_key=("id",), column_types={"id": "int64"})
    result = diff_tables(None, read_bytes_as_csv(b"id,v\n1,x\n2,y\n"), spec, OBSERVED)
    assert result.schema.field("id").type == pa.int64()


def test_a_key_stored_as_a_number_becomes_text_without_false_changes() -> None:
    # Given a snapshot whose key was stored as int64 (configured then)
    first = diff_tables(
        None, read_bytes_as_csv(b"id,v\n1,x\n2,y\n"), TableSpec(("id",), column_types={"id": "int64"}), OBSERVED
    )
    # When the same rows come with the key no longer configured
    second = diff_tables(first.snapshot, read_bytes_as_csv(b"id,v\n1,x\n2,y\n"), TableSpec(("id",)), OBSERVED)
    # Then the key is text, recorded as a retype, and nothing changed
    assert second.schema.field("id").type == pa.string()
    assert second.schema_changes == [{"column": "id", "change": "retyped", "from": "int64", "to": "string"}]
    assert (second.stats.inserts, second.stats.updates, second.stats.deletes) == (0, 0, 0)


@pytest.mark.parametrize(
    ("spec", "header", "expected"),
    [
        (TableSpec(("idCliente",)), "IdCliente;v",
         "primary key column 'idCliente' is not in the header (did you mean 'IdCliente'?)"),
        (TableSpec(("id",), date_field="DtAtualizacao"), "id;DtAtualizaco",
         "date field 'DtAtualizacao' is not in the header (did you mean 'DtAtualizaco'?)"),
        (TableSpec(("id",), date_field="updated"), "id;v",
         "date field 'updated' is not in the header; the header has: id, v"),
        (TableSpec(("id",), history_columns=("qtdPontos",)), "id;qtdePontos",
         "SCD2 tracked column 'qtdPontos' is not in the header (did you mean 'qtdePontos'?)"),
        (TableSpec(("id",), delimiter=";"), "id\tname\tv",
         "1 column found with delimiter ';'; the file looks tab-separated (delimiter '\\\\t')"),
    ],
)  # fmt: skip
def test_a_column_the_spec_names_must_be_in_the_header(tmp_path: Path, spec, header, expected) -> None:
    # Given a file whose header lacks a named column
    path = tmp_path / "new.csv"
    path.write_text(header + "\n" + ";".join("1" for _ in header.split(";")) + "\n")
    # When / Then refused at line 1 with the closest column
    with pytest.raises(InputError) as refused:
        diff_files(old=None, new=path, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "o")
    assert refused.value.line == 1
    assert expected in refused.value.problem


def test_the_configs_tracked_columns_reach_the_check() -> None:
    table = TableConfig(
        name="t", file="t.csv", primary_key=("id",), outputs={"scd2": {"track_history_columns": ["qtdePontos"]}}
    )
    assert TableSpec.from_config(table).history_columns == ("qtdePontos",)
