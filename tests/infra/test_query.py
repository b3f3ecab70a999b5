"""Issue #4: Glue tables generated from the pipeline config, and the Athena workgroup."""

from __future__ import annotations

from typing import Any

from snapcdc.config import load_config

from stacks.constructs.query import GLUE_TYPES

from .cfn_helpers import render
from .synthesis import Synth


def _tables(synth: Synth) -> dict[str, dict[str, Any]]:
    return {
        t["Properties"]["TableInput"]["Name"]: t["Properties"]["TableInput"]
        for t in synth.resources("AWS::Glue::Table").values()
    }


def test_database_and_three_tables_per_configured_table(synth: Synth) -> None:
    # Given the packaged pipeline config
    config = load_config()
    # When reading the Glue catalog resources
    (database,) = synth.resources("AWS::Glue::Database").values()
    tables = _tables(synth)
    # Then one database holds <table>_cdc, _snapshots and _full_load for every configured table
    assert database["Properties"]["DatabaseInput"]["Name"] == "snapcdc"
    expected = {f"{t.name}_{kind}" for t in config.tables for kind in ("cdc", "snapshots", "full_load")}
    assert set(tables) == expected


def test_columns_are_typed_from_the_config(synth: Synth) -> None:
    # Given each table's column_types in the config
    tables = _tables(synth)
    for table in load_config().tables:
        for kind in ("snapshots", "full_load"):
            columns = {c["Name"]: c["Type"] for c in tables[f"{table.name}_{kind}"]["StorageDescriptor"]["Columns"]}
            # Then the Glue columns map string/int64/timestamp/... to Athena types
            assert columns == {name.lower(): GLUE_TYPES[kind_] for name, kind_ in table.column_types.items()}


def test_cdc_tables_add_operation_and_timestamp(synth: Synth) -> None:
    # Given a cdc table
    columns = _tables(synth)["clientes_cdc"]["StorageDescriptor"]["Columns"]
    by_name = {c["Name"]: c["Type"] for c in columns}
    # Then it has the table's columns plus _cdc_operation and _cdc_timestamp, last
    assert [c["Name"] for c in columns[-2:]] == ["_cdc_operation", "_cdc_timestamp"]
    assert by_name["_cdc_operation"] == "string"
    assert by_name["_cdc_timestamp"] == "timestamp"
    assert by_name["idcliente"] == "string"
    assert by_name["qtdepontos"] == "bigint"
    assert by_name["dtatualizacao"] == "timestamp"


def test_tables_are_parquet_over_the_pipeline_prefixes(synth: Synth) -> None:
    # Given the tables' storage
    tables = _tables(synth)
    bucket = "s3://snapcdc-data-${AWS::AccountId}-${AWS::Region}"
    # Then each reads Parquet at its prefix
    assert render(tables["clientes_cdc"]["StorageDescriptor"]["Location"]) == f"{bucket}/cdc/clientes/"
    assert render(tables["clientes_full_load"]["StorageDescriptor"]["Location"]) == f"{bucket}/full-load/clientes/"
    for table in tables.values():
        assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
        assert table["TableType"] == "EXTERNAL_TABLE"


def test_snapshot_tables_use_injected_partition_projection(synth: Synth) -> None:
    # Given a snapshots table
    table = _tables(synth)["clientes_snapshots"]
    params = table["Parameters"]
    # Then its snapshot partition is projected (no crawler, no MSCK REPAIR)
    assert table["PartitionKeys"] == [{"Name": "snapshot", "Type": "string"}]
    assert params["projection.enabled"] == "true"
    assert params["projection.snapshot.type"] == "injected"
    assert render(params["storage.location.template"]).endswith("/snapshots/clientes/snapshot=${snapshot}/")


def test_table_locations_honour_data_prefix(custom_synth: Synth) -> None:
    # Given data_prefix=lake/ and bucket_name=acme-snapcdc-lake
    location = render(_tables(custom_synth)["clientes_cdc"]["StorageDescriptor"]["Location"])
    # Then the location includes the prefix
    assert location == "s3://acme-snapcdc-lake/lake/cdc/clientes/"


def test_athena_workgroup_enforces_kms_encrypted_results(synth: Synth) -> None:
    # Given the workgroup
    (workgroup,) = synth.resources("AWS::Athena::WorkGroup").values()
    config = workgroup["Properties"]["WorkGroupConfiguration"]
    results = config["ResultConfiguration"]
    key_id = results["EncryptionConfiguration"]["KmsKey"]["Fn::GetAtt"][0]
    # Then clients cannot override it, and results are SSE-KMS with the data key under athena-results/
    assert config["EnforceWorkGroupConfiguration"] is True
    assert results["EncryptionConfiguration"]["EncryptionOption"] == "SSE_KMS"
    assert synth.resource(key_id)["Type"] == "AWS::KMS::Key"
    assert render(results["OutputLocation"]).endswith("/athena-results/")
