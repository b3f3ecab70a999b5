"""The snapcdc stack: a few constructs wired together (storage, extract, cdc, query, observability)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack, Tags
from constructs import Construct
from snapcdc.config import PipelineConfig, load_config
from snapcdc.settings import Env

from stacks.constructs.cdc import CdcFunction
from stacks.constructs.extract import ExtractFunction
from stacks.constructs.layers import SharedLayers
from stacks.constructs.observability import Observability
from stacks.constructs.operators import OperatorPolicies
from stacks.constructs.query import LakeQuery
from stacks.constructs.spark_job import SparkCdcJob
from stacks.constructs.spark_state import SparkRunHealer
from stacks.constructs.storage import DataLakeStorage
from stacks.context import StackSettings


class SnapCdcStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StackSettings,
        pipeline: PipelineConfig | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        # The packaged config (the one the functions run with) names the tables: the CDC role's
        # Glue grants and the per-table alarms are generated from it. A bad config fails the synth.
        pipeline = pipeline or load_config()
        tables = pipeline.table_names

        storage = DataLakeStorage(self, "Storage", settings=settings)
        layers = SharedLayers(self, "Layers", settings=settings)
        extract = ExtractFunction(self, "Extract", settings=settings, storage=storage, layers=layers)
        feeds = {t.name: t.outputs.enabled for t in pipeline.tables}
        iceberg = [t.name for t in pipeline.tables if t.iceberg]
        cdc = CdcFunction(
            self,
            "Cdc",
            settings=settings,
            storage=storage,
            layers=layers,
            tables=tables,
            feeds=feeds,
            iceberg_tables=iceberg,
        )
        operators = OperatorPolicies(
            self, "Operators", storage=storage, database=settings.glue_database_name, iceberg_tables=iceberg
        )
        # Tables past one Lambda: the CDC function hands snapshots above the threshold to the Spark job.
        spark_job = SparkCdcJob(
            self, "SparkCdc", settings=settings, storage=storage, tables=tables, feeds=feeds, iceberg_tables=iceberg
        )
        cdc.function.add_environment(Env.SPARK_JOB_NAME.value, spark_job.job_name)
        cdc.function.add_environment(Env.SPARK_THRESHOLD_BYTES.value, str(settings.spark_threshold_bytes))
        cdc.function.add_environment(Env.SPARK_JOB_TIMEOUT_MINUTES.value, str(settings.glue_timeout_minutes))
        cdc.function.add_environment(Env.SPARK_MAX_RESTARTS.value, str(settings.glue_max_retries))
        spark_job.grant_start(cdc.handler.role)
        # A failed run heals: its claim released and its table started again, a bounded number of times.
        healer = SparkRunHealer(self, "SparkState", settings=settings, storage=storage, layers=layers, job=spark_job)
        query = LakeQuery(self, "Query", settings=settings, storage=storage, pipeline=pipeline)
        observability = Observability(
            self,
            "Observability",
            settings=settings,
            tables=tables,
            functions={"Extract": extract.function, "Cdc": cdc.function, "SparkState": healer.function},
            dead_letter_queues={
                "Extract": extract.dead_letter_queue,
                "Cdc": cdc.dead_letter_queue,
                "SparkState": healer.dead_letter_queue,
            },
        )
        # cfn-lint 1.51 knows no Tags on AWS::CloudWatch::Dashboard (E3002): leave dashboards untagged.
        Tags.of(self).add("project", "snapcdc", exclude_resource_types=["AWS::CloudWatch::Dashboard"])

        CfnOutput(self, "DataBucketName", value=storage.bucket_name)
        CfnOutput(self, "KaggleSecretArn", value=extract.kaggle_secret.secret_arn)
        CfnOutput(self, "ExtractFunctionName", value=extract.function.function_name)
        CfnOutput(self, "CdcFunctionName", value=cdc.function.function_name)
        CfnOutput(self, "SparkCdcJobName", value=spark_job.job_name)
        CfnOutput(self, "SparkStateFunctionName", value=healer.function.function_name)
        CfnOutput(self, "AthenaWorkGroup", value=query.workgroup.ref)
        CfnOutput(self, "GlueDatabase", value=query.database_name)
        CfnOutput(self, "AlarmTopicArn", value=observability.alarm_topic.topic_arn)
        CfnOutput(self, "OperatorVerifyPolicyArn", value=operators.verify.managed_policy_arn)
        CfnOutput(self, "OperatorReplayPolicyArn", value=operators.replay.managed_policy_arn)

        self.storage = storage
        self.extract = extract
        self.cdc = cdc
        self.spark_job = spark_job
        self.spark_state = healer
        self.query = query
        self.observability = observability
        self.operators = operators
