"""Run the pipeline as the stack's IAM principals, in moto with IAM enforcement on.

The roles' policy documents are taken from the synthesized template, their intrinsics resolved for
the lab's account, bucket, key and secret, and given to roles in moto; each stage then runs with
the temporary credentials of its role (as Lambda runs a function with its execution role's):

- extract (``lambdas/extract/handler.py``) as the extract role, against the fake Kaggle API;
- CDC (``lambdas/cdc/handler.py``) as the CDC role, once per new raw CSV;
- ``verify`` and ``replay`` as an operator holding the stack's operator managed policies.

What moto 5.2 checks, and what this lab adds (the rest is asserted on the template, tests/infra):

- S3: action and resource (bucket or object ARN) of every request; identity policies only.
- Secrets Manager and KMS: moto authorizes them on Resource "*" only; the lab teaches it the
  resource (the secret's or key's ARN, ``_teach_moto_resources``) so a resource-scoped grant is
  checked as AWS checks it.
- KMS through S3: moto's S3 never calls KMS. AWS makes S3 call KMS as the caller for an SSE-KMS
  bucket: kms:GenerateDataKey to write (PutObject, CreateMultipartUpload), kms:Decrypt to read
  (GetObject) and to add parts (UploadPart, CompleteMultipartUpload). The lab makes those calls,
  with the caller's credentials, before each such S3 request (``SSE_KMS_CALLS``).
- Condition keys: moto evaluates none in identity policies (it ignores them, so a conditional
  Allow applies unconditionally). ``s3:prefix`` (StringLike, on ListBucket) is evaluated here, on
  the client, from the same statements (``_check_list_prefix``). ``kms:ViaService`` is not: every
  KMS call of the lab is made "through S3" by construction, so it cannot tell; its template
  assertion stays (tests/infra/test_iam.py).
- Resource policies (the key policy that lets the extract role decrypt the secret, the bucket
  policy's TLS-only Deny) are not evaluated by moto: asserted on the template.
- The Lambda service's own calls with the role (logs to the log group, X-Ray segments, the failed
  event to the DLQ) are not made by the code: not run here (``RUNTIME_ACTIONS``).
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
PARTITION = "aws"

# Actions the Lambda service performs with the execution role; the handlers' code never calls them.
RUNTIME_ACTIONS = frozenset(
    {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "sqs:SendMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
    }
)
# S3 operation -> the KMS action S3 performs as the caller on an SSE-KMS bucket.
SSE_KMS_CALLS = {
    "PutObject": "GenerateDataKey",
    "CreateMultipartUpload": "GenerateDataKey",
    "GetObject": "Decrypt",
    "UploadPart": "Decrypt",
    "CompleteMultipartUpload": "Decrypt",
}
DENIED_CODES = {"AccessDenied", "AccessDeniedException"}


def is_denial(error: dict[str, Any]) -> bool:
    """A parsed error of any service is an access denial. moto answers JSON-protocol services (Secrets
    Manager, KMS) with its XML error body, which botocore reports as code "403" with the XML as message."""
    code = str(error.get("Code", ""))
    return code in DENIED_CODES or (code == "403" and "<Code>AccessDenied" in str(error.get("Message", "")))


# -- the template's intrinsics -------------------------------------------------------------------


@dataclass(frozen=True)
class Resolver:
    """Resolves Ref / Fn::GetAtt / Fn::Join / Fn::Sub / pseudo parameters for the lab.

    ``refs`` maps a logical id to what Ref gives (a secret's ARN, a key's id...), ``attributes``
    maps "LogicalId.Attribute" to what Fn::GetAtt gives. An intrinsic it cannot resolve raises:
    a policy is never given to moto half resolved.
    """

    refs: dict[str, str]
    attributes: dict[str, str]

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((name, arg),) = value.items()
            if name == "Ref":
                return self._ref(arg)
            if name == "Fn::GetAtt":
                key = ".".join(arg) if isinstance(arg, list) else arg
                if key not in self.attributes:
                    raise KeyError(f"Fn::GetAtt {key}: not modelled in the lab")
                return self.attributes[key]
            if name == "Fn::Join":
                separator, parts = arg
                return separator.join(str(self(p)) for p in parts)
            if name == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                resolved = {k: self(v) for k, v in variables.items()}
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(resolved.get(m[1]) or self._sub(m[1])), text)
        return {k: self(v) for k, v in value.items()}

    def _sub(self, name: str) -> str:
        if "." in name:
            return str(self({"Fn::GetAtt": name.split(".", 1)}))
        return self._ref(name)

    def _ref(self, name: str) -> str:
        pseudo = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": PARTITION}
        if name in pseudo:
            return pseudo[name]
        if name not in self.refs:
            raise KeyError(f"Ref {name}: not modelled in the lab")
        return self.refs[name]


def role_policy_documents(template: dict[str, Any], role_logical_id: str) -> dict[str, dict[str, Any]]:
    """Policy logical id -> document of every AWS::IAM::Policy attached to the role (unresolved)."""
    documents = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role_logical_id} in resource["Properties"]["Roles"]:
            documents[logical_id] = resource["Properties"]["PolicyDocument"]
    inline = template["Resources"][role_logical_id]["Properties"].get("Policies", [])
    for policy in inline:
        documents[policy["PolicyName"]] = policy["PolicyDocument"]
    return documents


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    body = document["Statement"]
    return body if isinstance(body, list) else [body]


def actions_of(statement: dict[str, Any]) -> list[str]:
    action = statement.get("Action", [])
    return action if isinstance(action, list) else [action]


def without_action(documents: dict[str, dict[str, Any]], action: str) -> dict[str, dict[str, Any]]:
    """The same documents with ``action`` taken out of every statement (an emptied statement goes)."""
    mutated = copy.deepcopy(documents)
    found = False
    for document in mutated.values():
        kept = []
        for statement in statements(document):
            remaining = [a for a in actions_of(statement) if a != action]
            found = found or len(remaining) < len(actions_of(statement))
            if remaining:
                kept.append({**statement, "Action": remaining})
        document["Statement"] = kept
    if not found:
        raise KeyError(f"{action} is in none of the documents")
    return mutated


# -- principals ----------------------------------------------------------------------------------


@dataclass
class Principal:
    """A role in moto with the template's documents, and its temporary credentials."""

    name: str
    documents: dict[str, dict[str, Any]]  # resolved
    credentials: dict[str, str]

    @property
    def environment(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.credentials["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": self.credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": self.credentials["SessionToken"],
        }

    def allows_list_prefix(self, bucket_arn: str, prefix: str) -> bool:
        """s3:ListBucket on the bucket with ``s3:prefix`` = ``prefix``, from the Allow statements.

        Evaluates what the stack uses: no condition, or StringLike on s3:prefix. Any other condition
        on a ListBucket statement is an error (the lab would not know how to evaluate it).
        """
        for document in self.documents.values():
            for statement in statements(document):
                if statement["Effect"] != "Allow" or not _matches_any(actions_of(statement), "s3:ListBucket"):
                    continue
                resources = statement.get("Resource", [])
                if not _matches_any(resources if isinstance(resources, list) else [resources], bucket_arn):
                    continue
                conditions = statement.get("Condition", {})
                if not conditions:
                    return True
                if set(conditions) != {"StringLike"} or set(conditions["StringLike"]) != {"s3:prefix"}:
                    raise NotImplementedError(f"{self.name}: ListBucket condition not evaluated here: {conditions}")
                patterns = conditions["StringLike"]["s3:prefix"]
                patterns = patterns if isinstance(patterns, list) else [patterns]
                if any(fnmatch.fnmatchcase(prefix, p) for p in patterns):
                    return True
        return False


def _matches_any(patterns: list[str], value: str) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


@dataclass
class DeniedCall:
    principal: str
    service: str
    operation: str
    target: str

    def __str__(self) -> str:
        return f"{self.principal}: {self.service}:{self.operation} {self.target}".rstrip()


@dataclass
class Enforcement:
    """What the lab adds around the boto3 clients of a principal: SSE-KMS calls, s3:prefix, a log."""

    endpoint: str
    bucket: str
    key_arn: str
    ciphertext: bytes  # a data key under the data key: what S3 keeps with an object and decrypts on reads
    denied: list[DeniedCall] = field(default_factory=list)

    def session(self, principal: Principal) -> boto3.Session:
        session = boto3.Session(
            aws_access_key_id=principal.credentials["AccessKeyId"],
            aws_secret_access_key=principal.credentials["SecretAccessKey"],
            aws_session_token=principal.credentials["SessionToken"],
            region_name=REGION,
        )
        self._instrument(session, principal)
        return session

    def _instrument(self, session: boto3.Session, principal: Principal) -> None:
        kms: list[Any] = []
        last_params: dict[str, Any] = {}

        def kms_client() -> Any:
            if not kms:
                kms.append(session.client("kms", endpoint_url=self.endpoint))
            return kms[0]

        def sse_kms(params: dict[str, Any], model: Any, **_: Any) -> None:
            if params.get("Bucket") != self.bucket:
                return
            if SSE_KMS_CALLS[model.name] == "GenerateDataKey":
                kms_client().generate_data_key(KeyId=self.key_arn, KeySpec="AES_256")
            else:
                kms_client().decrypt(CiphertextBlob=self.ciphertext, KeyId=self.key_arn)

        def list_prefix(params: dict[str, Any], model: Any, **_: Any) -> None:
            bucket_arn = f"arn:{PARTITION}:s3:::{params.get('Bucket')}"
            prefix = params.get("Prefix", "")
            if not principal.allows_list_prefix(bucket_arn, prefix):
                self.denied.append(DeniedCall(principal.name, "s3", model.name, f"Prefix={prefix!r} (s3:prefix)"))
                raise ClientError(
                    {"Error": {"Code": "AccessDenied", "Message": f"s3:prefix {prefix!r} not allowed (lab)"}},
                    model.name,
                )

        def remember(params: dict[str, Any], model: Any, **_: Any) -> None:
            last_params[model.name] = params

        def record(http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
            # A denied HEAD has no body: its 403 is all there is.
            if not is_denial(parsed.get("Error", {})) and http_response.status_code != 403:
                return
            params = last_params.get(model.name) or {}
            target = params.get("Key") or params.get("SecretId") or params.get("KeyId") or ""
            self.denied.append(DeniedCall(principal.name, model.service_model.endpoint_prefix, model.name, target))

        events = session.events
        events.register("before-parameter-build.*.*", remember)
        for operation in SSE_KMS_CALLS:
            events.register(f"before-parameter-build.s3.{operation}", sse_kms)
        for operation in ("ListObjectsV2", "ListObjects"):
            events.register(f"before-parameter-build.s3.{operation}", list_prefix)
        events.register("after-call.*.*", record)


# -- moto ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def admin_mode() -> Iterator[None]:
    """IAM enforcement off: the lab's own set-up calls."""
    from moto.core.authorization import disable_iam_authentication

    with disable_iam_authentication():
        yield


@contextlib.contextmanager
def enforcing() -> Iterator[None]:
    """IAM enforcement on for every request moto serves in this process."""
    from moto.core.authorization import enable_iam_authentication

    with enable_iam_authentication():
        yield


@contextlib.contextmanager
def teach_moto_resources() -> Iterator[None]:
    """Make moto authorize Secrets Manager, KMS and Glue table and job requests on the secret's / key's /
    table's / job's ARN, not "*" (a Glue call is authorized on its table's ARN; AWS also checks the catalog and database
    ARNs, which the CDC role's statement names and tests/infra/test_iam.py asserts)."""
    from moto.glue.responses import GlueResponse
    from moto.kms.responses import KmsResponse
    from moto.secretsmanager.responses import SecretsManagerResponse

    def secret_arn(self: Any) -> str:
        secret_id = self._get_param("SecretId")
        if not secret_id:
            return "*"
        try:
            return str(self.backend.secrets[secret_id].arn)
        except KeyError:
            return "*"

    def key_arn(self: Any) -> str:
        key_id = self._get_param("KeyId")
        if not key_id:
            return "*"
        try:
            return str(self.kms_backend.describe_key(key_id).arn)
        except Exception:
            return "*"

    def table_arn(self: Any) -> str:  # or a job's, for the job calls
        params = json.loads(self.body or "{}")
        if params.get("JobName"):
            return f"arn:aws:glue:{self.region}:{self.current_account}:job/{params['JobName']}"
        database, table = params.get("DatabaseName"), params.get("Name") or (params.get("TableInput") or {}).get("Name")
        if table and not database and "TableInput" not in params:  # GetDatabase (pyiceberg's commit asks)
            return f"arn:aws:glue:{self.region}:{self.current_account}:database/{table}"
        if not (database and table):
            return "*"
        return f"arn:aws:glue:{self.region}:{self.current_account}:table/{database}/{table}"

    patched = [(SecretsManagerResponse, secret_arn), (KmsResponse, key_arn), (GlueResponse, table_arn)]
    saved = [(cls, cls.__dict__.get("_determine_resource")) for cls, _ in patched]
    for cls, function in patched:
        cls._determine_resource = function  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for cls, original in saved:
            if original is None:
                del cls._determine_resource  # type: ignore[attr-defined]
            else:
                cls._determine_resource = original  # type: ignore[attr-defined]


def denied(error: BaseException) -> bool:
    """Whether an error (or one it was raised from) is an access denial."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ClientError) and is_denial(seen.response.get("Error", {})):
            return True
        if "AccessDenied" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def as_json(documents: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: json.dumps(document) for name, document in documents.items()}
