"""The CDC role's grants for the Iceberg tables (docs/iceberg.md): least privilege, named.

- S3, under ``iceberg/`` only: GetObject (metadata files, data file footers), PutObject and
  AbortMultipartUpload (metadata and data files written by each commit), DeleteObject (the data
  files of an attempt that lost the race to another writer: listed by no metadata, written by this
  role); ListBucket with the ``iceberg/`` prefix is in the CDC role's one listing statement;
- Glue, on the catalog, the database and exactly ``<table>`` and ``<table>_changes`` of each table
  that enables Iceberg: GetTable (load, the ledger check), CreateTable (first use), UpdateTable (each
  commit swaps the metadata pointer, conditional on the version it read), GetDatabase (each commit
  asks whether the database is an S3 Tables one; only the catalog and database). No DeleteTable: only
  ``snapcdc replay``, run by an operator, drops them.
"""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from snapcdc.cdc.iceberg.names import changes_table, current_table
from snapcdc.lake.layout import ICEBERG_PREFIX

from stacks.constructs.storage import DataLakeStorage

ICEBERG_GLUE_ACTIONS = ["glue:GetTable", "glue:CreateTable", "glue:UpdateTable", "glue:GetDatabase"]
ICEBERG_S3_ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"]


def iceberg_table_names(tables: list[str]) -> list[str]:
    return [name for table in tables for name in (current_table(table), changes_table(table))]


def grant_iceberg(role: iam.IRole, storage: DataLakeStorage, database: str, tables: list[str]) -> None:
    """What the CDC function needs to keep the Iceberg tables of ``tables`` (those with iceberg on)."""
    if not tables:
        return
    storage.grant_objects(role, ICEBERG_S3_ACTIONS, [ICEBERG_PREFIX])  # ListBucket: with the CDC role's listings
    glue_arn = f"arn:{Aws.PARTITION}:glue:{Aws.REGION}:{Aws.ACCOUNT_ID}"
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="IcebergTablesInTheGlueCatalog",
            actions=ICEBERG_GLUE_ACTIONS,
            resources=[
                f"{glue_arn}:catalog",
                f"{glue_arn}:database/{database}",
                *(f"{glue_arn}:table/{database}/{name}" for name in iceberg_table_names(tables)),
            ],
        )
    )
