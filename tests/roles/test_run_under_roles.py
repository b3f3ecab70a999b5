"""The chain run as the stack's principals (moto, IAM enforced): every call it makes is allowed,
and the calls the design forbids are denied to the same principals (see iam_lab.py for what moto
evaluates and what the lab adds)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from snapcdc.cdc.routing import SparkRoute
from snapcdc_dev.demo import load_handler
from snapcdc_dev.embedded_aws import patched_environ
from snapcdc_dev.events import LocalLambdaContext

from .iam_lab import enforcing, is_denial
from .lab import ChainResult, RolesLab, create_glue_job, open_roles_lab, spark_job_name, start_spark_job


@pytest.fixture(scope="module")
def ran(template: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RolesLab, ChainResult]]:
    """One lab in which the whole chain ran; the denial tests then probe the same principals."""
    with open_roles_lab(template, Path(tmp_path_factory.mktemp("roles"))) as lab:
        yield lab, lab.run_chain()


def test_the_whole_chain_succeeds_under_the_stacks_roles(ran: tuple[RolesLab, ChainResult]) -> None:
    # Given the extract and CDC roles and the operator policies from the template, in moto with IAM on
    lab, result = ran
    # When extract, CDC (two snapshots), verify, replay and verify again ran, each as its principal
    # Then every stage succeeded and no call was denied
    assert result.ok, result.describe()
    assert result.denied == []
    assert len(result.stages_done) == 10
    # And the outputs are there (read as the lab's admin)
    store = lab.admin_store()
    with enforcing():
        assert any(store.list_keys("cdc/"))
        assert any(store.list_keys("_runs/"))


def _put(key: str) -> Callable[[Any, RolesLab], Any]:
    return lambda s3, lab: s3.put_object(Bucket=lab.bucket, Key=key, Body=b"x")


def _delete_first(prefix: str) -> Callable[[Any, RolesLab], Any]:
    def call(s3: Any, lab: RolesLab) -> Any:
        key = next(iter(lab.admin_store().list_keys(prefix)))
        return s3.delete_object(Bucket=lab.bucket, Key=key)

    return call


def _get_first(prefix: str) -> Callable[[Any, RolesLab], Any]:
    def call(s3: Any, lab: RolesLab) -> Any:
        key = next(iter(lab.admin_store().list_keys(prefix)))
        return s3.get_object(Bucket=lab.bucket, Key=key)

    return call


def _list(prefix: str) -> Callable[[Any, RolesLab], Any]:
    return lambda s3, lab: s3.list_objects_v2(Bucket=lab.bucket, Prefix=prefix)


def _read_secret(s3: Any, lab: RolesLab) -> Any:
    return lab.secrets_client().get_secret_value(SecretId=lab.secret_arn)


FORBIDDEN = [
    ("extract", "writes outside raw/ (cdc/)", _put("cdc/clientes/forged.parquet")),
    ("extract", "writes outside raw/ (_runs/)", _put("_runs/clientes/snapshot=20260101T000000Z.json")),
    ("extract", "writes a key that only starts like raw", _put("raw-forged/clientes.csv")),
    ("extract", "deletes a raw CSV", _delete_first("raw/")),
    ("extract", "reads outside raw/", _get_first("_runs/")),
    ("extract", "lists outside raw/ (s3:prefix, evaluated by the lab)", _list("cdc/")),
    ("cdc", "reads the Kaggle secret", _read_secret),
    ("cdc", "writes raw/", _put("raw/clientes/snapshot=20260101T000000Z/clientes.csv")),
    ("cdc", "deletes a change file", _delete_first("cdc/")),
    ("cdc", "deletes a run record", _delete_first("_runs/")),
    ("cdc", "deletes a raw CSV", _delete_first("raw/")),
    ("cdc", "lists the bucket root (s3:prefix, evaluated by the lab)", _list("")),
    ("spark-state", "writes a run record", _put("_runs/clientes/snapshot=20260101T000000Z.json")),
    ("spark-state", "deletes under _runs/", _delete_first("_runs/")),
    ("spark-state", "writes outside _runs/", _put("cdc/clientes/forged.parquet")),
    ("spark-state", "reads a raw CSV", _get_first("raw/")),
    ("spark-state", "lists outside _runs/ (s3:prefix, evaluated by the lab)", _list("raw/")),
    ("operator-verify", "writes a run record", _put("_runs/clientes/snapshot=20260101T000000Z.json")),
    ("operator-verify", "deletes a change file", _delete_first("cdc/")),
    ("operator-verify", "reads the Kaggle secret", _read_secret),
    ("operator-replay", "deletes a raw CSV", _delete_first("raw/")),
    ("operator-replay", "writes raw/", _put("raw/clientes/snapshot=20260101T000000Z/clientes.csv")),
    ("operator-replay", "deletes a manifest", _delete_first("raw/_manifests/")),
    ("operator-replay", "reads the Kaggle secret", _read_secret),
]


@pytest.mark.parametrize(
    ("principal", "call"), [(p, c) for p, _, c in FORBIDDEN], ids=[f"{p}: {d}" for p, d, _ in FORBIDDEN]
)
def test_what_the_design_forbids_is_denied(
    ran: tuple[RolesLab, ChainResult], principal: str, call: Callable[[Any, RolesLab], Any]
) -> None:
    # Given the lab in which the chain ran as these principals
    lab, result = ran
    assert result.ok, result.describe()
    before = lab.admin_objects()
    # When the principal makes a call the design forbids
    with enforcing(), lab.as_principal(principal) as session:
        lab.current_session = session
        s3 = session.client("s3", endpoint_url=lab.aws.endpoint)
        with pytest.raises(ClientError) as denied:
            call(s3, lab)
    # Then it is denied and the bucket is unchanged
    assert is_denial(denied.value.response["Error"]), denied.value.response["Error"]
    assert lab.admin_objects() == before


def test_the_cdc_role_hands_a_big_snapshot_to_the_spark_job_and_starts_no_other_job(
    ran: tuple[RolesLab, ChainResult], template: dict[str, Any]
) -> None:
    # Given the lab, and the stack's Glue job and another job in it
    lab, _ = ran
    name = spark_job_name(template)
    create_glue_job(lab, name)
    create_glue_job(lab, "someone-elses-job")
    with enforcing(), lab.as_principal("cdc") as session:
        lab.current_session = session
        # When the CDC function starts the stack's job (the size routing's hand-off)
        started = start_spark_job(lab, name)
        # Then it may; and it may not start another job
        assert started["JobRunId"]
        with pytest.raises(ClientError) as denied:
            start_spark_job(lab, "someone-elses-job")
    assert is_denial(denied.value.response["Error"]), denied.value.response["Error"]


def test_the_state_change_handler_heals_a_failed_run_under_its_role_and_restarts_no_other_job(
    ran: tuple[RolesLab, ChainResult], template: dict[str, Any]
) -> None:
    # Given the stack's Glue job, another job, and a snapshot the CDC function handed to the stack's job
    lab, _ = ran
    name = spark_job_name(template)
    create_glue_job(lab, name)
    create_glue_job(lab, "someone-elses-job")
    snap = "20260301T090000Z"
    with enforcing(), lab.as_principal("cdc") as session:
        store = lab.store(session)
        route = SparkRoute(session.client("glue", endpoint_url=lab.aws.endpoint), name, 0)
        handed = route.hand_over(store, "clientes", snap)
    assert handed.run_id is not None
    # When Glue reports the run FAILED and the state-change handler runs as its role
    event = {
        "version": "0",
        "id": "roles-lab",
        "detail-type": "Glue Job State Change",
        "source": "aws.glue",
        "account": "123456789012",
        "time": "2026-03-01T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"jobName": name, "state": "FAILED", "jobRunId": handed.run_id},
    }
    assert lab.enforcement is not None
    denied_before = len(lab.enforcement.denied)
    with enforcing(), lab.as_principal("spark-state") as session, patched_environ({"SPARK_JOB_NAME": name}):
        lab.current_session = session
        healed = load_handler("spark_state").lambda_handler(event, LocalLambdaContext("snapcdc-spark-state"))
        # Then it read the run, replaced the claim and started the table again, with no call denied
        assert (healed["action"], healed["table"], healed["snapshot"]) == ("restarted", "clientes", snap)
        assert lab.enforcement.denied[denied_before:] == []
        # And it may not start another job, nor delete the claim it rewrote
        with pytest.raises(ClientError) as other_job:
            start_spark_job(lab, "someone-elses-job")
        s3 = session.client("s3", endpoint_url=lab.aws.endpoint)
        with pytest.raises(ClientError) as delete_claim:
            s3.delete_object(Bucket=lab.bucket, Key=lab.store(session).layout.claim_key("clientes", snap))
    assert is_denial(other_job.value.response["Error"]), other_job.value.response["Error"]
    assert is_denial(delete_claim.value.response["Error"]), delete_claim.value.response["Error"]
