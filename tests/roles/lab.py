"""The whole chain run as the stack's principals: extract, CDC, verify, replay (see iam_lab.py).

``PRINCIPALS`` names each principal and where its policies are in the template; a principal added
to the stack later (the Glue job's role) is one more entry, and one more stage in ``Chain``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
from snapcdc.cdc.stage import TableProcessor
from snapcdc.config import load_config
from snapcdc.lake.layout import Layout, snapshot_id
from snapcdc.lake.store import S3Store
from snapcdc.ops.replay import replay
from snapcdc.ops.verify import verify
from snapcdc_dev.demo import FIRST_RUN, load_handler
from snapcdc_dev.embedded_aws import EmbeddedAws, embedded_aws, patched_environ
from snapcdc_dev.events import LocalLambdaContext, s3_object_created_event, scheduled_event
from snapcdc_dev.fake_kaggle import FakeKaggle
from snapcdc_dev.sample_data import LoyaltyDataset

from stacks.constructs.operators import REPLAY_LOGICAL_ID, VERIFY_LOGICAL_ID
from stacks.context import StackSettings

from .iam_lab import (
    ACCOUNT,
    REGION,
    DeniedCall,
    Enforcement,
    Principal,
    Resolver,
    admin_mode,
    as_json,
    denied,
    enforcing,
    role_policy_documents,
    teach_moto_resources,
)

CONFIG = load_config()
MOMENTS = [FIRST_RUN + timedelta(hours=4 * i) for i in range(2)]
REPLAYED_TABLE = CONFIG.tables[0].name


def _function_role(template: dict[str, Any], function: str) -> str:
    return str(template["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0])


def _managed_policy(template: dict[str, Any], logical_id: str) -> dict[str, dict[str, Any]]:
    return {logical_id: template["Resources"][logical_id]["Properties"]["PolicyDocument"]}


# principal -> its policy documents in the template (unresolved)
PRINCIPALS: dict[str, Callable[[dict[str, Any]], dict[str, dict[str, Any]]]] = {
    "extract": lambda t: role_policy_documents(t, _function_role(t, "ExtractFunction")),
    "cdc": lambda t: role_policy_documents(t, _function_role(t, "CdcFunction")),
    "operator-verify": lambda t: _managed_policy(t, VERIFY_LOGICAL_ID),
    "operator-replay": lambda t: _managed_policy(t, REPLAY_LOGICAL_ID),
}


def _resources_of(template: dict[str, Any], type_name: str) -> list[str]:
    return [k for k, v in template["Resources"].items() if v["Type"] == type_name]


GLUE_DATABASE = StackSettings().glue_database_name  # the database the stack creates (its default name)


@dataclass
class ChainResult:
    stages_done: list[str]
    failed_stage: str | None
    error: BaseException | None
    denied: list[DeniedCall]

    @property
    def ok(self) -> bool:
        return self.failed_stage is None

    @property
    def access_denied(self) -> bool:
        return bool(self.denied) or (self.error is not None and denied(self.error))

    def describe(self) -> str:
        if self.ok:
            return f"ok: {', '.join(self.stages_done)}"
        calls = "; ".join(map(str, self.denied)) or "no denied call recorded"
        return f"failed at {self.failed_stage}: {type(self.error).__name__}: {self.error} [denied: {calls}]"


@dataclass
class RolesLab:
    aws: EmbeddedAws
    kaggle: FakeKaggle
    template: dict[str, Any]
    tmp_path: Path
    log: Any
    bucket: str = ""
    secret_arn: str = ""
    enforcement: Enforcement | None = None
    principals: dict[str, Principal] = field(default_factory=dict)
    admin: Principal | None = None
    current_session: boto3.Session | None = None
    dataset: LoyaltyDataset = field(default_factory=lambda: LoyaltyDataset(seed=11, clients=200, transactions=300))

    # -- set-up (IAM enforcement off) ----------------------------------------------------------

    def set_up(self, overrides: dict[str, dict[str, dict[str, Any]]] | None = None) -> None:
        """Bucket, key, secret as the stack has them; one moto role per principal with its documents
        (``overrides``: principal -> replacement documents, for the mutation tests)."""
        with admin_mode():
            kms = self.aws.client("kms")
            key = kms.create_key(Description="data key")["KeyMetadata"]
            key_arn = key["Arn"]
            secret = self.aws.client("secretsmanager").create_secret(
                Name="SnapCdcKaggleCredentials",
                SecretString=json.dumps({"username": self.kaggle.username, "key": self.kaggle.key}),
            )
            self.secret_arn = secret["ARN"]
            resolver = self._resolver(key_arn, key["KeyId"])
            (bucket_id,) = [
                k
                for k in _resources_of(self.template, "AWS::S3::Bucket")
                if "BucketName" in self.template["Resources"][k]["Properties"]
            ]
            self.bucket = resolver(self.template["Resources"][bucket_id]["Properties"]["BucketName"])
            self.aws.client("glue").create_database(DatabaseInput={"Name": GLUE_DATABASE})  # the stack's
            s3 = self.aws.client("s3")
            s3.create_bucket(Bucket=self.bucket)
            s3.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
            s3.put_bucket_encryption(
                Bucket=self.bucket,
                ServerSideEncryptionConfiguration={
                    "Rules": [
                        {
                            "ApplyServerSideEncryptionByDefault": {
                                "SSEAlgorithm": "aws:kms",
                                "KMSMasterKeyID": key_arn,
                            },
                            "BucketKeyEnabled": True,
                        }
                    ]
                },
            )
            ciphertext = kms.generate_data_key(KeyId=key_arn, KeySpec="AES_256")["CiphertextBlob"]
            self.enforcement = Enforcement(self.aws.endpoint, self.bucket, key_arn, ciphertext)
            documents = {name: find(self.template) for name, find in PRINCIPALS.items()}
            documents |= overrides or {}
            for name, docs in documents.items():
                self.principals[name] = self._principal(name, {k: resolver(v) for k, v in docs.items()})
            everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
            self.admin = self._principal("lab-admin", {"admin": everything})

    def _resolver(self, key_arn: str, key_id: str) -> Resolver:
        refs, attributes = {}, {}
        for logical_id in _resources_of(self.template, "AWS::SecretsManager::Secret"):
            refs[logical_id] = self.secret_arn
        for logical_id in _resources_of(self.template, "AWS::KMS::Key"):
            attributes[f"{logical_id}.Arn"] = key_arn
            refs[logical_id] = key_id
        for logical_id in _resources_of(self.template, "AWS::Logs::LogGroup"):
            attributes[f"{logical_id}.Arn"] = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{logical_id}:*"
        for logical_id in _resources_of(self.template, "AWS::SQS::Queue"):
            attributes[f"{logical_id}.Arn"] = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{logical_id}"
        return Resolver(refs, attributes)

    def _principal(self, name: str, documents: dict[str, dict[str, Any]]) -> Principal:
        iam = self.aws.client("iam")
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}
            ],
        }
        role = iam.create_role(RoleName=f"lab-{name}", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
        for policy_name, document in as_json(documents).items():
            iam.put_role_policy(RoleName=f"lab-{name}", PolicyName=policy_name, PolicyDocument=document)
        credentials = self.aws.client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName=name)["Credentials"]
        return Principal(name, documents, credentials)

    # -- running as a principal ----------------------------------------------------------------

    @contextlib.contextmanager
    def as_principal(self, name: str) -> Iterator[boto3.Session]:
        """boto3's default session (what the handlers' boto3.client uses) is the principal's."""
        assert self.enforcement is not None
        principal = self.admin if name == "lab-admin" else self.principals[name]
        assert principal is not None
        session = self.enforcement.session(principal)
        saved = boto3.DEFAULT_SESSION
        boto3.DEFAULT_SESSION = session
        try:
            with patched_environ(principal.environment), contextlib.redirect_stdout(self.log):
                yield session
        finally:
            boto3.DEFAULT_SESSION = saved

    def store(self, session: boto3.Session) -> S3Store:
        return S3Store(session.client("s3", endpoint_url=self.aws.endpoint), self.bucket, Layout())

    def admin_store(self) -> S3Store:
        assert self.enforcement is not None and self.admin is not None
        return self.store(self.enforcement.session(self.admin))

    def admin_objects(self) -> dict[str, str]:
        """key -> ETag of every current object (IAM enforcement on or off)."""
        with enforcing():
            s3 = self.admin_store().client
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
            return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}

    def secrets_client(self) -> Any:
        """Secrets Manager as the principal of the current ``as_principal`` block."""
        assert self.current_session is not None
        return self.current_session.client("secretsmanager", endpoint_url=self.aws.endpoint)

    @property
    def environment(self) -> dict[str, str]:
        """What the stack puts in the functions' environment, for the lab's bucket and secret."""
        return {
            "BUCKET_NAME": self.bucket,
            "DATA_PREFIX": "",
            "KAGGLE_SECRET_ARN": self.secret_arn,
            "KAGGLE_ENDPOINT": self.kaggle.endpoint,
            "WORK_DIR": str(self.tmp_path / "work"),
            "POWERTOOLS_SERVICE_NAME": "snapcdc",
            "POWERTOOLS_METRICS_NAMESPACE": "snapcdc",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "GLUE_DATABASE": GLUE_DATABASE,
        }

    # -- the stages ----------------------------------------------------------------------------

    def extract(self, index: int) -> None:
        if index:
            self.dataset.advance()
        files = self.dataset.files()
        if index:  # a column added: the CDC run rewrites the earlier files and updates the Glue tables
            files["produtos.csv"] = _with_column(files["produtos.csv"], "DescNova", "x")
        self.kaggle.publish(CONFIG.dataset, files)
        with self.as_principal("extract"):
            result = load_handler("extract").lambda_handler(
                scheduled_event(MOMENTS[index]), LocalLambdaContext("snapcdc-extract")
            )
        if result["status"] != "extracted":
            raise StageError(f"extract: {result}")

    def cdc(self, index: int) -> None:
        snap = snapshot_id(MOMENTS[index])
        keys = [k for k in self.admin_store().list_keys("raw/") if f"snapshot={snap}/" in k and k.endswith(".csv")]
        if len(keys) != len(CONFIG.tables):
            raise StageError(f"cdc: {len(keys)} raw CSVs for {snap}")
        with self.as_principal("cdc"):
            handler = load_handler("cdc")
            for key in keys:
                summary = handler.lambda_handler(
                    s3_object_created_event(self.bucket, [(key, 1, "etag")]), LocalLambdaContext("snapcdc-cdc")
                )
                if any(r["status"] != "accepted" for r in summary["processed"]) or summary["failures"]:
                    raise StageError(f"cdc: {summary}")

    def abandoned_upload(self, name: str, prefix: str) -> None:
        """What boto3's transfer manager does when a part fails: start a multipart upload, abort it."""
        with self.as_principal(name) as session:
            s3 = session.client("s3", endpoint_url=self.aws.endpoint)
            key = f"{prefix}_lab/abandoned-{name}.bin"
            upload = s3.create_multipart_upload(Bucket=self.bucket, Key=key)
            s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload["UploadId"])

    def verify(self) -> None:
        with self.as_principal("operator-verify") as session:
            results = verify(self.store(session), list(CONFIG.tables))
        if not all(r.ok for r in results):
            raise StageError(f"verify: {[r.line() for r in results]}")

    def replay(self) -> None:
        with self.as_principal("operator-replay") as session:
            records = replay(TableProcessor(self.store(session), CONFIG.table(REPLAYED_TABLE)))
        if len(records) != len(MOMENTS) or any(r.status != "accepted" for r in records):
            raise StageError(f"replay: {records}")

    def run_chain(self) -> ChainResult:
        """Every stage in order; stops at the first failure."""
        assert self.enforcement is not None
        stages: list[tuple[str, Callable[[], None]]] = []
        for index in range(len(MOMENTS)):
            stages += [
                (f"extract#{index}", lambda i=index: self.extract(i)),
                (f"cdc#{index}", lambda i=index: self.cdc(i)),
            ]
        stages += [
            ("extract abandons an upload", lambda: self.abandoned_upload("extract", "raw/")),
            ("cdc abandons an upload", lambda: self.abandoned_upload("cdc", "cdc/")),
            ("verify", self.verify),
            ("replay", self.replay),
            ("replay abandons an upload", lambda: self.abandoned_upload("operator-replay", "cdc/")),
            ("verify after replay", self.verify),
        ]
        done: list[str] = []
        with enforcing():
            for name, stage in stages:
                try:
                    stage()
                except Exception as error:
                    return ChainResult(done, name, error, list(self.enforcement.denied))
                done.append(name)
        return ChainResult(done, None, None, list(self.enforcement.denied))


