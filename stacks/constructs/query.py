"""Query the lake with Athena: the Glue database and a workgroup.

The database's tables (``<table>_cdc``, ``<table>_full_load``, ``<table>_snapshots``) are not in the
template: the CDC function creates them and keeps them current at run time (``snapcdc.cdc.catalog``),
typed as the Parquet files it writes, so a column the data gains reaches Glue with the data.
"""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from constructs import Construct
from snapcdc.config import PipelineConfig

from stacks.constructs.storage import ATHENA_RESULTS_PREFIX, DataLakeStorage
from stacks.context import StackSettings


class LakeQuery(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StackSettings,
        storage: DataLakeStorage,
        pipeline: PipelineConfig,
    ) -> None:
        super().__init__(scope, construct_id)
        self.database_name = settings.glue_database_name

        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name,
                description=f"snapcdc data lake of Kaggle dataset {pipeline.dataset}",
            ),
        )
        self.workgroup = athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=f"{settings.stack_name.lower()}",
            description="snapcdc lake queries; results encrypted with the data key",
            recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=100 * 1024**3,  # a runaway query stops at 100 GiB
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{storage.bucket_name}/{ATHENA_RESULTS_PREFIX}",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_KMS", kms_key=storage.data_key.key_arn
                    ),
                ),
            ),
        )
