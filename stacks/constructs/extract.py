"""The extract side: the Kaggle secret, the extract function and the schedule that starts it."""

from __future__ import annotations

import json

from aws_cdk import Aws, Duration, SecretValue
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from cdk_nag import NagSuppressions
from constructs import Construct
from snapcdc.lake.layout import RAW_PREFIX
from snapcdc.settings import Env

from stacks.constructs.function import PipelineFunction
from stacks.constructs.layers import SharedLayers
from stacks.constructs.storage import DataLakeStorage
from stacks.context import StackSettings
from stacks.packaging import EXTRACT_CODE_DIR

EXTRACT_SERVICE = "snapcdc-extract"
EXTRACT_LOGICAL_ID = "ExtractFunction"
# A late retry of a scheduled event would label today's Kaggle data with an old snapshot time:
# give up after an hour (the event then goes to the DLQ) rather than extract under a stale SNAP.
EXTRACT_MAX_EVENT_AGE = Duration.hours(1)


class ExtractFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StackSettings,
        storage: DataLakeStorage,
        layers: SharedLayers,
    ) -> None:
        super().__init__(scope, construct_id)

        # The operator fills in the real values after deploy (docs/deploy.md). Encrypted with the
        # data CMK rather than aws/secretsmanager: the key policy and CloudTrail then cover it, and
        # only the extract role holds kms:Decrypt through Secrets Manager (the CDC role's key use is
        # conditioned on kms:ViaService=s3, so it could not decrypt the secret even with the ciphertext).
        self.kaggle_secret = secretsmanager.Secret(
            self,
            "KaggleCredentials",
            description='Kaggle API credentials for the extract function: {"username": ..., "key": ...}',
            encryption_key=storage.data_key,
            secret_string_value=SecretValue.unsafe_plain_text(json.dumps({"username": "", "key": ""})),
        )
        NagSuppressions.add_resource_suppressions(
            self.kaggle_secret,
            [
                {
                    "id": "AwsSolutions-SMG4",
                    "reason": "Kaggle API tokens are issued from the kaggle.com account page; Kaggle has no API"
                    " to create or revoke them, so a rotation Lambda cannot rotate them. Rotation is a"
                    " manual runbook step (docs/deploy.md).",
                }
            ],
        )

        self.handler = PipelineFunction(
            self,
            "Handler",
            logical_id=EXTRACT_LOGICAL_ID,
            description="snapcdc extract: Kaggle dataset -> raw/<table>/snapshot=<SNAP>/ CSVs + manifest",
            code_dir=EXTRACT_CODE_DIR,
            layers=[layers.core, layers.kaggle, layers.powertools],
            environment={
                Env.BUCKET_NAME.value: storage.bucket_name,
                Env.DATA_PREFIX.value: settings.data_prefix,
                Env.KAGGLE_SECRET_ARN.value: self.kaggle_secret.secret_arn,
                Env.POWERTOOLS_SERVICE_NAME.value: EXTRACT_SERVICE,
                Env.POWERTOOLS_METRICS_NAMESPACE.value: settings.metrics_namespace,
                Env.LOG_LEVEL.value: settings.log_level,
            },
            memory_mb=settings.extract_memory_mb,
            timeout=Duration.minutes(settings.extract_timeout_minutes),
            ephemeral_storage_mb=settings.extract_ephemeral_storage_mb,
            log_retention_days=settings.log_retention_days,
            log_key=storage.log_key,
            max_event_age=EXTRACT_MAX_EVENT_AGE,
            # One extract at a time: a slow run overlapping the next schedule would only download
            # the same dataset twice (the core tolerates adjacent snapshots, so this is about cost).
            reserved_concurrency=settings.extract_reserved_concurrency,
        )
        self.function = self.handler.function
        self.dead_letter_queue = self.handler.dead_letter_queue
        role = self.handler.role

        # raw/ is the only prefix extract writes, and the only one it reads: back its own objects
        # (manifests to skip an unchanged dataset, HeadObject on the previous raw CSV to compare
        # checksums, the raw/<table>/ listing to find it, ranged GETs of the Kaggle download it
        # streamed to raw/_archives/). Its multipart uploads (the download, large CSVs) need
        # PutObject, AbortMultipartUpload (on any failure: no orphan parts) and, with SSE-KMS,
        # kms:Decrypt to complete; it never lists parts or uploads, and deletes nothing.
        storage.grant_objects(role, ["s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject"], [RAW_PREFIX])
        storage.grant_list(role, [RAW_PREFIX])
        # SSE-KMS needs kms:GenerateDataKey to write and kms:Decrypt to read (no kms:Encrypt: S3 never
        # calls it); tests/roles runs the extract without either and sees it fail.
        storage.grant_key_use(role, ["kms:GenerateDataKey", "kms:Decrypt"])
        # The secret's value and nothing else (Secret.grant_read adds DescribeSecret, which the
        # extract never calls); its key lets this role decrypt through Secrets Manager only.
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"], resources=[self.kaggle_secret.secret_arn])
        )
        storage.data_key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[role],
                actions=["kms:Decrypt"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={"StringEquals": {"kms:ViaService": f"secretsmanager.{Aws.REGION}.amazonaws.com"}},
            )
        )
        NagSuppressions.add_resource_suppressions(
            role,
            [
                {
                    "id": "AwsSolutions-IAM5",
                    "reason": "Object-level S3 permissions scoped to the one prefix extract owns, raw/* (object"
                    " keys under a prefix can only be named with a wildcard).",
                    "appliesTo": [{"regex": f"/^Resource::arn:<AWS::Partition>:s3:::.+/{RAW_PREFIX}\\*$/"}],
                }
            ],
            apply_to_children=True,
        )

        self.schedule = events.Rule(
            self,
            "Schedule",
            description="Starts a snapshot extract; the Kaggle dataset updates about every 4 hours",
            schedule=events.Schedule.expression(settings.schedule_expression),
            enabled=settings.schedule_enabled,
            targets=[
                targets.LambdaFunction(
                    self.function,
                    dead_letter_queue=self.dead_letter_queue,
                    retry_attempts=2,
                    max_event_age=EXTRACT_MAX_EVENT_AGE,
                )
            ],
        )
