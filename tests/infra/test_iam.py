"""Least privilege: walk every policy statement of the template."""

from __future__ import annotations

import pytest
from snapcdc.config import load_config

from .cfn_helpers import Statement, function_role, policy_statements, render, role_statements
from .synthesis import Synth

# Actions AWS only authorizes on Resource "*" (no resource-level permissions).
UNSCOPED_ACTIONS_ALLOWED = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "cloudwatch:PutMetricData"}
BUCKET = "arn:${AWS::Partition}:s3:::snapcdc-data-${AWS::AccountId}-${AWS::Region}"


def _is_key_admin_delegation(statement: Statement) -> bool:
    """The AWS default key policy statement: the account root may administer the key via IAM.

    It is the one place "kms:*" is allowed: it delegates the key's access control to IAM (which
    holds no kms:* anywhere); without it a key can become unmanageable.
    """
    principal = statement.principal or {}
    root = str(principal.get("AWS", "")) if isinstance(principal, dict) else ""
    return statement.resource_type == "AWS::KMS::Key" and ":root" in repr(principal) + root


def test_no_allow_statement_has_a_wildcard_action(synth: Synth) -> None:
    # Given every Allow statement in every policy document of the template
    offenders = [
        (s.logical_id, action)
        for s in policy_statements(synth.template)
        if s.effect == "Allow" and not _is_key_admin_delegation(s)
        for action in s.actions
        if "*" in action
    ]
    # Then none grants "*" or a service:Prefix* action
    assert offenders == []


def test_wildcard_actions_appear_only_in_deny_statements_and_key_admin(synth: Synth) -> None:
    # Given statements with a wildcard action
    wildcard = [s for s in policy_statements(synth.template) if any("*" in a for a in s.actions)]
    # Then each is a Deny (TLS enforcement) or the key policy's IAM delegation
    assert wildcard
    assert all(s.effect == "Deny" or _is_key_admin_delegation(s) for s in wildcard)


def test_unscoped_resources_only_where_aws_requires_them(synth: Synth) -> None:
    # Given identity and resource policy statements granting on Resource "*"
    offenders = []
    for statement in policy_statements(synth.template):
        if statement.effect != "Allow" or "*" not in statement.resources:
            continue
        if statement.resource_type == "AWS::KMS::Key":
            continue  # in a key policy, "*" means this key
        if set(statement.actions) <= UNSCOPED_ACTIONS_ALLOWED:
            continue
        offenders.append((statement.logical_id, statement.actions))
    # Then only X-Ray/PutMetricData use "*"
    assert offenders == []


def _s3_grants(synth: Synth, function: str) -> dict[str, set[str]]:
    """action -> resources, for the S3 object/bucket statements of a function's role."""
    grants: dict[str, set[str]] = {}
    for statement in role_statements(synth.template, function_role(synth.template, function)):
        for action in statement.actions:
            if action.startswith("s3:"):
                grants.setdefault(action, set()).update(statement.resources)
    return grants


def test_extract_writes_and_reads_only_raw(synth: Synth) -> None:
    # Given the extract role's S3 permissions
    grants = _s3_grants(synth, "ExtractFunction")
    # Then it may put objects only under raw/, and read back only raw/ (its manifests, the previous
    # raw CSV's checksum metadata, and the Kaggle download it streamed to raw/_archives/, by ranged
    # GETs); multipart uploads need no more than PutObject and AbortMultipartUpload (it never lists
    # parts or uploads), and it may delete nothing
    assert grants == {
        "s3:PutObject": {f"{BUCKET}/raw/*"},
        "s3:AbortMultipartUpload": {f"{BUCKET}/raw/*"},
        "s3:GetObject": {f"{BUCKET}/raw/*"},
        "s3:ListBucket": {BUCKET},
    }


