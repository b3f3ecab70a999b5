"""The CDC stage for tables past one Lambda: an AWS Glue 5 (Spark) job running :mod:`snapcdc.spark.job`
on one table snapshot, started by the CDC function when the raw object is larger than a threshold.

The job's role may do what the CDC function's role may do with the data (same prefixes, same Glue
tables, the same Iceberg tables: ``stacks.constructs.iceberg``), plus read its own code. A security
configuration encrypts what Glue writes to S3, its CloudWatch logs and its (disabled) bookmarks with the data key.
"""

from __future__ import annotations

from aws_cdk import Aws, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as assets
from cdk_nag import NagSuppressions
from constructs import Construct
from snapcdc.cdc.healing import FAILED_STATES
from snapcdc.lake.layout import (
    CDC_PREFIX,
    CHANGELOG_PREFIX,
    DMS_PREFIX,
    FULL_LOAD_PREFIX,
    ICEBERG_PREFIX,
    PART_SUFFIX,
    QUARANTINE_PREFIX,
    SNAPSHOTS_PREFIX,
    SPARK_PARTS_PREFIX,
)
from snapcdc.settings import JobArgument

from stacks.constructs.cdc import CDC_LISTS, CDC_READS, CDC_WRITES, glue_catalog_statement
from stacks.constructs.iceberg import grant_iceberg
from stacks.constructs.storage import DataLakeStorage
from stacks.context import StackSettings
from stacks.packaging import CODE_EXCLUDES, CORE_LAYER_DIR, SPARK_JOB_SCRIPT

# Glue 5.0 ships Spark 3.5.4 on Python 3.11 and the modules of glue/glue5-provided-modules.txt; the engine
# needs the same Arrow, pandas and numpy as the CDC function's layer (AWS SDK for pandas 3.17.0) and
# pydantic, and the claims need S3 conditional writes (If-None-Match, If-Match: boto3 1.35 on, where Glue
# has 1.34.131). Glue installs these from PyPI when a run starts (tests/spark/test_glue_environment.py runs
# the job with exactly these over Glue's list). The Iceberg commits (snapcdc.spark.iceberg) need pyiceberg
# 0.12.0 and what it requires that Glue 5.0 does not provide, pinned (Glue's fsspec 2024.6.1, pyparsing
# 3.1.2, requests 2.32.2, tenacity 9.0.0 and python-dateutil already meet pyiceberg's bounds).
GLUE_VERSION = "5.0"
ENGINE_MODULES = ("pyarrow==24.0.0", "pandas==3.0.1", "numpy==2.4.2", "pydantic==2.13.4", "boto3==1.44.8")
ICEBERG_MODULES = (
    "pyiceberg==0.12.0",
    "mmh3==5.3.1",
    "pyroaring==1.2.0",
    "zstandard==0.25.0",
    "strictyaml==1.7.3",
    "cachetools==8.0.2",
    "click==8.5.1",
    "rich==15.0.0",
    "markdown-it-py==4.3.0",
    "mdurl==0.1.2",
    "pygments==2.21.0",
)
ADDITIONAL_PYTHON_MODULES = ",".join((*ENGINE_MODULES, *ICEBERG_MODULES))
# Memory of one worker by type (Glue's worker types: G.1X 4 vCPU 16 GB, and so on, doubling).
WORKER_MEMORY_MB = {"G.1X": 16384, "G.2X": 32768, "G.4X": 65536, "G.8X": 131072}
# What the CDC function does with the job: start a run with the snapshot's arguments (whether a run is in
# flight or done, it reads from the claim and the run record in the bucket, not from Glue).
STARTER_ACTIONS = ["glue:StartJobRun"]
# The outputs the job's tasks write as part files (``<key>-part-00007.parquet``, Layout.part_key). A retried
# run deletes the parts an earlier attempt of the same snapshot left and it did not rewrite: the role may
# delete part files there, and nothing else (the CDC function's single files never match).
PART_MARK = PART_SUFFIX.partition("{")[0]  # "-part-"
PART_OUTPUT_PREFIXES = [SNAPSHOTS_PREFIX, FULL_LOAD_PREFIX, QUARANTINE_PREFIX, CDC_PREFIX, CHANGELOG_PREFIX, DMS_PREFIX]
PART_DELETES = [f"{prefix}*{PART_MARK}" for prefix in PART_OUTPUT_PREFIXES]  # each granted as <it>*


