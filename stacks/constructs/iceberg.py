"""The grants for the Iceberg tables (docs/iceberg.md): least privilege, named.

Who keeps the tables, the CDC function's role and the Glue job's role (:func:`grant_iceberg`), gets:

- S3, under ``iceberg/`` only: GetObject (metadata files, data file footers), PutObject and
  AbortMultipartUpload (metadata and data files written by each commit), DeleteObject (the data
  files of an attempt that lost the race to another writer: listed by no metadata, written by this
  role); ListBucket with the ``iceberg/`` prefix is in the CDC role's one listing statement;
- Glue, on the catalog, the database and exactly ``<table>`` and ``<table>_changes`` of each table
  that enables Iceberg: GetTable (load, the ledger check), CreateTable (first use), UpdateTable (each
  commit swaps the metadata pointer, conditional on the version it read), GetDatabase (each commit
  asks whether the database is an S3 Tables one; only the catalog and database). No DeleteTable: only
  ``snapcdc replay``, run by an operator, drops them.

The operators (:func:`operator_statements`): ``verify`` reads ``iceberg/`` (metadata and data files)
and may GetTable the same tables, nothing else; ``replay`` rebuilds them: what the keepers have, and
DeleteTable on exactly those tables.
"""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from snapcdc.cdc.iceberg.names import changes_table, current_table
from snapcdc.lake.layout import ICEBERG_PREFIX

from stacks.constructs.storage import DataLakeStorage

ICEBERG_GLUE_ACTIONS = ["glue:GetTable", "glue:CreateTable", "glue:UpdateTable", "glue:GetDatabase"]
ICEBERG_S3_ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"]
VERIFY_GLUE_ACTIONS = ["glue:GetTable"]
REPLAY_GLUE_ACTIONS = [*ICEBERG_GLUE_ACTIONS, "glue:DeleteTable"]


def iceberg_table_names(tables: list[str]) -> list[str]:
    return [name for table in tables for name in (current_table(table), changes_table(table))]


def iceberg_glue_statement(sid: str, actions: list[str], database: str, tables: list[str]) -> iam.PolicyStatement:
    """``actions`` on the catalog, the database and exactly the Iceberg tables of ``tables``."""
    glue_arn = f"arn:{Aws.PARTITION}:glue:{Aws.REGION}:{Aws.ACCOUNT_ID}"
    return iam.PolicyStatement(
        sid=sid,
        actions=actions,
        resources=[
            f"{glue_arn}:catalog",
            f"{glue_arn}:database/{database}",
            *(f"{glue_arn}:table/{database}/{name}" for name in iceberg_table_names(tables)),
        ],
    )


def grant_iceberg(role: iam.IRole, storage: DataLakeStorage, database: str, tables: list[str]) -> None:
    """What the CDC function and the Glue job need to keep the Iceberg tables of ``tables`` (those with
    iceberg on); their ListBucket on ``iceberg/`` goes in the role's one listing statement."""
    if not tables:
        return
    storage.grant_objects(role, ICEBERG_S3_ACTIONS, [ICEBERG_PREFIX])
    role.add_to_principal_policy(
        iceberg_glue_statement("IcebergTablesInTheGlueCatalog", ICEBERG_GLUE_ACTIONS, database, tables)
    )


def operator_glue_statement(replay: bool, database: str, tables: list[str]) -> list[iam.PolicyStatement]:
    """The operator's Glue statement for the Iceberg tables (none when no table enables them): verify
    reads them (GetTable), replay rebuilds them (and may DeleteTable them, nothing else may)."""
    if not tables:
        return []
    if replay:
        return [iceberg_glue_statement("RebuildIcebergTables", REPLAY_GLUE_ACTIONS, database, tables)]
    return [iceberg_glue_statement("ReadIcebergTables", VERIFY_GLUE_ACTIONS, database, tables)]
