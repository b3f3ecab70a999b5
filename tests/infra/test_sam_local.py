"""`sam local invoke` needs fixed logical ids, asset paths in the template, and real events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stacks.kaggle_layer import REPO_ROOT

from .synthesis import Synth

EVENTS = REPO_ROOT / "tests" / "events"


@pytest.mark.parametrize(
    ("logical_id", "source_dir"), [("ExtractFunction", "lambdas/extract"), ("CdcFunction", "lambdas/cdc")]
)
def test_functions_have_fixed_logical_ids_and_staged_code(synth: Synth, logical_id: str, source_dir: str) -> None:
    # Given the function by its fixed logical id
    resource = synth.resource(logical_id)
    asset_path = resource["Metadata"]["aws:asset:path"]
    staged = synth.outdir / asset_path
    # Then its code asset is staged in the cloud assembly and listed in the assets manifest,
    # with the same Python files as the source folder
    assert resource["Type"] == "AWS::Lambda::Function"
    assert resource["Metadata"]["aws:asset:property"] == "Code"
    assert staged.is_dir()
    source_files = {p.relative_to(REPO_ROOT / source_dir) for p in (REPO_ROOT / source_dir).rglob("*.py")}
    staged_files = {p.relative_to(staged) for p in staged.rglob("*.py")}
    assert source_files == staged_files
    manifest = json.loads((synth.outdir / f"{synth.stack.artifact_id}.assets.json").read_text(encoding="utf-8"))
    assert asset_path in {f["source"]["path"] for f in manifest["files"].values()}


def test_s3_event_file_is_an_object_created_notification_for_a_raw_csv() -> None:
    # Given the S3 event used with `sam local invoke CdcFunction`
    event = json.loads((EVENTS / "s3_object_created.json").read_text(encoding="utf-8"))
    (record,) = event["Records"]
    # Then it is a real ObjectCreated:Put record for a raw CSV key (URL-encoded as S3 sends it)
    assert record["eventSource"] == "aws:s3"
    assert record["eventName"].startswith("ObjectCreated:")
    key = record["s3"]["object"]["key"].replace("%3D", "=")
    assert key == "raw/clientes/snapshot=20260101T000000Z/clientes.csv"


def test_docs_give_the_sam_local_invoke_commands() -> None:
    # Given docs/deploy.md
    text = (REPO_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    # Then both invoke commands name the logical ids, the synthesized template and the event files
    for line in (
        "sam local invoke ExtractFunction -t cdk.out/SnapCdc.template.json -e tests/events/eventbridge_schedule.json",
        "sam local invoke CdcFunction -t cdk.out/SnapCdc.template.json -e tests/events/s3_object_created.json",
    ):
        assert line in text
    assert Path(EVENTS / "eventbridge_schedule.json").is_file()