class StageError(AssertionError):
    """A stage ran but did not give the result the design expects."""


@contextlib.contextmanager
def open_roles_lab(
    template: dict[str, Any], tmp_path: Path, overrides: dict[str, dict[str, dict[str, Any]]] | None = None
) -> Iterator[RolesLab]:
    """Embedded AWS with IAM enforcement available, fake Kaggle, the stack's principals in moto."""
    with (
        (tmp_path / "lambda.log").open("w") as log,
        embedded_aws() as aws,
        FakeKaggle() as kaggle,
        teach_moto_resources(),
    ):
        lab = RolesLab(aws=aws, kaggle=kaggle, template=template, tmp_path=tmp_path, log=log)
        lab.set_up(overrides)
        with patched_environ(lab.environment):
            yield lab


def _with_column(csv: bytes, name: str, value: str) -> bytes:
    """A semicolon-separated file with one more column, ``value`` in every row."""
    header, *rows = csv.decode("utf-8").splitlines()
    return ("\n".join([f"{header};{name}", *(f"{row};{value}" for row in rows)]) + "\n").encode("utf-8")


def spark_job_name(template: dict[str, Any]) -> str:
    """The name of the stack's Glue job (the CDC function may start it, and only it)."""
    (job,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::Glue::Job"]
    return str(job["Properties"]["Name"])


def start_spark_job(lab: RolesLab, job_name: str) -> Any:
    """The hand-off as the CDC function makes it (a run of the Glue job), as the current principal."""
    assert lab.current_session is not None
    glue = lab.current_session.client("glue", endpoint_url=lab.aws.endpoint)
    return glue.start_job_run(JobName=job_name, Arguments={"--TABLE": "clientes", "--SNAPSHOT": "20260105T090000Z"})


def create_glue_job(lab: RolesLab, job_name: str) -> None:
    """The job as the stack creates it (as the lab's admin)."""
    with enforcing():
        assert lab.admin is not None and lab.enforcement is not None
        glue = lab.enforcement.session(lab.admin).client("glue", endpoint_url=lab.aws.endpoint)
        glue.create_job(Name=job_name, Role="lab-glue", Command={"Name": "glueetl", "ScriptLocation": "s3://x/y.py"})
