"""The Iceberg tables kept, checked and rebuilt under the stack's own policies, in moto with IAM enforcement on.

The roles lab (tests/roles) gives each principal the documents of the synthesized template; moto then
authorizes every request it serves (Glue on the table's ARN, S3 on the object's ARN), pyarrow's own S3
client's (pyiceberg's metadata and data files) as much as boto3's. Here:

- the CDC function's role processes two snapshots of ``clientes`` and commits them (the Lambda path:
  the run's local files);
- the Glue job's role commits the same runs from the files their records list, as the job's tasks and
  driver do (:func:`snapcdc.cdc.iceberg.files.write_part` per file, then the metadata-only commit);
- the verify operator checks the tables, the replay operator drops and rebuilds them.

A role without one of the actions the commit needs is denied, pyarrow's requests included (the test of the test).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from snapcdc.cdc.iceberg.catalog import glue_catalog
from snapcdc.cdc.iceberg.commit import committed_snapshots
from snapcdc.cdc.iceberg.sync import IcebergLake, record_rows
from snapcdc.cdc.stage import TableProcessor
from snapcdc.lake.layout import snapshot_id
from snapcdc.lake.ledger import accepted_records
from snapcdc.lake.snapshot import Snapshot
from snapcdc.ops.verify import verify_table

from tests.roles.conftest import template  # noqa: F401 - the synthesized template, once per test process
from tests.roles.iam_lab import denied, enforcing, role_policy_documents, without_action
from tests.roles.lab import CONFIG, GLUE_DATABASE, MOMENTS, PRINCIPALS, RolesLab, open_roles_lab
from tests.support import put_raw

TABLE = CONFIG.table("clientes")  # Iceberg on in the packaged config
JOB = "spark-job"


def _job_role(template: dict[str, Any]) -> str:  # noqa: F811 - the fixture's name
    (job,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::Glue::Job"]
    return str(job["Properties"]["Role"]["Fn::GetAtt"][0])


@contextlib.contextmanager
def _lab(
    template: dict[str, Any],  # noqa: F811
    tmp_path: Path,
    job: dict[str, Any],
    overrides: dict[str, dict[str, Any]] | None = None,
) -> Iterator[RolesLab]:
    """The roles lab with the Glue job's role (``job``: its documents) and the raw snapshots of the table."""
    with open_roles_lab(template, tmp_path, overrides={JOB: job, **(overrides or {})}) as lab:
        store = lab.admin_store()
        with enforcing():
            for index, moment in enumerate(MOMENTS):
                if index:
                    lab.dataset.advance()
                put_raw(store, TABLE, snapshot_id(moment), lab.dataset.files()[TABLE.file])
        yield lab


@pytest.fixture
def lab(template: dict[str, Any], tmp_path: Path) -> Iterator[RolesLab]:  # noqa: F811
    with _lab(template, tmp_path, role_policy_documents(template, _job_role(template))) as opened:
        yield opened


def _iceberg(lab: RolesLab, session: Any) -> IcebergLake:
    glue = session.client("glue", endpoint_url=lab.aws.endpoint)
    return IcebergLake(glue_catalog(glue, s3_endpoint=lab.aws.endpoint), lab.store(session), GLUE_DATABASE)


def _process(lab: RolesLab, iceberg: bool) -> None:
    """The CDC function's run of every snapshot, as its role (its Iceberg commits too, when ``iceberg``)."""
    with lab.as_principal("cdc") as session:
        lake = _iceberg(lab, session) if iceberg else None
        processor = TableProcessor(lab.store(session), TABLE, lab.tmp_path / "work", iceberg=lake)
        processor.process(Snapshot.parse(snapshot_id(MOMENTS[-1])))


def _commit_as_the_job(lab: RolesLab) -> None:
    """The Glue job's commits of the accepted runs, as its role: each file its record lists, by key."""
    with lab.as_principal(JOB) as session:
        lake = _iceberg(lab, session)
        previous = None
        for record in accepted_records(lake.store, TABLE.name):
            lake.commit_snapshot(TABLE.name, record_rows(record, lake.store, previous), lab.tmp_path)
            previous = record.snapshot


def _committed(lab: RolesLab) -> dict[str, list[str]]:
    with lab.as_principal("lab-admin") as session:
        lake = _iceberg(lab, session)
        return {
            name: list(committed_snapshots(lake.catalog.load_table(lake.identifier(name))))
            for name in (TABLE.name, f"{TABLE.name}_changes")
        }


