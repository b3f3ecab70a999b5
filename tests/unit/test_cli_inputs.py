"""What the console script takes from its user: delimiters as a shell passes them, the kaggle
client's own credential file for ``snapcdc run`` (issue 21, findings 8 and 10)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from snapcdc.cli_failure import CliError
from snapcdc.cli_inputs import delimiter, kaggle_credentials, utf8_copy


@pytest.mark.parametrize(("typed", "meant"), [("\\t", "\t"), ("tab", "\t"), ("\t", "\t"), (";", ";"), ("|", "|")])
def test_a_delimiter_as_typed_in_a_shell(typed: str, meant: str) -> None:
    assert delimiter(typed) == meant


@pytest.mark.parametrize("typed", [";;", "", '"', "\\n"])
def test_a_delimiter_that_is_not_one_character_is_refused(typed: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not one character"):
        delimiter(typed)


def test_the_environment_wins(tmp_path: Path) -> None:
    env = {"KAGGLE_USERNAME": "u", "KAGGLE_KEY": "k"}
    assert kaggle_credentials(env, tmp_path)[:2] == ("u", "k")


def test_the_kaggle_clients_own_file_is_read(tmp_path: Path) -> None:
    # Given ~/.kaggle/kaggle.json as the Kaggle site hands it out, and no environment
    (tmp_path / ".kaggle").mkdir()
    (tmp_path / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": "ana", "key": "s3cr3t"}))
    # When / Then
    assert kaggle_credentials({}, tmp_path) == ("ana", "s3cr3t", str(tmp_path / ".kaggle" / "kaggle.json"))


def test_kaggle_config_dir_names_the_folder(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "kaggle.json").write_text(json.dumps({"username": "bia", "key": "k2"}))
    assert kaggle_credentials({"KAGGLE_CONFIG_DIR": str(tmp_path / "conf")}, tmp_path / "home")[:2] == ("bia", "k2")


def test_no_credentials_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(CliError, match=r"\.kaggle/kaggle\.json"):
        kaggle_credentials({}, tmp_path)


def test_a_latin1_file_is_read_as_utf8_from_a_copy(tmp_path: Path) -> None:
    source = tmp_path / "l.csv"
    source.write_bytes("id;nome\n1;João\n".encode("latin-1"))
    copy = utf8_copy(source, "latin-1", tmp_path)
    assert copy != source and copy.read_text(encoding="utf-8") == "id;nome\n1;João\n"
    assert source.read_bytes() == "id;nome\n1;João\n".encode("latin-1")  # the user's file untouched
