"""A failed Spark job run heals: the EventBridge rule on the job's "Glue Job State Change" (FAILED, TIMEOUT,
STOPPED, ERROR) invokes a small function (lambdas/spark_state, :mod:`snapcdc.cdc.healing`) that releases
the run's claim and starts the table again, ``glue_max_retries`` times, then gives up with a metric per
table that alarms.

Its role holds only what that takes: read and (conditionally) rewrite the claims
``_runs/<table>/snapshot=<SNAP>.glue.json`` (never a run record or any other object), list ``_runs/``
to find them, the data key through S3, and glue:GetJobRun / glue:StartJobRun on this one job.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from cdk_nag import NagSuppressions
from constructs import Construct
from snapcdc.lake.layout import CLAIM_SUFFIX, RUNS_PREFIX
from snapcdc.settings import Env

from stacks.constructs.function import PipelineFunction
from stacks.constructs.layers import SharedLayers
from stacks.constructs.spark_job import SparkCdcJob
from stacks.constructs.storage import DataLakeStorage
from stacks.context import StackSettings
from stacks.packaging import SPARK_STATE_CODE_DIR

SPARK_STATE_SERVICE = "snapcdc-spark-state"
SPARK_STATE_LOGICAL_ID = "SparkStateFunction"
# What snapcdc.cdc.healing calls on the job: the failed run's arguments, then a new run.
HEALER_GLUE_ACTIONS = ["glue:GetJobRun", "glue:StartJobRun"]


class SparkRunHealer(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StackSettings,
        storage: DataLakeStorage,
        layers: SharedLayers,
        job: SparkCdcJob,
    ) -> None:
        super().__init__(scope, construct_id)
        self.handler = PipelineFunction(
            self,
            "Handler",
            logical_id=SPARK_STATE_LOGICAL_ID,
            description="snapcdc spark state: a failed Glue job run -> its claim released, its table run again",
            code_dir=SPARK_STATE_CODE_DIR,
            layers=[layers.core, layers.powertools],
            environment={
                Env.BUCKET_NAME.value: storage.bucket_name,
                Env.DATA_PREFIX.value: settings.data_prefix,
                Env.SPARK_JOB_NAME.value: job.job_name,
                Env.SPARK_MAX_RESTARTS.value: str(settings.glue_max_retries),
                Env.POWERTOOLS_SERVICE_NAME.value: SPARK_STATE_SERVICE,
                Env.POWERTOOLS_METRICS_NAMESPACE.value: settings.metrics_namespace,
                Env.LOG_LEVEL.value: settings.log_level,
            },
            memory_mb=256,
            timeout=Duration.minutes(1),
            ephemeral_storage_mb=512,
            log_retention_days=settings.log_retention_days,
            log_key=storage.log_key,
            # A state change is handled within the hour or not at all: the CDC function takes over a claim
            # older than the job's timeout anyway.
            max_event_age=Duration.hours(1),
            # One at a time is plenty (a state change is rare and handled in a second); the claim's
            # conditional put keeps concurrent handlers safe anyway.
            reserved_concurrency=1,
        )
        self.function = self.handler.function
        self.dead_letter_queue = self.handler.dead_letter_queue
        role = self.handler.role

        claims = f"{storage.bucket_arn}/{storage.key_prefix}{RUNS_PREFIX}*{CLAIM_SUFFIX}"
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadAndReplaceClaims", actions=["s3:GetObject", "s3:PutObject"], resources=[claims]
            )
        )
        storage.grant_list(role, [RUNS_PREFIX])
        storage.grant_key_use(role, ["kms:Decrypt", "kms:GenerateDataKey"])
        role.add_to_principal_policy(
            iam.PolicyStatement(sid="RestartSparkCdcJob", actions=HEALER_GLUE_ACTIONS, resources=[job.job_arn])
        )
        job.failures.add_target(targets.LambdaFunction(self.function, retry_attempts=2))
        NagSuppressions.add_resource_suppressions(
            role,
            [
                {
                    "id": "AwsSolutions-IAM5",
                    "reason": "The Spark job's claims only, _runs/<table>/snapshot=<SNAP>.glue.json for every table"
                    " and snapshot: object keys with a table and a time in them can only be named with a wildcard.",
                    "appliesTo": [{"regex": "/^Resource::arn:<AWS::Partition>:s3:::.+/_runs/\\*\\.glue\\.json$/"}],
                }
            ],
            apply_to_children=True,
        )
