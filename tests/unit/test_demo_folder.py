"""``snapcdc demo --out``: the demo writes only into a folder it may call its own and, on a rerun,
removes only what it wrote there (finding 1 of issue 21)."""

from __future__ import annotations

from pathlib import Path

import pytest
from snapcdc.cli import main
from snapcdc_dev.demo_folder import MARKER, DemoFolder, DemoFolderError


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    home = tmp_path / "home"
    checkout = home / "src" / "snapcdc"
    cwd = home / "work" / "project"
    for folder in (checkout, cwd):
        folder.mkdir(parents=True)
        (folder / "precious.txt").write_text("mine")
    return {"home": home, "checkout": checkout, "cwd": cwd}


def _claim(out: Path, places: dict[str, Path]) -> DemoFolder:
    return DemoFolder.claim(out, cwd=places["cwd"], home=places["home"], checkout=places["checkout"])


def test_a_new_folder_is_made_and_marked(places):
    # Given a folder that does not exist
    out = places["cwd"] / "demo-output"
    # When claimed and a file written
    folder = _claim(out, places)
    folder.file("cdc/a.parquet").write_bytes(b"x")
    folder.seal()
    # Then it exists with the marker listing the file
    assert (out / MARKER).is_file()
    assert "cdc/a.parquet" in (out / MARKER).read_text()


def test_a_non_empty_folder_the_demo_did_not_make_is_refused_untouched(places):
    # Given a folder holding the user's files
    out = places["cwd"] / "reports"
    out.mkdir()
    (out / "q3.xlsx").write_text("numbers")
    # When / Then refused, nothing changed
    with pytest.raises(DemoFolderError, match="not empty and was not made by the demo"):
        _claim(out, places)
    assert sorted(p.name for p in out.iterdir()) == ["q3.xlsx"]


def test_an_empty_folder_is_taken(places):
    out = places["cwd"] / "empty"
    out.mkdir()
    _claim(out, places)
    assert (out / MARKER).is_file()


def test_a_rerun_removes_only_what_the_demo_wrote(places):
    # Given a folder an earlier demo wrote, where the user then added a file
    out = places["cwd"] / "demo-output"
    first = _claim(out, places)
    first.file("cdc/clientes/a.parquet").write_bytes(b"demo")
    first.file("logs/lambda.jsonl").write_text("{}")
    first.seal()
    (out / "cdc" / "clientes" / "notes.txt").write_text("the user's")
    # When a new demo claims it
    _claim(out, places)
    # Then the demo's files are gone and the user's file stays
    assert (out / "cdc" / "clientes" / "notes.txt").read_text() == "the user's"
    assert not (out / "cdc" / "clientes" / "a.parquet").exists()
    assert not (out / "logs").exists()


@pytest.mark.parametrize(
    ("which", "why"),
    [
        ("checkout", "is the snapcdc checkout"),
        ("home", "is your home folder"),
        ("cwd", "is the working directory"),
    ],
)
def test_the_checkout_home_and_working_directory_are_refused_even_with_a_marker(places, which, why):
    # Given the place, marked as if a demo had written there
    out = places[which]
    (out / MARKER).write_text('{"owner": "snapcdc demo", "files": ["precious.txt"]}')
    # When / Then refused, nothing removed
    with pytest.raises(DemoFolderError, match=why):
        _claim(out, places)
    assert (out / "precious.txt").exists() or which == "home"


def test_a_parent_of_the_working_directory_is_refused(places):
    with pytest.raises(DemoFolderError, match="is a parent of the working directory"):
        _claim(places["cwd"].parent, places)


def test_a_parent_of_the_checkout_is_refused(places):
    with pytest.raises(DemoFolderError, match="is a parent of the snapcdc checkout"):
        _claim(places["checkout"].parent, places)


def test_a_relative_dot_is_the_working_directory(places, monkeypatch):
    monkeypatch.chdir(places["cwd"])
    with pytest.raises(DemoFolderError, match="is the working directory"):
        _claim(Path("."), places)


def test_the_cli_refuses_with_exit_3_and_one_line(tmp_path, monkeypatch, capsys):
    # Given a non-empty folder of the user's
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    monkeypatch.chdir(tmp_path)
    # When the demo is pointed at it
    code = main(["demo", "--out", str(out)])
    # Then exit 3, one line with the fix, the file kept
    err = capsys.readouterr().err
    assert code == 3
    assert err.count("\n") == 1 and "choose a new or empty folder" in err
    assert (out / "keep.txt").read_text() == "keep"


@pytest.mark.parametrize("count", ["2", "25", "x"])
def test_demo_snapshots_out_of_range_is_refused_not_clamped(count, capsys):
    assert main(["demo", "--snapshots", count]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--snapshots" in err
