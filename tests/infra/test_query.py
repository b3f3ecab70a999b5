"""Issue #4: the Glue database (its tables follow the data at run time), and the Athena workgroup."""

from __future__ import annotations

from .cfn_helpers import render
from .synthesis import Synth


def test_the_database_is_in_the_template_and_its_tables_are_not(synth: Synth) -> None:
    # Given the Glue catalog resources of the template
    (database,) = synth.resources("AWS::Glue::Database").values()
    # Then the database is there and no table: the CDC function creates and updates the tables at run
    # time, typed as the Parquet it writes (snapcdc.cdc.catalog), so a column added to the data reaches Glue
    assert database["Properties"]["DatabaseInput"]["Name"] == "snapcdc"
    assert synth.resources("AWS::Glue::Table") == {}


def test_the_cdc_function_is_told_the_database(synth: Synth) -> None:
    # Given the CDC function's environment
    environment = synth.resource("CdcFunction")["Properties"]["Environment"]["Variables"]
    # Then it names the database the stack creates
    assert environment["GLUE_DATABASE"] == "snapcdc"


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
