"""A pipeline Lambda function: its own role, log group, DLQ and async-invoke policy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Size
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagSuppressions
from constructs import Construct

from stacks.checkov import skip_checks
from stacks.constructs.layers import ARCHITECTURE, RUNTIME
from stacks.packaging import CODE_EXCLUDES

_R = logs.RetentionDays
RETENTION = {
    1: _R.ONE_DAY, 3: _R.THREE_DAYS, 5: _R.FIVE_DAYS, 7: _R.ONE_WEEK, 14: _R.TWO_WEEKS, 30: _R.ONE_MONTH,
    60: _R.TWO_MONTHS, 90: _R.THREE_MONTHS, 120: _R.FOUR_MONTHS, 150: _R.FIVE_MONTHS, 180: _R.SIX_MONTHS,
    365: _R.ONE_YEAR, 400: _R.THIRTEEN_MONTHS, 545: _R.EIGHTEEN_MONTHS, 731: _R.TWO_YEARS,
    1096: _R.THREE_YEARS, 1827: _R.FIVE_YEARS, 2192: _R.SIX_YEARS, 2557: _R.SEVEN_YEARS,
}  # fmt: skip


class PipelineFunction(Construct):
    """A Python 3.12 arm64 function with X-Ray, a retained log group and a failure queue.

    The role is created here (not by ``lambda_.Function``) so it carries no AWS managed policy:
    logs go only to this function's log group, and every other permission is granted explicitly.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        logical_id: str,
        description: str,
        code_dir: Path,
        layers: Sequence[lambda_.ILayerVersion],
        environment: dict[str, str],
        memory_mb: int,
        timeout: Duration,
        ephemeral_storage_mb: int,
        log_retention_days: int,
        log_key: kms.IKey,
        max_event_age: Duration,
        reserved_concurrency: int | None = None,
    ) -> None:
        super().__init__(scope, construct_id)

        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{description} (least privilege, prefix-scoped)",
        )
        self.log_group = logs.LogGroup(
            self,
            "LogGroup",
            retention=RETENTION[log_retention_days],
            encryption_key=log_key,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.log_group.grant_write(self.role)

        # Failed async invocations (after the retries) land here for inspection and replay.
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        NagSuppressions.add_resource_suppressions(
            self.dead_letter_queue,
            [
                {
                    "id": "AwsSolutions-SQS3",
                    "reason": "This queue is itself the dead-letter destination of the function's failed"
                    " async invocations (Lambda on-failure destination), so it needs no DLQ of its own.",
                }
            ],
        )
        skip_checks(
            self.dead_letter_queue,
            (
                "CKV_AWS_27",
                "Encrypted at rest with SSE-SQS (SqsManagedSseEnabled: true), which this check does not"
                " recognise (it looks for KmsMasterKeyId only). The messages are failed invocation records"
                " (an S3 key or a schedule time and the error), no table data.",
            ),
        )

        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler="handler.lambda_handler",
            code=lambda_.Code.from_asset(str(code_dir), exclude=list(CODE_EXCLUDES)),
            layers=list(layers),
            role=self.role,
            environment=environment,
            memory_size=memory_mb,
            timeout=timeout,
            ephemeral_storage_size=Size.mebibytes(ephemeral_storage_mb),
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            reserved_concurrent_executions=reserved_concurrency or None,
        )
        cfn_function = self.function.node.default_child
        assert isinstance(cfn_function, lambda_.CfnFunction)
        # Fixed, readable logical id: `sam local invoke <logical_id>` and dashboards refer to it.
        cfn_function.override_logical_id(logical_id)
        # CDK lists the role in DependsOn although Role: GetAtt already orders it (cfn-lint W3005);
        # keep only the policy, which the function must not run without.
        default_policy = self.role.node.find_child("DefaultPolicy").node.default_child
        assert isinstance(default_policy, iam.CfnPolicy)
        cfn_function.add_override("DependsOn", [default_policy.logical_id])
        skip_checks(
            cfn_function,
            (
                "CKV_AWS_116",
                "Failed asynchronous invocations go to the SQS on-failure destination of the function's"
                " EventInvokeConfig, which carries the error and the request along with the event;"
                " a DeadLetterConfig as well would deliver every failure twice.",
            ),
            (
                "CKV_AWS_117",
                "The function reaches only public endpoints (S3, Secrets Manager, CloudWatch, X-Ray and, for"
                " the extract, the Kaggle API), nothing inside a VPC; a VPC would add NAT gateways or"
                " interface endpoints and no isolation. Data access is limited by the role, the bucket"
                " policy (TLS) and the key.",
            ),
            (
                "CKV_AWS_173",
                "The environment holds names and ARNs only (bucket, prefix, secret ARN, log settings), no"
                " secret: the Kaggle token is read from Secrets Manager at run time. Lambda encrypts the"
                " environment at rest with its AWS managed key.",
            ),
        )

        self.function.configure_async_invoke(
            retry_attempts=2,
            max_event_age=max_event_age,
            on_failure=destinations.SqsDestination(self.dead_letter_queue),
        )

        NagSuppressions.add_resource_suppressions(
            self.function,
            [
                {
                    "id": "AwsSolutions-L1",
                    "reason": "Python 3.12 on purpose: the AWS SDK for pandas layer the CDC function needs is"
                    " pinned to a python3.12 build, and both functions share the core layer and runtime.",
                }
            ],
        )
        # X-Ray's PutTraceSegments/PutTelemetryRecords support no resource-level permissions.
        NagSuppressions.add_resource_suppressions(
            self.role,
            [
                {
                    "id": "AwsSolutions-IAM5",
                    "reason": "X-Ray tracing: xray:PutTraceSegments and xray:PutTelemetryRecords only accept"
                    " Resource '*' (X-Ray has no resource-level permissions for them).",
                    "appliesTo": ["Resource::*"],
                }
            ],
            apply_to_children=True,
        )
