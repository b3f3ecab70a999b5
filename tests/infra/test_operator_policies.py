"""The operators' managed policies, and the conditions tests/roles cannot evaluate in moto."""

from __future__ import annotations

import pytest
from snapcdc.config import load_config

from .cfn_helpers import Statement, policy_statements, render
from .synthesis import Synth

BUCKET = "arn:${AWS::Partition}:s3:::snapcdc-data-${AWS::AccountId}-${AWS::Region}"
GLUE = "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}"
FEEDS = ("changelog", "scd2", "dms")
# The Iceberg tables (docs/iceberg.md) of the packaged config's tables that enable them: verify reads
# them, replay rebuilds them.
ICEBERG = [t.name for t in load_config().tables if t.iceberg]
ICEBERG_TABLES = {
    f"{GLUE}:catalog",
    f"{GLUE}:database/snapcdc",
    *(f"{GLUE}:table/snapcdc/{t}{suffix}" for t in ICEBERG for suffix in ("", "_changes")),
}
OUTPUTS = ("cdc", "full-load", "snapshots", "quarantine", "_runs", *FEEDS, "iceberg")


def _statements(synth: Synth, logical_id: str) -> list[Statement]:
    return [s for s in policy_statements(synth.template) if s.logical_id == logical_id]


def _grants(synth: Synth, logical_id: str) -> dict[str, set[str]]:
    grants: dict[str, set[str]] = {}
    for statement in _statements(synth, logical_id):
        for action in statement.actions:
            grants.setdefault(action, set()).update(statement.resources)
    return grants


def test_verify_policy_only_reads(synth: Synth) -> None:
    # Given the verify policy
    grants = _grants(synth, "OperatorVerifyPolicy")
    # Then it reads the outputs and run records and the Iceberg tables, lists, and decrypts: nothing else
    assert ICEBERG, "the packaged config enables Iceberg on a table"
    assert grants == {
        "s3:GetObject": {f"{BUCKET}/{p}/*" for p in ("_runs", "full-load", "cdc", "snapshots", *FEEDS, "iceberg")},
        "s3:ListBucket": {BUCKET},
        "kms:Decrypt": {"${StorageDataKeyE15BA43B.Arn}"},
        "glue:GetTable": ICEBERG_TABLES,
    }


def test_replay_is_the_only_principal_that_deletes_and_only_output_prefixes(synth: Synth) -> None:
    # Given every Allow statement of the template that grants a delete
    deleting = [
        s for s in policy_statements(synth.template) if s.effect == "Allow" and any("Delete" in a for a in s.actions)
    ]
    # Then the replay policy's is the only one on the lake's outputs (never raw/), current objects only,
    # and the only one that may drop a table: exactly the Iceberg tables, which it rebuilds;
    # besides it, the CDC and Spark job roles delete only under iceberg/ (the data files of a commit that
    # lost its race) and the Spark job's role its scratch under _spark-parts/ and part files of its
    # outputs (the stale parts an earlier attempt of a snapshot left)
    replay = [s for s in deleting if s.logical_id == "OperatorReplayPolicy"]
    (objects,) = [s for s in replay if "s3:DeleteObject" in s.actions]
    (tables,) = [s for s in replay if "glue:DeleteTable" in s.actions]
    assert [a for a in objects.actions if "Delete" in a] == ["s3:DeleteObject"]
    assert set(objects.resources) == {f"{BUCKET}/{p}/*" for p in OUTPUTS}
    assert [a for a in tables.actions if "Delete" in a] == ["glue:DeleteTable"]
    assert {render(r) for r in tables.resources} == ICEBERG_TABLES
    others = {r for s in deleting if s.logical_id != "OperatorReplayPolicy" for r in s.resources}
    assert [a for s in deleting for a in s.actions if "Delete" in a and a != "s3:DeleteObject"] == ["glue:DeleteTable"]
    parts = {f"{BUCKET}/{p}/*-part-*" for p in ("snapshots", "full-load", "quarantine", "cdc", "changelog", "dms")}
    assert others == {f"{BUCKET}/iceberg/*", f"{BUCKET}/_spark-parts/*", *parts}


def test_replay_policy_reads_raw_and_writes_only_outputs(synth: Synth) -> None:
    # Given the replay policy
    grants = _grants(synth, "OperatorReplayPolicy")
    # Then it reads raw/ snapshots/ _runs/ full-load/ cdc/ (footers of the files it may migrate) and writes
    # only the output prefixes
    assert grants["s3:GetObject"] == {
        f"{BUCKET}/{p}/*" for p in ("raw", "snapshots", "_runs", "full-load", "cdc", *FEEDS, "iceberg")
    }
    assert grants["s3:PutObject"] == {f"{BUCKET}/{p}/*" for p in OUTPUTS}
    # and rebuilds the Iceberg tables: what pyiceberg's Glue catalog calls, and the drop
    iceberg_actions = ["glue:GetTable", "glue:CreateTable", "glue:UpdateTable", "glue:GetDatabase", "glue:DeleteTable"]
    assert all({render(r) for r in grants[a]} == ICEBERG_TABLES for a in iceberg_actions)
    assert set(grants) == {
        "s3:GetObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:DeleteObject",
        "s3:ListBucket",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        *iceberg_actions,
    }


# moto evaluates no condition key of an identity policy: tests/roles evaluates s3:prefix itself and
# cannot evaluate kms:ViaService, so both stay asserted here for the operator policies (the roles'
# are in test_iam.py).
@pytest.mark.parametrize(
    ("policy", "prefixes"),
    [
        (
            "OperatorVerifyPolicy",
            ["raw/*", "_runs/*", "cdc/*", "full-load/*", "snapshots/*", *[f"{f}/*" for f in FEEDS], "iceberg/*"],
        ),
        (
            "OperatorReplayPolicy",
            ["raw/*", "snapshots/*", "_runs/*", "cdc/*", "full-load/*", *[f"{f}/*" for f in FEEDS], "iceberg/*"],
        ),
    ],
)
def test_operator_listing_and_key_use_are_conditioned(synth: Synth, policy: str, prefixes: list[str]) -> None:
    statements = _statements(synth, policy)
    (listing,) = [s for s in statements if "s3:ListBucket" in s.actions]
    (key,) = [s for s in statements if any(a.startswith("kms:") for a in s.actions)]
    assert listing.conditions == {"StringLike": {"s3:prefix": prefixes}}
    assert render(key.conditions["StringEquals"]["kms:ViaService"]) == "s3.${AWS::Region}.amazonaws.com"


def test_only_the_extract_role_may_decrypt_through_secrets_manager_in_the_key_policy(synth: Synth) -> None:
    # Given the data key's policy (a resource policy: moto does not evaluate it)
    statements = [s for s in policy_statements(synth.template) if s.logical_id == "StorageDataKeyE15BA43B"]
    named = [s for s in statements if "GetAtt" in repr(s.principal) or "Fn::GetAtt" in repr(s.principal)]
    # Then the one role it names is the extract role, for kms:Decrypt through Secrets Manager only
    assert len(named) == 1
    assert named[0].principal == {"AWS": {"Fn::GetAtt": ["ExtractHandlerRoleB2203FA2", "Arn"]}}
    assert named[0].actions == ["kms:Decrypt"]
    via_service = named[0].conditions["StringEquals"]["kms:ViaService"]
    assert render(via_service) == "secretsmanager.${AWS::Region}.amazonaws.com"