def test_cdc_reads_and_writes_only_its_prefixes(synth: Synth) -> None:
    # Given the CDC role's S3 permissions
    grants = _s3_grants(synth, "CdcFunction")
    # Then it reads raw/ snapshots/ _runs/ full-load/ cdc/ (a migration reads earlier files) and the change
    # feeds' prefixes (the SCD2 current file is read and rewritten; a migration reads them too), and writes
    # cdc/ full-load/ snapshots/ quarantine/ _runs/ and the feeds' prefixes
    feeds = ("changelog", "scd2", "dms")
    reads = {f"{BUCKET}/{p}/*" for p in ("raw", "snapshots", "_runs", "full-load", "cdc", *feeds)}
    # and the Iceberg tables' prefix iceberg/ (the packaged config enables them on a table): read,
    # written, and deleted only there (an attempt's unlisted data files, docs/iceberg.md)
    iceberg = f"{BUCKET}/iceberg/*"
    assert grants["s3:GetObject"] == {*reads, iceberg}
    writes = {f"{BUCKET}/{p}/*" for p in ("cdc", "full-load", "snapshots", "quarantine", "_runs", *feeds)}
    assert grants["s3:PutObject"] == {*writes, iceberg}
    assert grants["s3:AbortMultipartUpload"] == {*writes, iceberg}
    assert grants["s3:DeleteObject"] == {iceberg}
    assert set(grants) == {
        "s3:GetObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:DeleteObject",
        "s3:ListBucket",
    }


@pytest.mark.parametrize(
    ("function", "prefixes"),
    [
        ("ExtractFunction", ["raw/*"]),
        (
            "CdcFunction",
            ["raw/*", "snapshots/*", "_runs/*", "cdc/*", "full-load/*", "changelog/*", "scd2/*", "dms/*", "iceberg/*"],
        ),
    ],
)
def test_list_bucket_only_with_prefix_conditions(synth: Synth, function: str, prefixes: list[str]) -> None:
    # Given the role's ListBucket statements
    statements = [
        s
        for s in role_statements(synth.template, function_role(synth.template, function))
        if "s3:ListBucket" in s.actions
    ]
    # Then each is limited to listings under the function's prefixes
    assert len(statements) == 1
    assert statements[0].conditions == {"StringLike": {"s3:prefix": prefixes}}


def test_prefix_scoped_grants_honour_data_prefix(custom_synth: Synth) -> None:
    # Given data_prefix=lake/ and bucket_name=acme-snapcdc-lake
    grants = _s3_grants(custom_synth, "ExtractFunction")
    listing = [
        s
        for s in role_statements(custom_synth.template, function_role(custom_synth.template, "ExtractFunction"))
        if "s3:ListBucket" in s.actions
    ]
    # Then object ARNs and list conditions carry the prefix
    assert grants["s3:PutObject"] == {"arn:${AWS::Partition}:s3:::acme-snapcdc-lake/lake/raw/*"}
    assert listing[0].conditions == {"StringLike": {"s3:prefix": ["lake/raw/*"]}}


@pytest.mark.parametrize("function", ["ExtractFunction", "CdcFunction"])
def test_data_key_use_is_only_through_s3(synth: Synth, function: str) -> None:
    # Given the role's statements on the data key (the one the bucket encrypts with)
    key_statements = [
        s
        for s in role_statements(synth.template, function_role(synth.template, function))
        if any(a.startswith("kms:") for a in s.actions) and "secretsmanager" not in repr(s.conditions)
    ]
    # Then they are explicit actions conditioned on kms:ViaService=s3.<region>
    assert len(key_statements) == 1
    statement = key_statements[0]
    assert set(statement.actions) == {"kms:Decrypt", "kms:GenerateDataKey"}
    via_service = statement.conditions["StringEquals"]["kms:ViaService"]
    assert render(via_service) == "s3.${AWS::Region}.amazonaws.com"


