"""The data lake's storage: a KMS key, the data bucket and the bucket its access logs go to."""

from __future__ import annotations

from aws_cdk import Aws, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct
from snapcdc.lake.layout import ARCHIVES_PREFIX, RAW_PREFIX

from stacks.checkov import skip_checks
from stacks.context import StackSettings

ATHENA_RESULTS_PREFIX = "athena-results/"
# The extract streams each Kaggle download here and reads its members from it; the raw CSVs hold
# the data, so a download is kept only long enough to look at a refused one.
RAW_ARCHIVES_PREFIX = ARCHIVES_PREFIX
RAW_ARCHIVES_DAYS = 3


class DataLakeStorage(Construct):
    """The data bucket (SSE-KMS with a rotating CMK, versioned, TLS-only) and its log bucket.

    The bucket's name is known before the bucket exists (from context, or derived from the stack
    name, account and region), so the functions' environment and IAM policies can name it without
    referencing the bucket resource. That lets the bucket's own S3 -> Lambda notification be a
    plain CloudFormation property (no custom resource with an s3:PutBucketNotification on "*"),
    with no dependency cycle between the bucket, the function and its permission.
    """

    def __init__(self, scope: Construct, construct_id: str, *, settings: StackSettings) -> None:
        super().__init__(scope, construct_id)
        self.settings = settings
        self.key_prefix = settings.key_prefix
        stack = Stack.of(self)

        self.data_key = kms.Key(
            self,
            "DataKey",
            description=f"{stack.stack_name}: encrypts the data lake bucket, Athena results and the Kaggle secret",
            enable_key_rotation=True,
            alias=f"alias/{stack.stack_name.lower()}-data",
            removal_policy=RemovalPolicy.RETAIN,
        )
        # The functions' log groups: their lines carry keys, counts and error messages of the data.
        self.log_key = kms.Key(
            self,
            "LogKey",
            description=f"{stack.stack_name}: encrypts the functions' CloudWatch log groups",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.log_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogsOfThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                actions=[
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncryptFrom",
                    "kms:ReEncryptTo",
                    "kms:GenerateDataKey",
                    "kms:GenerateDataKeyWithoutPlaintext",
                    "kms:DescribeKey",
                ],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:*"
                        )
                    }
                },
            )
        )

        self.log_bucket = s3.Bucket(
            self,
            "AccessLogBucket",
            # S3 server access logs can only be delivered to an SSE-S3 bucket.
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            # Log delivery is granted by bucket policy (not ACLs), so ACLs can stay disabled.
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            # Versioned: a deleted or overwritten log object stays recoverable for a week.
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(settings.access_log_retention_days),
                    noncurrent_version_expiration=Duration.days(7),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        skip_checks(
            self.log_bucket,
            (
                "CKV_AWS_18",
                "This is the target bucket of the data bucket's server access logs; logging it too would"
                " need a further log bucket, without end (S3 advises against logging a target bucket into"
                " itself). Access to the log objects is auditable with CloudTrail data events instead.",
            ),
        )
        self.bucket_name: str = settings.bucket_name or Fn.join(
            "-", [f"{stack.stack_name.lower()}-data", Aws.ACCOUNT_ID, Aws.REGION]
        )
        self.bucket_arn: str = f"arn:{Aws.PARTITION}:s3:::{self.bucket_name}"

        raw_prefix = f"{self.key_prefix}{RAW_PREFIX}"
        lifecycle = [
            s3.LifecycleRule(
                id="raw-noncurrent-versions",
                prefix=raw_prefix,
                noncurrent_version_expiration=Duration.days(settings.raw_noncurrent_version_days),
            ),
            s3.LifecycleRule(
                id="athena-results",
                prefix=ATHENA_RESULTS_PREFIX,
                expiration=Duration.days(settings.athena_results_retention_days),
                noncurrent_version_expiration=Duration.days(1),
            ),
            s3.LifecycleRule(
                id="raw-archives",
                prefix=f"{self.key_prefix}{RAW_ARCHIVES_PREFIX}",
                expiration=Duration.days(RAW_ARCHIVES_DAYS),
                noncurrent_version_expiration=Duration.days(1),
            ),
            s3.LifecycleRule(id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(7)),
        ]
        if settings.raw_retention_days:
            lifecycle.append(
                s3.LifecycleRule(
                    id="raw-retention", prefix=raw_prefix, expiration=Duration.days(settings.raw_retention_days)
                )
            )

        self.bucket = s3.Bucket(
            self,
            "DataBucket",
            bucket_name=self.bucket_name,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.data_key,
            bucket_key_enabled=True,  # one KMS data key per bucket and period, not per object
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            server_access_logs_bucket=self.log_bucket,
            server_access_logs_prefix="data-bucket/",
            lifecycle_rules=lifecycle,
            removal_policy=RemovalPolicy.RETAIN,
        )

    # -- prefix-scoped access ------------------------------------------------------------------

    def objects_arn(self, relative_prefix: str) -> str:
        """ARN of the objects under ``<data_prefix>/<relative_prefix>``, e.g. ``raw/`` -> ``.../raw/*``."""
        return f"{self.bucket_arn}/{self.key_prefix}{relative_prefix}*"

    def list_prefixes(self, *relative_prefixes: str) -> list[str]:
        return [f"{self.key_prefix}{p}*" for p in relative_prefixes]

    def grant_objects(self, role: iam.IRole, actions: list[str], relative_prefixes: list[str]) -> None:
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=actions, resources=[self.objects_arn(p) for p in relative_prefixes])
        )

    def grant_list(self, role: iam.IRole, relative_prefixes: list[str]) -> None:
        """ListBucket, only for listings whose Prefix starts with one of ``relative_prefixes``."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[self.bucket_arn],
                conditions={"StringLike": {"s3:prefix": self.list_prefixes(*relative_prefixes)}},
            )
        )

    def grant_key_use(self, role: iam.IRole, actions: list[str]) -> None:
        """Use of the data key, and only through S3 (so never to decrypt the Kaggle secret)."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=actions,
                resources=[self.data_key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}},
            )
        )
