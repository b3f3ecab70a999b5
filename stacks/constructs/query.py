"""Query the lake with Athena: Glue tables over cdc/, snapshots/ and full-load/, and a workgroup.

The tables are crawler-free: their columns come from the pipeline config's ``column_types`` at synth
time, the same types the CDC engine writes, so a config change redeploys the schema with the code.
"""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from constructs import Construct
from snapcdc.config import PipelineConfig, TableConfig

from stacks.constructs.storage import ATHENA_RESULTS_PREFIX, DataLakeStorage
from stacks.context import StackSettings

GLUE_TYPES = {
    "string": "string",
    "int64": "bigint",
    "float64": "double",
    "bool": "boolean",
    "timestamp": "timestamp",
    "date": "date",
}
CDC_COLUMNS = (
    ("_cdc_operation", "string", "I insert, U update, D delete"),
    ("_cdc_timestamp", "timestamp", "UTC time of the snapshot that observed the change"),
)
PARQUET = {
    "input_format": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "output_format": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "serde": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
}


def glue_columns(table: TableConfig) -> list[glue.CfnTable.ColumnProperty]:
    """The table's columns, typed as the engine writes them (undeclared columns are strings)."""
    columns = list(table.column_types.items())
    declared = set(table.column_types)
    columns += [(name, "string") for name in table.primary_key if name not in declared]
    return [
        glue.CfnTable.ColumnProperty(name=name.lower(), type=GLUE_TYPES[kind], comment=_key_comment(table, name))
        for name, kind in columns
    ]


def _key_comment(table: TableConfig, column: str) -> str | None:
    return "primary key" if column in table.primary_key else None


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
        self._storage = storage
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
        self.table_names: list[str] = []
        for table in pipeline.tables:
            columns = glue_columns(table)
            cdc_columns = [glue.CfnTable.ColumnProperty(name=n, type=t, comment=c) for n, t, c in CDC_COLUMNS]
            self._table(
                f"{table.name}_cdc", f"cdc/{table.name}/", columns + cdc_columns, "change sets, one file per snapshot"
            )
            self._table(f"{table.name}_full_load", f"full-load/{table.name}/", columns, "first snapshot of the table")
            self._table(
                f"{table.name}_snapshots",
                f"snapshots/{table.name}/",
                columns,
                "typed copy of each accepted snapshot; filter on snapshot = 'YYYYMMDDTHHMMSSZ'",
                snapshot_partition=True,
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

    def _table(
        self,
        name: str,
        relative_prefix: str,
        columns: list[glue.CfnTable.ColumnProperty],
        description: str,
        snapshot_partition: bool = False,
    ) -> None:
        location = f"s3://{self._storage.bucket_name}/{self._storage.key_prefix}{relative_prefix}"
        parameters = {"classification": "parquet", "parquet.compression": "SNAPPY"}
        partition_keys = None
        if snapshot_partition:
            # Partition projection, "injected": no crawler and no MSCK REPAIR; a query names the
            # snapshot it reads (snapshot ids are event times, not a regular grid to enumerate).
            partition_keys = [glue.CfnTable.ColumnProperty(name="snapshot", type="string")]
            parameters |= {
                "projection.enabled": "true",
                "projection.snapshot.type": "injected",
                "storage.location.template": location + "snapshot=${snapshot}/",
            }
        table = glue.CfnTable(
            self,
            _construct_id(name),
            catalog_id=Aws.ACCOUNT_ID,
            database_name=self.database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=name,
                description=description,
                table_type="EXTERNAL_TABLE",
                parameters=parameters,
                partition_keys=partition_keys,
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    columns=columns,
                    location=location,
                    input_format=PARQUET["input_format"],
                    output_format=PARQUET["output_format"],
                    serde_info=glue.CfnTable.SerdeInfoProperty(serialization_library=PARQUET["serde"]),
                ),
            ),
        )
        table.node.add_dependency(self.database)
        self.table_names.append(name)


def _construct_id(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_")) + "Table"
