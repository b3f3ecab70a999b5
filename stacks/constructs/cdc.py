"""The CDC side: the function that diffs each new raw CSV, and the S3 event that starts it."""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from cdk_nag import NagSuppressions
from constructs import Construct
from snapcdc.cdc.catalog import glue_table_names
from snapcdc.lake.layout import (
    CDC_PREFIX,
    FEED_PREFIXES,
    FULL_LOAD_PREFIX,
    ICEBERG_PREFIX,
    QUARANTINE_PREFIX,
    RAW_PREFIX,
    RUNS_PREFIX,
    SNAPSHOTS_PREFIX,
)
from snapcdc.settings import Env

from stacks.constructs.function import PipelineFunction
from stacks.constructs.iceberg import grant_iceberg
from stacks.constructs.layers import SharedLayers
from stacks.constructs.storage import DataLakeStorage
from stacks.context import StackSettings
from stacks.packaging import CDC_CODE_DIR

CDC_SERVICE = "snapcdc-cdc"
CDC_LOGICAL_ID = "CdcFunction"
# Prefixes (under DATA_PREFIX) the CDC function reads and writes.
# full-load/ and cdc/: a schema migration reads the table's earlier files (footers, then the file).
# changelog/, scd2/, dms/: the change feeds (scd2/: its current versions file is read and rewritten).
CDC_READS = [RAW_PREFIX, SNAPSHOTS_PREFIX, RUNS_PREFIX, FULL_LOAD_PREFIX, CDC_PREFIX, *FEED_PREFIXES]
CDC_WRITES = [CDC_PREFIX, FULL_LOAD_PREFIX, SNAPSHOTS_PREFIX, QUARANTINE_PREFIX, RUNS_PREFIX, *FEED_PREFIXES]
CDC_LISTS = [RAW_PREFIX, SNAPSHOTS_PREFIX, RUNS_PREFIX, CDC_PREFIX, FULL_LOAD_PREFIX, *FEED_PREFIXES]
# What snapcdc.cdc.catalog calls: GetTable per Glue table each run, CreateTable or UpdateTable on a change.
CDC_GLUE_ACTIONS = ["glue:GetTable", "glue:CreateTable", "glue:UpdateTable"]


class CdcFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StackSettings,
        storage: DataLakeStorage,
        layers: SharedLayers,
        tables: list[str],
        feeds: dict[str, list[str]] | None = None,
        iceberg_tables: list[str] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)

        self.handler = PipelineFunction(
            self,
            "Handler",
            logical_id=CDC_LOGICAL_ID,
            description="snapcdc cdc: raw CSV snapshot -> cdc/, full-load/, snapshots/, quarantine/, _runs/",
            code_dir=CDC_CODE_DIR,
            layers=[layers.core, layers.aws_sdk_pandas, layers.powertools, layers.iceberg],
            environment={
                Env.BUCKET_NAME.value: storage.bucket_name,
                Env.DATA_PREFIX.value: settings.data_prefix,
                Env.GLUE_DATABASE.value: settings.glue_database_name,
                Env.POWERTOOLS_SERVICE_NAME.value: CDC_SERVICE,
                Env.POWERTOOLS_METRICS_NAMESPACE.value: settings.metrics_namespace,
                Env.LOG_LEVEL.value: settings.log_level,
                # numpy (imported with pyarrow) loads OpenBLAS, which starts a thread per further vCPU that
                # spins for a while: CPU spent during every cold start's import, for nothing, since the
                # engine calls no BLAS routine. One: the caller's thread only (issue #23, bench/cold_start_bench.py).
                Env.OPENBLAS_NUM_THREADS.value: "1",
            },
            memory_mb=settings.cdc_memory_mb,
            timeout=Duration.minutes(settings.cdc_timeout_minutes),
            ephemeral_storage_mb=settings.cdc_ephemeral_storage_mb,
            log_retention_days=settings.log_retention_days,
            log_key=storage.log_key,
            reserved_concurrency=settings.cdc_reserved_concurrency,
            # Every output is a pure function of the raw snapshots, so a late run is still correct.
            max_event_age=Duration.hours(6),
        )
        self.function = self.handler.function
        self.dead_letter_queue = self.handler.dead_letter_queue
        role = self.handler.role

        storage.grant_objects(role, ["s3:GetObject"], CDC_READS)
        storage.grant_objects(role, ["s3:PutObject", "s3:AbortMultipartUpload"], CDC_WRITES)
        storage.grant_list(role, CDC_LISTS + ([ICEBERG_PREFIX] if iceberg_tables else []))
        storage.grant_key_use(role, ["kms:Decrypt", "kms:GenerateDataKey"])
        role.add_to_principal_policy(glue_catalog_statement(settings.glue_database_name, tables, feeds or {}))
        grant_iceberg(role, storage, settings.glue_database_name, iceberg_tables or [])  # docs/iceberg.md
        NagSuppressions.add_resource_suppressions(
            role,
            [
                {
                    "id": "AwsSolutions-IAM5",
                    "reason": "Object-level S3 permissions scoped to the prefixes the CDC function owns (reads"
                    " raw/ snapshots/ _runs/, writes cdc/ full-load/ snapshots/ quarantine/ _runs/);"
                    " object keys under a prefix can only be named with a wildcard.",
                    "appliesTo": [
                        {"regex": f"/^Resource::arn:<AWS::Partition>:s3:::.+/{p.replace('/', '')}/\\*$/"}
                        for p in sorted(set(CDC_READS + CDC_WRITES + ([ICEBERG_PREFIX] if iceberg_tables else [])))
                    ],
                }
            ],
            apply_to_children=True,
        )

        self._subscribe_to_raw_csvs(storage)

    def _subscribe_to_raw_csvs(self, storage: DataLakeStorage) -> None:
        """S3 ObjectCreated (any method: multipart uploads end in CompleteMultipartUpload) on raw/**.csv.

        Set on the bucket's own NotificationConfiguration; S3 checks the invoke permission when
        the configuration is saved, so the bucket waits for the permission.
        """
        permission = lambda_.CfnPermission(
            self,
            "InvokeFromDataBucket",
            action="lambda:InvokeFunction",
            function_name=self.function.function_arn,
            principal="s3.amazonaws.com",
            source_arn=storage.bucket_arn,
            source_account=Aws.ACCOUNT_ID,  # the bucket ARN has no account: guard the confused deputy
        )
        cfn_bucket = storage.bucket.node.default_child
        assert isinstance(cfn_bucket, s3.CfnBucket)
        cfn_bucket.add_property_override(
            "NotificationConfiguration.LambdaConfigurations",
            [
                {
                    "Event": "s3:ObjectCreated:*",
                    "Filter": {
                        "S3Key": {
                            "Rules": [
                                {"Name": "prefix", "Value": f"{storage.key_prefix}{RAW_PREFIX}"},
                                {"Name": "suffix", "Value": ".csv"},
                            ]
                        }
                    },
                    "Function": self.function.function_arn,
                }
            ],
        )
        cfn_bucket.node.add_dependency(permission)


def glue_catalog_statement(
    database: str, tables: list[str], feeds: dict[str, list[str]] | None = None
) -> iam.PolicyStatement:
    """The catalog follows the data: the CDC function creates and updates its tables' Glue tables.

    Scoped to the account's catalog, the database and, per table of the pipeline config, exactly
    ``<table>_cdc``, ``<table>_full_load`` and ``<table>_snapshots`` (Glue checks all three levels),
    and ``<table>_<feed>`` for each change feed the table enables (``feeds``: table -> feeds).
    """
    glue_arn = f"arn:{Aws.PARTITION}:glue:{Aws.REGION}:{Aws.ACCOUNT_ID}"
    return iam.PolicyStatement(
        sid="GlueTablesFollowTheData",
        actions=CDC_GLUE_ACTIONS,
        resources=[
            f"{glue_arn}:catalog",
            f"{glue_arn}:database/{database}",
            *(
                f"{glue_arn}:table/{database}/{name}"
                for table in tables
                for name in glue_table_names(table, (feeds or {}).get(table, ()))
            ),
        ],
    )