def test_only_the_extract_role_can_read_the_kaggle_secret(synth: Synth) -> None:
    # Given the secret and every policy statement naming it
    (secret_id,) = synth.resources("AWS::SecretsManager::Secret")
    readers = {
        s.logical_id
        for s in policy_statements(synth.template)
        if s.effect == "Allow" and any(secret_id in r for r in s.resources)
    }
    extract_role = function_role(synth.template, "ExtractFunction")
    extract_policies = {
        k for k, v in synth.resources("AWS::IAM::Policy").items() if {"Ref": extract_role} in v["Properties"]["Roles"]
    }
    # Then only the extract role's policy grants on it: GetSecretValue (the one call it makes)
    assert readers == extract_policies
    actions = {
        a
        for s in role_statements(synth.template, extract_role)
        if any(secret_id in r for r in s.resources)
        for a in s.actions
    }
    assert actions == {"secretsmanager:GetSecretValue"}


def test_no_role_carries_an_aws_managed_policy(synth: Synth) -> None:
    # Given every role
    # Then none has ManagedPolicyArns (each function's log permissions are scoped to its log group)
    for role in synth.resources("AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"]


GLUE = "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}"


def _glue_statements(synth: Synth, function: str) -> list[Statement]:
    return [
        s
        for s in role_statements(synth.template, function_role(synth.template, function))
        if any(a.startswith("glue:") and "Job" not in a for a in s.actions)
    ]


def test_the_cdc_role_may_get_create_and_update_exactly_its_tables_glue_tables(synth: Synth) -> None:
    # Given the CDC role's Glue statement for the Hive tables (the Iceberg tables' has its own, below)
    (statement,) = [
        s for s in _glue_statements(synth, "CdcFunction") if s.body.get("Sid") != "IcebergTablesInTheGlueCatalog"
    ]
    # Then one statement: what snapcdc.cdc.catalog calls, on the catalog, the database and, per table of
    # the pipeline config, <table>_cdc, <table>_full_load and <table>_snapshots, and <table>_<feed> for
    # each change feed the table enables (no wildcard)
    config = load_config()
    tables = [t.name for t in config.tables]
    feeds = [f"{GLUE}:table/snapcdc/{t.name}_{feed}" for t in config.tables for feed in t.outputs.enabled]
    assert feeds, "the packaged config enables the feeds on a table"
    assert statement.effect == "Allow"
    assert sorted(statement.actions) == ["glue:CreateTable", "glue:GetTable", "glue:UpdateTable"]
    assert sorted(render(r) for r in statement.resources) == sorted(
        [
            f"{GLUE}:catalog",
            f"{GLUE}:database/snapcdc",
            *(f"{GLUE}:table/snapcdc/{t}_{kind}" for t in tables for kind in ("cdc", "full_load", "snapshots")),
            *feeds,
        ]
    )
    assert not statement.conditions


def test_the_cdc_role_may_get_create_and_update_exactly_the_iceberg_tables(synth: Synth) -> None:
    # Given the CDC role's statement for the Iceberg tables
    (statement,) = [
        s for s in _glue_statements(synth, "CdcFunction") if s.body.get("Sid") == "IcebergTablesInTheGlueCatalog"
    ]
    # Then what pyiceberg's Glue catalog calls (load, create, the conditional commit), on <table> and
    # <table>_changes of each table that enables Iceberg (and GetDatabase, which each commit calls), no
    # DeleteTable and no wildcard
    enabled = [t.name for t in load_config().tables if t.iceberg]
    assert enabled, "the packaged config enables Iceberg on a table"
    assert sorted(statement.actions) == ["glue:CreateTable", "glue:GetDatabase", "glue:GetTable", "glue:UpdateTable"]
    assert sorted(render(r) for r in statement.resources) == sorted(
        [
            f"{GLUE}:catalog",
            f"{GLUE}:database/snapcdc",
            *(f"{GLUE}:table/snapcdc/{t}{suffix}" for t in enabled for suffix in ("", "_changes")),
        ]
    )


def test_the_extract_role_has_no_glue_permission(synth: Synth) -> None:
    assert _glue_statements(synth, "ExtractFunction") == []
