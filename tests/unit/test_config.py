import json
import re

import pytest
from snapcdc.config import ConfigError, load_config, parse_config


def _table(**overrides):
    return {"name": "clientes", "file": "clientes.csv", "primary_key": ["idCliente"], **overrides}


def test_default_config_describes_the_real_loyalty_dataset():
    # Given / When
    config = load_config()
    # Then
    assert config.dataset == "teocalvo/teomewhy-loyalty-system"
    assert config.table_names == ["clientes", "produtos", "transacoes", "transacao_produto"]
    assert all(t.delimiter == ";" for t in config.tables)
    assert config.table("clientes").date_field == "DtAtualizacao"
    assert config.table("produtos").date_field is None
    assert config.table("transacao_produto").primary_key == ("idTransacaoProduto",)
    assert all(t.max_delete_ratio == 0.5 for t in config.tables)


def test_missing_primary_key_is_named_with_its_table_index():
    # Given
    data = {"dataset": "a/b", "tables": [_table(), {"name": "x", "file": "x.csv"}]}
    # When / Then
    with pytest.raises(ConfigError, match=r"tables\[1\]\.primary_key: Field required"):
        parse_config(data)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"delimiter": ";;"}, "delimiter", "single character"),
        ({"max_delete_ratio": 1.5}, "max_delete_ratio", "less than or equal to 1"),
        ({"file": "../etc/passwd"}, "file", "plain file name"),
        ({"name": "Bad Name"}, "name", "pattern"),
        ({"column_types": {"x": "decimal"}}, "column_types.x", "Input should be"),
        ({"unknown": 1}, "unknown", "Extra inputs"),
    ],
)
def test_invalid_table_fields_are_named(overrides, field, message):
    # Given
    data = {"dataset": "a/b", "tables": [_table(**overrides)]}
    # When / Then
    with pytest.raises(ConfigError) as error:
        parse_config(data, "pipeline.json")
    assert f"pipeline.json: tables[0].{field}:" in str(error.value)
    assert message in str(error.value)


def test_date_field_inside_primary_key_is_refused():
    with pytest.raises(ConfigError, match="date_field cannot be part of the primary_key"):
        parse_config({"dataset": "a/b", "tables": [_table(date_field="idCliente")]})


def test_duplicate_table_names_are_refused():
    with pytest.raises(ConfigError, match="table name used twice: clientes"):
        parse_config({"dataset": "a/b", "tables": [_table(), _table(file="other.csv")]})


def test_config_file_with_bad_json_names_the_line(tmp_path):
    # Given
    path = tmp_path / "pipeline.json"
    path.write_text('{\n  "dataset": "a/b",\n  "tables": [,]\n}')
    # When / Then
    with pytest.raises(ConfigError, match=r"pipeline.json: line 3: not valid JSON"):
        load_config(path)


def test_config_file_round_trip(tmp_path):
    # Given
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps({"dataset": "o/d", "tables": [_table(column_types={"qtdePontos": "int64"})]}))
    # When
    config = load_config(path)
    # Then
    assert config.table("clientes").column_types == {"qtdePontos": "int64"}
    with pytest.raises(KeyError, match="not in the pipeline config"):
        config.table("nope")


def test_the_default_zip_total_can_bite():
    # Given the packaged config (the extract streams the archive to S3: /tmp no longer bounds it)
    config = load_config()
    # Then the total cap is smaller than every table at its member cap (else it could never be exceeded)
    assert config.max_total_bytes < len(config.tables) * config.max_member_bytes


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"max_total_bytes": 0}, "max_total_bytes: Input should be greater than 0"),
        ({"max_member_bytes": "2 GiB"}, "max_member_bytes: Input should be a valid integer"),
    ],
)
def test_invalid_zip_limits_are_named(limits, message):
    # Given
    data = {"dataset": "a/b", "tables": [_table()], **limits}
    # When / Then
    with pytest.raises(ConfigError) as error:
        parse_config(data, "pipeline.json")
    assert message in str(error.value)
    assert str(error.value).startswith("invalid pipeline config\npipeline.json: ")


def _with_outputs(outputs):
    return {"dataset": "a/b", "tables": [{"name": "t", "file": "t.csv", "primary_key": ["id"], "outputs": outputs}]}


def test_no_feed_unless_a_table_asks_for_one():
    table = parse_config(_with_outputs({})).tables[0]
    assert table.outputs.enabled == []
    assert (
        parse_config({"dataset": "a/b", "tables": [{"name": "t", "file": "t.csv", "primary_key": ["id"]}]})
        .tables[0]
        .outputs.enabled
        == []
    )


def test_feeds_are_enabled_per_table():
    outputs = (
        parse_config(_with_outputs({"changelog": True, "scd2": {"track_history_columns": ["name"]}, "dms": True}))
        .tables[0]
        .outputs
    )
    assert outputs.enabled == ["changelog", "scd2", "dms"]
    assert outputs.scd2 is not None and outputs.scd2.track_history_columns == ("name",)
    assert parse_config(_with_outputs({"scd2": True})).tables[0].outputs.scd2.track_history_columns is None


@pytest.mark.parametrize(
    ("outputs", "where"),
    [
        ({"changelg": True}, "tables[0].outputs.changelg"),
        ({"scd2": {"track": ["x"]}}, "tables[0].outputs.scd2.track"),
        ({"scd2": {"track_history_columns": []}}, "tables[0].outputs.scd2.track_history_columns"),
        ({"dms": "maybe"}, "tables[0].outputs.dms"),
        ({"scd2": {"track_history_columns": ["id"]}}, "track_history_columns cannot name a primary_key column"),
    ],
)
def test_a_wrong_feed_setting_is_named(outputs, where):
    with pytest.raises(ConfigError, match=re.escape(where)):
        parse_config(_with_outputs(outputs))
