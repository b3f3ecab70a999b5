"""Operator repair (issue 21, finding 7): a feed file that is missing or unreadable does not block
``verify`` or ``replay``: verify names the broken object and the command that repairs it, and that
command (replay) rebuilds it from the run records and the snapshots."""

from __future__ import annotations

import json

import pytest
from snapcdc.cli import main

from tests.support import BUCKET, csv_bytes

S1, S2, S3 = "20260105T090000Z", "20260105T130000Z", "20260105T170000Z"
COLUMNS = ["id", "n", "nome"]
ROWS = {
    S1: [["a", 10, "Ana"], ["b", 20, "Bia"], ["c", 30, "Caio"]],
    S2: [["a", 11, "Ana"], ["b", 20, "Bia"], ["c", 30, "Caio"], ["d", 40, "Davi"]],
    S3: [["a", 11, "Ana"], ["b", 21, "Bia"], ["d", 41, "Davi"], ["e", 50, "Eva"]],
}
CONFIG = {
    "dataset": "o/d",
    "tables": [
        {
            "name": "pontos",
            "file": "pontos.csv",
            "delimiter": ";",
            "primary_key": ["id"],
            "outputs": {"changelog": True, "scd2": {}, "dms": True},
        }
    ],
}


@pytest.fixture
def lake(store, tmp_path) -> list[str]:
    config = tmp_path / "pipeline.json"
    config.write_text(json.dumps(CONFIG))
    args = ["--bucket", BUCKET, "--prefix", "lake", "--config", str(config)]
    for snap, rows in ROWS.items():
        export = tmp_path / f"{snap}.csv"
        export.write_bytes(csv_bytes(COLUMNS, rows))
        assert main(["ingest", *args, "--table", "pontos", "--snapshot", snap, str(export)]) == 0
    assert main(["verify", *args]) == 0
    return args


@pytest.mark.parametrize(
    ("key", "damage"),
    [
        ("lake/changelog/pontos/pontos_20260105_130000.parquet", "corrupt"),
        ("lake/changelog/pontos/pontos_20260105_130000.parquet", "delete"),
        ("lake/dms/pontos/20260105-130000000.parquet", "corrupt"),
        ("lake/scd2/pontos/pontos_current.parquet", "corrupt"),
        ("lake/cdc/pontos/pontos_20260105_130000.parquet", "corrupt"),
    ],
)
def test_verify_names_the_broken_object_and_its_repair_which_works(store, lake, capsys, key, damage):
    # Given a feed file damaged by hand
    if damage == "delete":
        store.client.delete_object(Bucket=BUCKET, Key=key)
    else:
        store.client.put_object(Bucket=BUCKET, Key=key, Body=b"PAR1 not really parquet")
    capsys.readouterr()
    # When verified
    assert main(["verify", *lake]) == 1
    line = capsys.readouterr().out.strip()
    # Then the line names the object and the command that repairs it
    assert line.startswith("FAIL pontos:"), line
    assert key in line, line
    repair = line.split("`")[1]
    assert repair.startswith("snapcdc replay --table pontos"), line
    # And that command, run as printed, repairs it
    assert main([*repair.split()[1:], *lake]) == 0
    assert main(["verify", *lake]) == 0
