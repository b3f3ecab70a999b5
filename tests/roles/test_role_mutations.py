"""Each action a principal holds is needed: without it the chain fails, on a denied call of that action.

The actions the Lambda service uses with a function's role (logs, X-Ray, the DLQ) are not run by
the code and not swept (iam_lab.RUNTIME_ACTIONS; tests/infra/test_iam.py scopes them). The whole
sweep runs a chain per action (a few minutes): it is marked slow (``make test-all``); ``make test``
runs a sample, one mutation per kind of call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from snapcdc.cdc.routing import SparkRoute
from snapcdc_dev.demo import load_handler
from snapcdc_dev.embedded_aws import patched_environ
from snapcdc_dev.events import LocalLambdaContext

from .iam_lab import RUNTIME_ACTIONS, actions_of, enforcing, is_denial, statements, without_action
from .lab import PRINCIPALS, create_glue_job, open_roles_lab, spark_job_name, start_spark_job

# principal -> the actions of its policies in the template that its code uses
SWEEP = {
    "extract": [
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:GetObject",
        "s3:ListBucket",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "secretsmanager:GetSecretValue",
    ],
    "cdc": [
        "s3:GetObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListBucket",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "glue:GetTable",
        "glue:CreateTable",
        "glue:UpdateTable",
        "glue:GetDatabase",  # each Iceberg commit asks (docs/iceberg.md)
    ],
    "operator-verify": ["s3:GetObject", "s3:ListBucket", "kms:Decrypt"],
    "operator-replay": [
        "s3:GetObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:DeleteObject",
        "s3:ListBucket",
        "kms:Decrypt",
        "kms:GenerateDataKey",
    ],
}
# Actions the chain does not call (its tables are small, no run fails): each has a mutation test of its own.
HEALER_ACTIONS = [
    "s3:GetObject",
    "s3:PutObject",
    "s3:ListBucket",
    "kms:Decrypt",
    "kms:GenerateDataKey",
    "glue:GetJobRun",
    "glue:StartJobRun",
]
# s3:DeleteObject: the CDC role deletes only the data files of an Iceberg commit that lost the race to
# another writer (tests/iceberg/test_commit.py), which the chain never meets.
# The operators' Glue actions on the Iceberg tables: the chain's verify and replay run without Iceberg;
# tests/iceberg/test_roles.py runs them with it, and takes them away.
ICEBERG_REPLAY_ACTIONS = [
    "glue:GetTable",
    "glue:CreateTable",
    "glue:UpdateTable",
    "glue:GetDatabase",
    "glue:DeleteTable",
]
OUTSIDE_THE_CHAIN = [
    ("cdc", "glue:StartJobRun"),
    ("cdc", "s3:DeleteObject"),
    *(("spark-state", a) for a in HEALER_ACTIONS),
    ("operator-verify", "glue:GetTable"),
    *(("operator-replay", a) for a in ICEBERG_REPLAY_ACTIONS),
]
MUTATIONS = [(principal, action) for principal, actions in SWEEP.items() for action in actions]
SAMPLE = [
    ("extract", "secretsmanager:GetSecretValue"),
    ("cdc", "s3:PutObject"),
    ("cdc", "kms:GenerateDataKey"),
    ("cdc", "glue:UpdateTable"),
    ("operator-verify", "s3:ListBucket"),
    ("operator-replay", "s3:DeleteObject"),
]
# the operations a denial of the action shows up on (S3 checks PutObject for every multipart step)
OPERATIONS = {
    "s3:GetObject": {"GetObject", "HeadObject"},
    "s3:PutObject": {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"},
    "s3:AbortMultipartUpload": {"AbortMultipartUpload"},
    "s3:DeleteObject": {"DeleteObject"},
    "s3:ListBucket": {"ListObjectsV2", "ListObjects"},
    "kms:Decrypt": {"Decrypt"},
    "kms:GenerateDataKey": {"GenerateDataKey"},
    "secretsmanager:GetSecretValue": {"GetSecretValue"},
    "glue:GetTable": {"GetTable"},
    "glue:CreateTable": {"CreateTable"},
    "glue:UpdateTable": {"UpdateTable"},
    "glue:GetJobRun": {"GetJobRun"},
    "glue:StartJobRun": {"StartJobRun"},
}


def test_the_sweep_covers_every_action_of_every_principal(template: dict[str, Any]) -> None:
    # Given the actions in each principal's policies in the template, less the Lambda service's own
    held = {
        principal: {
            action
            for document in find(template).values()
            for statement in statements(document)
            if statement["Effect"] == "Allow"
            for action in actions_of(statement)
        }
        - RUNTIME_ACTIONS
        for principal, find in PRINCIPALS.items()
    }
    # Then the sweep removes each of them once (the Glue hand-off by its own mutation test below)
    swept = {p: set(SWEEP.get(p, ())) | {a for q, a in OUTSIDE_THE_CHAIN if q == p} for p in PRINCIPALS}
    assert swept == held
    assert len(MUTATIONS) == len(set(MUTATIONS))


def _run_without(template: dict[str, Any], tmp_path: Path, principal: str, action: str) -> Any:
    documents = without_action(PRINCIPALS[principal](template), action)
    with open_roles_lab(template, tmp_path, overrides={principal: documents}) as lab:
        return lab.run_chain()


def _assert_denied_on(result: Any, principal: str, action: str) -> None:
    assert not result.ok, f"{principal} without {action}: the chain still passes ({result.describe()})"
    assert result.access_denied, result.describe()
    first = result.denied[0]
    assert (first.principal, first.operation) in {(principal, op) for op in OPERATIONS[action]}, result.describe()


@pytest.mark.parametrize(("principal", "action"), SAMPLE, ids=[f"{p} without {a}" for p, a in SAMPLE])
def test_removing_an_action_fails_the_chain_on_that_action(
    template: dict[str, Any], tmp_path: Path, principal: str, action: str
) -> None:
    # Given the stack's principals with one action taken out of one of them
    # When the chain runs
    result = _run_without(template, tmp_path, principal, action)
    # Then it fails, and the first denied call is that principal's call of that action
    _assert_denied_on(result, principal, action)


@pytest.mark.slow
@pytest.mark.parametrize(("principal", "action"), MUTATIONS, ids=[f"{p} without {a}" for p, a in MUTATIONS])
def test_sweep_removing_any_action_fails_the_chain(
    template: dict[str, Any], tmp_path: Path, principal: str, action: str
) -> None:
    # Given the stack's principals with one action taken out of one of them
    result = _run_without(template, tmp_path, principal, action)
    print(f"SWEEP {principal} without {action}: {result.describe()}")
    # Then the chain fails on a denied call of that action
    _assert_denied_on(result, principal, action)


def test_removing_start_job_run_denies_the_hand_off_to_the_spark_job(template: dict[str, Any], tmp_path: Path) -> None:
    # Given the CDC role without glue:StartJobRun, and the stack's Glue job
    documents = without_action(PRINCIPALS["cdc"](template), "glue:StartJobRun")
    with open_roles_lab(template, tmp_path, overrides={"cdc": documents}) as lab:
        name = spark_job_name(template)
        create_glue_job(lab, name)
        # When the CDC function hands a big snapshot over
        with enforcing(), lab.as_principal("cdc") as session:
            lab.current_session = session
            with pytest.raises(ClientError) as denied:
                start_spark_job(lab, name)
    # Then the call is denied
    assert is_denial(denied.value.response["Error"]), denied.value.response["Error"]


@pytest.mark.parametrize("action", HEALER_ACTIONS, ids=[f"spark-state without {a}" for a in HEALER_ACTIONS])
def test_removing_an_action_of_the_state_change_handler_fails_the_healing_on_it(
    template: dict[str, Any], tmp_path: Path, action: str
) -> None:
    # Given the state-change handler's role without one action, and a snapshot handed to the stack's job
    documents = without_action(PRINCIPALS["spark-state"](template), action)
    with open_roles_lab(template, tmp_path, overrides={"spark-state": documents}) as lab:
        name = spark_job_name(template)
        create_glue_job(lab, name)
        with enforcing(), lab.as_principal("cdc") as session:
            route = SparkRoute(session.client("glue", endpoint_url=lab.aws.endpoint), name, 0)
            handed = route.hand_over(lab.store(session), "clientes", "20260301T090000Z")
        assert handed.run_id is not None and lab.enforcement is not None
        # When Glue reports the run FAILED to the handler
        event = {
            "version": "0",
            "id": "mutation",
            "detail-type": "Glue Job State Change",
            "source": "aws.glue",
            "account": "123456789012",
            "time": "2026-03-01T10:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {"jobName": name, "state": "FAILED", "jobRunId": handed.run_id},
        }
        with (
            enforcing(),
            lab.as_principal("spark-state"),
            patched_environ({"SPARK_JOB_NAME": name}),
            pytest.raises(ClientError) as failed,
        ):
            load_handler("spark_state").lambda_handler(event, LocalLambdaContext("snapcdc-spark-state"))
        # Then the healing fails, and the first denied call is the handler's call of that action
        assert is_denial(failed.value.response["Error"]), failed.value.response["Error"]
        first = lab.enforcement.denied[0]
        assert (first.principal, first.operation) in {("spark-state", op) for op in OPERATIONS[action]}, first
