"""checkov (CloudFormation checks, offline) on the synthesized stack: no failed check, every skip reasoned."""

from __future__ import annotations

import pytest

from stacks.checkov import MIN_REASON_LENGTH
from stacks.checkov_scan import ScanResult, scan

from .synthesis import Synth

# Each skip is a decision a reviewer signed off (the reasons are in the template's metadata);
# a new one must be added here on purpose.
EXPECTED_SKIPS = {
    ("CKV_AWS_18", "AWS::S3::Bucket.StorageAccessLogBucket76E80A12"),
    ("CKV_AWS_27", "AWS::SQS::Queue.ExtractHandlerDeadLetterQueueB1DBADCB"),
    ("CKV_AWS_27", "AWS::SQS::Queue.CdcHandlerDeadLetterQueue2EF6422E"),
    ("CKV_AWS_27", "AWS::SQS::Queue.SparkStateHandlerDeadLetterQueue55EB6815"),
    *((check, f"AWS::Lambda::Function.{fn}") for check in ("CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173")
      for fn in ("ExtractFunction", "CdcFunction", "SparkStateFunction")),
}  # fmt: skip


@pytest.fixture(scope="module")
def checkov_result(synth: Synth) -> ScanResult:
    (template,) = synth.outdir.glob("*.template.json")
    return scan(template)


def test_checkov_reports_no_failed_check(checkov_result: ScanResult) -> None:
    # Given checkov's CloudFormation checks run on the template `make synth` writes
    # Then they ran and none failed
    assert checkov_result.passed > 50
    assert checkov_result.parsing_errors == 0
    assert [f.line() for f in checkov_result.failed] == []


def test_checkov_skips_are_the_reviewed_ones_each_with_its_reason(checkov_result: ScanResult) -> None:
    # Given the checks checkov skipped because of the template's metadata
    skipped = {(f.check_id, f.resource) for f in checkov_result.skipped}
    # Then they are exactly the reviewed skips, and checkov read a reason for each
    assert skipped == EXPECTED_SKIPS
    assert all(len(f.reason) >= MIN_REASON_LENGTH for f in checkov_result.skipped)


def test_every_checkov_skip_in_the_template_has_a_reason(synth: Synth) -> None:
    # Given every checkov skip written into the template's resource metadata
    skips = [
        skip
        for resource in synth.template["Resources"].values()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    # Then each names a check and carries a reason a reviewer can check
    assert skips
    for skip in skips:
        assert skip["id"].startswith("CKV_"), skip
        assert len(skip.get("comment", "").strip()) >= MIN_REASON_LENGTH, skip


def test_log_groups_are_encrypted_with_the_log_key_that_only_logs_of_this_account_use(synth: Synth) -> None:
    # Given the functions' log groups and the stack's keys (CKV_AWS_158 fixed, not skipped)
    groups = synth.resources("AWS::Logs::LogGroup")
    key_ids = {g["Properties"]["KmsKeyId"]["Fn::GetAtt"][0] for g in groups.values()}
    # Then all three (extract, CDC, the Spark job's state handler) use one key, whose policy lets CloudWatch
    # Logs use it for log groups of this account
    assert len(groups) == 3
    assert len(key_ids) == 1
    (key_id,) = key_ids
    statements = synth.resource(key_id)["Properties"]["KeyPolicy"]["Statement"]
    logs = [s for s in statements if "logs." in repr(s.get("Principal"))]
    assert len(logs) == 1
    assert "kms:EncryptionContext:aws:logs:arn" in logs[0]["Condition"]["ArnLike"]
    assert synth.resource(key_id)["Properties"]["EnableKeyRotation"] is True


def test_access_log_bucket_is_versioned_and_old_versions_expire(synth: Synth) -> None:
    # Given the access-log bucket (CKV_AWS_21 fixed)
    (bucket,) = [
        b for b in synth.resources("AWS::S3::Bucket").values() if "LoggingConfiguration" not in b["Properties"]
    ]
    rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    # Then it is versioned and noncurrent versions do not pile up
    assert bucket["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    assert any("NoncurrentVersionExpiration" in r for r in rules)


def test_both_functions_have_reserved_concurrency(synth: Synth) -> None:
    # Given the functions (CKV_AWS_115 fixed for the CDC function: cdc_reserved_concurrency)
    # Then each has a concurrency cap by default
    assert synth.resource("ExtractFunction")["Properties"]["ReservedConcurrentExecutions"] == 1
    assert synth.resource("CdcFunction")["Properties"]["ReservedConcurrentExecutions"] == 10