class SparkCdcJob(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StackSettings,
        storage: DataLakeStorage,
        tables: list[str],
        feeds: dict[str, list[str]] | None = None,
        iceberg_tables: list[str] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.job_name = f"{stack.stack_name.lower()}-cdc-spark"

        script = assets.Asset(self, "Script", path=str(SPARK_JOB_SCRIPT))
        # The core package as a zip for --extra-py-files (the folder's content: snapcdc/ at the root).
        package = assets.Asset(self, "CorePackage", path=str(CORE_LAYER_DIR / "python"), exclude=list(CODE_EXCLUDES))

        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
            description="snapcdc Spark CDC job: the CDC function's data access, for one table snapshot",
        )
        # Its own code: exactly the two asset objects (no wildcard).
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadJobCode",
                actions=["s3:GetObject"],
                resources=[
                    f"arn:{Aws.PARTITION}:s3:::{asset.s3_bucket_name}/{asset.s3_object_key}"
                    for asset in (script, package)
                ],
            )
        )
        storage.grant_objects(self.role, ["s3:GetObject"], CDC_READS)
        storage.grant_objects(self.role, ["s3:PutObject", "s3:AbortMultipartUpload"], CDC_WRITES)
        # The diff tasks' scratch (each bucket's changes): written by the executors, read by the merge tasks,
        # deleted by the driver once merged.
        storage.grant_objects(
            self.role,
            ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"],
            [SPARK_PARTS_PREFIX],
        )
        # An earlier failed attempt's stale parts of the snapshot being committed (only part files).
        storage.grant_objects(self.role, ["s3:DeleteObject"], PART_DELETES)
        iceberg = [ICEBERG_PREFIX] if iceberg_tables else []
        storage.grant_list(self.role, [*CDC_LISTS, QUARANTINE_PREFIX, SPARK_PARTS_PREFIX, *iceberg])
        # The Iceberg tables' commits (snapcdc.spark.iceberg): the CDC function's grants (docs/iceberg.md).
        grant_iceberg(self.role, storage, settings.glue_database_name, iceberg_tables or [])
        storage.grant_key_use(self.role, ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"])
        self.role.add_to_principal_policy(glue_catalog_statement(settings.glue_database_name, tables, feeds))
        log_groups = f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:/aws-glue/*"
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="GlueJobLogs",
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:AssociateKmsKey"],
                resources=[log_groups, f"{log_groups}:*"],
            )
        )
        # Glue encrypts the run's CloudWatch logs with the data key (the security configuration).
        storage.data_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowGlueJobLogsEncryption",
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                actions=[
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncryptFrom",
                    "kms:ReEncryptTo",
                    "kms:GenerateDataKey",
                    "kms:DescribeKey",
                ],
                resources=["*"],
                conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups}},
            )
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="GlueJobLogsKey",
                actions=["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"],
                resources=[storage.data_key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"logs.{Aws.REGION}.amazonaws.com"}},
            )
        )

        key_arn = storage.data_key.key_arn
        self.security_configuration = glue.CfnSecurityConfiguration(
            self,
            "SecurityConfiguration",
            name=f"{stack.stack_name.lower()}-cdc-spark",
            encryption_configuration=glue.CfnSecurityConfiguration.EncryptionConfigurationProperty(
                s3_encryptions=[
                    glue.CfnSecurityConfiguration.S3EncryptionProperty(
                        s3_encryption_mode="SSE-KMS", kms_key_arn=key_arn
                    )
                ],
                cloud_watch_encryption=glue.CfnSecurityConfiguration.CloudWatchEncryptionProperty(
                    cloud_watch_encryption_mode="SSE-KMS", kms_key_arn=key_arn
                ),
                job_bookmarks_encryption=glue.CfnSecurityConfiguration.JobBookmarksEncryptionProperty(
                    job_bookmarks_encryption_mode="CSE-KMS", kms_key_arn=key_arn
                ),
            ),
        )

        self.job = glue.CfnJob(
            self,
            "Job",
            name=self.job_name,
            description="snapcdc: one table snapshot's CDC on Spark (the CDC function's contract, for big tables)",
            role=self.role.role_arn,
            glue_version=GLUE_VERSION,
            command=glue.CfnJob.JobCommandProperty(
                name="glueetl", python_version="3", script_location=script.s3_object_url
            ),
            worker_type=settings.glue_worker_type,
            number_of_workers=settings.glue_number_of_workers,
            timeout=settings.glue_timeout_minutes,
            # Glue never retries: the state-change handler starts a failed table again (claim first, so
            # never two runs of a table at once), glue_max_retries times (docs/deploy.md).
            max_retries=0,
            execution_property=glue.CfnJob.ExecutionPropertyProperty(max_concurrent_runs=max(1, len(tables))),
            security_configuration=self.security_configuration.ref,
            default_arguments={
                "--job-bookmark-option": "job-bookmark-disable",
                "--extra-py-files": package.s3_object_url,
                "--additional-python-modules": ADDITIONAL_PYTHON_MODULES,
                "--enable-metrics": "true",
                JobArgument.BUCKET_NAME.flag: storage.bucket_name,
                JobArgument.DATA_PREFIX.flag: settings.data_prefix or "-",
                JobArgument.GLUE_DATABASE.flag: settings.glue_database_name,
                JobArgument.SHUFFLE_PARTITIONS.flag: str(settings.glue_shuffle_partitions),
                JobArgument.PARTITION_MB.flag: str(settings.glue_partition_mb),
                "--conf": conf_argument(spark_conf(settings)),
            },
            tags={"project": "snapcdc"},
        )
        self.job_arn = f"arn:{Aws.PARTITION}:glue:{Aws.REGION}:{Aws.ACCOUNT_ID}:job/{self.job_name}"

        self.timeout_minutes = settings.glue_timeout_minutes
        # A run that ended without finishing: the state-change handler (SparkRunHealer) heals its table.
        self.failures = events.Rule(
            self,
            "RunFailed",
            description="snapcdc Spark CDC job run failed, timed out, was stopped or errored",
            event_pattern=events.EventPattern(
                source=["aws.glue"],
                detail_type=["Glue Job State Change"],
                detail={"jobName": [self.job_name], "state": list(FAILED_STATES)},
            ),
        )

        NagSuppressions.add_resource_suppressions(
            self.role,
            [
                {
                    "id": "AwsSolutions-IAM5",
                    "reason": "The CDC function's prefixes (reads raw/ snapshots/ _runs/, writes cdc/ full-load/"
                    " snapshots/ quarantine/ _runs/) and the /aws-glue/* log groups Glue writes the run's logs"
                    " to: object keys and log streams can only be named with a wildcard. It deletes only part"
                    " files (<prefix>*-part-*) of the outputs its tasks write (a retried run's stale parts) and"
                    " its scratch under _spark-parts/.",
                    "appliesTo": [
                        *(
                            {"regex": f"/^Resource::arn:<AWS::Partition>:s3:::.+/{p.replace('/', '')}/\\*$/"}
                            for p in sorted({*CDC_READS, *CDC_WRITES, SPARK_PARTS_PREFIX, *iceberg})
                        ),
                        *(
                            {"regex": f"/^Resource::arn:<AWS::Partition>:s3:::.+/{p.rstrip('/')}/\\*-part-\\*$/"}
                            for p in PART_OUTPUT_PREFIXES
                        ),
                        {
                            "regex": "/^Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>"
                            ":log-group:/aws-glue/\\*(:\\*)?$/"
                        },
                    ],
                }
            ],
            apply_to_children=True,
        )

    def grant_start(self, role: iam.IRole) -> None:
        """Start this job (nothing else, no other job)."""
        role.add_to_principal_policy(
            iam.PolicyStatement(sid="StartSparkCdcJob", actions=STARTER_ACTIONS, resources=[self.job_arn])
        )


def spark_conf(settings: StackSettings) -> dict[str, str]:
    """The Spark settings this workload needs (docs/deploy.md says why each, and its context key)."""
    overhead = settings.glue_executor_memory_overhead_mb or WORKER_MEMORY_MB[settings.glue_worker_type] // 8
    adaptive = str(settings.glue_adaptive_execution).lower()
    return {
        # The executors' Python workers (the engine's Arrow diff per partition) live outside the JVM heap.
        "spark.executor.memoryOverhead": f"{overhead}m",
        "spark.driver.maxResultSize": f"{settings.glue_driver_max_result_mb}m",
        "spark.sql.adaptive.enabled": adaptive,
        "spark.sql.adaptive.coalescePartitions.enabled": adaptive,
        "spark.sql.adaptive.skewJoin.enabled": adaptive,
    }


def conf_argument(conf: dict[str, str]) -> str:
    """Glue's one ``--conf`` argument carrying several settings: ``a=1 --conf b=2`` (Glue passes it on)."""
    return " --conf ".join(f"{name}={value}" for name, value in conf.items())