def test_the_cdc_role_commits_and_the_operators_verify_and_rebuild(lab: RolesLab) -> None:
    # Given / When: the CDC function's runs, as its role, with IAM enforced
    snaps = [snapshot_id(m) for m in MOMENTS]
    with enforcing():
        _process(lab, iceberg=True)
        committed = _committed(lab)
        # Then: both snapshots committed to both tables
        assert committed == {TABLE.name: snaps, f"{TABLE.name}_changes": snaps}
        # And the verify operator finds them equal to the snapshots (it reads iceberg/, glue:GetTable)
        with lab.as_principal("operator-verify") as session:
            result = verify_table(lab.store(session), TABLE, _iceberg(lab, session))
        assert result.ok and "iceberg OK" in result.message, result.line()
        # And the replay operator drops and rebuilds them (glue:DeleteTable, its only principal)
        with lab.as_principal("operator-replay") as session:
            outcomes = _iceberg(lab, session).rebuild(TABLE.name, lab.tmp_path)
        assert len(outcomes) == 2 * len(snaps) and not any(o.already for o in outcomes)
        assert _committed(lab) == committed
    assert lab.enforcement is not None and lab.enforcement.denied == []


def test_the_glue_job_role_commits_the_files_the_runs_wrote(lab: RolesLab) -> None:
    # Given: the runs done by the CDC function without Iceberg (their outputs and run records)
    snaps = [snapshot_id(m) for m in MOMENTS]
    with enforcing():
        _process(lab, iceberg=False)
        # When: the job's commits, as the job's role
        _commit_as_the_job(lab)
        # Then: both snapshots committed to both tables, nothing denied
        assert _committed(lab) == {TABLE.name: snaps, f"{TABLE.name}_changes": snaps}
    assert lab.enforcement is not None and lab.enforcement.denied == []


@pytest.mark.parametrize("action", ["glue:UpdateTable", "glue:CreateTable", "s3:PutObject"])
def test_the_job_role_without_an_action_the_commit_needs_is_denied(
    template: dict[str, Any],  # noqa: F811
    tmp_path: Path,
    action: str,
) -> None:
    # Given: the job's role without ``action`` (everything else as synthesized)
    documents = without_action(role_policy_documents(template, _job_role(template)), action)
    with _lab(template, tmp_path, documents) as lab, enforcing():
        _process(lab, iceberg=False)
        # When / Then: the job's commit fails, denied
        with pytest.raises(Exception) as raised:  # noqa: PT011 - a ClientError from boto3, an OSError from pyarrow
            _commit_as_the_job(lab)
        assert denied(raised.value) or "ACCESS_DENIED" in str(raised.value), raised.value


OPERATOR_MUTATIONS = [
    ("operator-verify", "glue:GetTable"),
    *(("operator-replay", a) for a in ("glue:GetTable", "glue:CreateTable", "glue:UpdateTable", "glue:DeleteTable")),
]


@pytest.mark.parametrize(
    ("operator", "action"), OPERATOR_MUTATIONS, ids=[f"{p} without {a}" for p, a in OPERATOR_MUTATIONS]
)
def test_an_operator_without_a_glue_action_on_the_iceberg_tables_is_denied(
    template: dict[str, Any],  # noqa: F811
    tmp_path: Path,
    operator: str,
    action: str,
) -> None:
    # Given: the tables committed by the CDC function; the operator's policy without ``action``
    documents = without_action(PRINCIPALS[operator](template), action)
    job = role_policy_documents(template, _job_role(template))
    with _lab(template, tmp_path, job, {operator: documents}) as lab, enforcing():
        _process(lab, iceberg=True)
        # When: verify (or replay) with the Iceberg tables, as the operator
        with lab.as_principal(operator) as session:
            lake = _iceberg(lab, session)
            try:
                if operator == "operator-verify":
                    result = verify_table(lab.store(session), TABLE, lake)
                    failure: BaseException | str = result.message if not result.ok else ""
                else:
                    lake.rebuild(TABLE.name, lab.tmp_path)
                    failure = ""
            except Exception as error:  # a ClientError from boto3
                failure = error
    # Then: it failed on a denied call
    assert failure, f"{operator} without {action} still succeeds"
    if isinstance(failure, str):
        assert "AccessDenied" in failure or "(403)" in failure, failure
    else:
        assert denied(failure), failure
