"""The data bucket, its log bucket and the data key."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match

from .cfn_helpers import render
from .synthesis import Synth


def _data_bucket(synth: Synth) -> dict[str, Any]:
    (bucket,) = [b for b in synth.resources("AWS::S3::Bucket").values() if "BucketEncryption" in b["Properties"]
                 and b["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
                     "ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"]  # fmt: skip
    return bucket


def _log_bucket_id(synth: Synth) -> str:
    bucket = _data_bucket(synth)
    return str(bucket["Properties"]["LoggingConfiguration"]["DestinationBucketName"]["Ref"])


def test_data_bucket_is_encrypted_with_the_rotating_data_key(synth: Synth) -> None:
    # Given the synthesized stack
    bucket = _data_bucket(synth)
    # When reading its default encryption
    default = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    key_id = default["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]["Fn::GetAtt"][0]
    # Then it is SSE-KMS with a bucket key, under a customer managed key with rotation on
    assert default["BucketKeyEnabled"] is True
    key = synth.resource(key_id)
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"


def test_data_bucket_is_versioned_private_owner_enforced_and_retained(synth: Synth) -> None:
    # Given the data bucket
    bucket = _data_bucket(synth)
    props = bucket["Properties"]
    # Then versioning, the public access block, BucketOwnerEnforced and RETAIN are set
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert bucket["DeletionPolicy"] == "Retain"


def test_default_bucket_name_is_generated_from_stack_account_and_region(synth: Synth) -> None:
    # Given no bucket_name in context
    # When reading the data bucket's name
    name = render(_data_bucket(synth)["Properties"]["BucketName"])
    # Then it is derived, unique per account and region, and valid for S3 (lower case)
    assert name == "snapcdc-data-${AWS::AccountId}-${AWS::Region}"


def test_bucket_name_comes_from_context(custom_synth: Synth) -> None:
    # Given context bucket_name=acme-snapcdc-lake
    # Then the bucket has exactly that name
    assert _data_bucket(custom_synth)["Properties"]["BucketName"] == "acme-snapcdc-lake"


def test_every_bucket_denies_requests_without_tls(synth: Synth) -> None:
    # Given both buckets and their policies
    policies = synth.resources("AWS::S3::BucketPolicy").values()
    buckets_with_tls_deny = set()
    for policy in policies:
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if (
                statement["Effect"] == "Deny"
                and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
                and statement["Action"] == "s3:*"
            ):
                buckets_with_tls_deny.add(policy["Properties"]["Bucket"]["Ref"])
    # Then each bucket's policy denies every non-TLS request
    assert buckets_with_tls_deny == set(synth.resources("AWS::S3::Bucket"))


def test_server_access_logs_go_to_a_separate_sse_s3_log_bucket(synth: Synth) -> None:
    # Given the data bucket's logging target
    bucket = _data_bucket(synth)
    log_bucket_id = _log_bucket_id(synth)
    log_bucket = synth.resource(log_bucket_id)["Properties"]
    # Then it is another bucket: SSE-S3 (log delivery supports no KMS), private, owner enforced
    assert bucket["Properties"]["LoggingConfiguration"]["LogFilePrefix"] == "data-bucket/"
    encryption = log_bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert log_bucket["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    assert log_bucket["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    # And log delivery is allowed by bucket policy to the logging service, for this data bucket only
    synth.assertions.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "Bucket": {"Ref": log_bucket_id},
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "logging.s3.amazonaws.com"},
                                "Action": "s3:PutObject",
                            }
                        )
                    ]
                )
            },
        },
    )


def test_raw_noncurrent_versions_expire_and_current_raw_objects_are_kept_by_default(synth: Synth) -> None:
    # Given the default context (raw_noncurrent_version_days=30, raw_retention_days=0)
    rules = {r["Id"]: r for r in _data_bucket(synth)["Properties"]["LifecycleConfiguration"]["Rules"]}
    # Then noncurrent raw/ versions expire after 30 days and no rule expires current raw/ objects
    assert rules["raw-noncurrent-versions"]["Prefix"] == "raw/"
    assert rules["raw-noncurrent-versions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert "raw-retention" not in rules
    tables = [r for r in rules.values() if r.get("Prefix", "").startswith("raw/") and r["Id"] != "raw-archives"]
    assert not any("ExpirationInDays" in r for r in tables)
    # but the Kaggle downloads the extract streams to raw/_archives/ expire after a few days, every version
    assert rules["raw-archives"] == {
        "Id": "raw-archives",
        "Prefix": "raw/_archives/",
        "ExpirationInDays": 3,
        "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
        "Status": "Enabled",
    }


def test_raw_lifecycle_follows_context_and_data_prefix(custom_synth: Synth) -> None:
    # Given data_prefix=lake, raw_noncurrent_version_days=10, raw_retention_days=90
    rules = {r["Id"]: r for r in _data_bucket(custom_synth)["Properties"]["LifecycleConfiguration"]["Rules"]}
    # Then both raw rules are scoped to lake/raw/ with the context's days
    assert rules["raw-noncurrent-versions"]["Prefix"] == "lake/raw/"
    assert rules["raw-noncurrent-versions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 10}
    assert rules["raw-archives"]["Prefix"] == "lake/raw/_archives/"
    assert rules["raw-retention"] == {
        "Id": "raw-retention",
        "Prefix": "lake/raw/",
        "ExpirationInDays": 90,
        "Status": "Enabled",
    }
