"""The people's side: least-privilege managed policies for running ``snapcdc verify`` and ``replay``.

Attach them to the operators' roles or groups (outputs ``OperatorVerifyPolicyArn`` and
``OperatorReplayPolicyArn``). ``verify`` only reads; ``replay`` recomputes a table's outputs from
``raw/``: it may delete only under the output prefixes (the bucket is versioned: a deleted object
stays as a noncurrent version), and it is the only principal of the stack that may drop a Glue table.
The functions' and the Spark job's own deletes are scoped in their constructs. Neither policy can
touch ``raw/`` objects beyond listing (replay reads them), the Kaggle secret or the functions.
tests/roles runs both commands under these policies in moto.
"""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from cdk_nag import NagSuppressions
from constructs import Construct
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

from stacks.constructs.iceberg import operator_glue_statement
from stacks.constructs.storage import DataLakeStorage

# What verify reads: the ledger (run records), the change stream and the snapshots it compares, the
# listings of the table's files (every file must have the table's schema), and the raw/ listing (to
# report raw snapshots never processed).
# The change feeds (FEED_PREFIXES) are checked by verify and rebuilt by replay.
VERIFY_READS = [RUNS_PREFIX, FULL_LOAD_PREFIX, CDC_PREFIX, SNAPSHOTS_PREFIX, *FEED_PREFIXES]
VERIFY_LISTS = [RAW_PREFIX, RUNS_PREFIX, CDC_PREFIX, FULL_LOAD_PREFIX, SNAPSHOTS_PREFIX, *FEED_PREFIXES]
# What replay reads and rewrites: the CDC function's prefixes.
# full-load/, cdc/: footers
REPLAY_READS = [RAW_PREFIX, SNAPSHOTS_PREFIX, RUNS_PREFIX, FULL_LOAD_PREFIX, CDC_PREFIX, *FEED_PREFIXES]
REPLAY_WRITES = [CDC_PREFIX, FULL_LOAD_PREFIX, SNAPSHOTS_PREFIX, QUARANTINE_PREFIX, RUNS_PREFIX, *FEED_PREFIXES]
REPLAY_LISTS = [RAW_PREFIX, SNAPSHOTS_PREFIX, RUNS_PREFIX, CDC_PREFIX, FULL_LOAD_PREFIX, *FEED_PREFIXES]

VERIFY_LOGICAL_ID = "OperatorVerifyPolicy"
REPLAY_LOGICAL_ID = "OperatorReplayPolicy"


class OperatorPolicies(Construct):
    """``iceberg_tables``: the tables that enable Iceberg (docs/iceberg.md): verify also reads their Iceberg
    tables (``iceberg/``, glue:GetTable), replay also rebuilds them (and may drop them: glue:DeleteTable)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: DataLakeStorage,
        database: str = "",
        iceberg_tables: list[str] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        iceberg = [ICEBERG_PREFIX] if iceberg_tables else []
        verify_reads, replay_reads, replay_writes = (
            VERIFY_READS + iceberg,
            REPLAY_READS + iceberg,
            REPLAY_WRITES + iceberg,
        )
        self.verify = self._policy(
            VERIFY_LOGICAL_ID,
            "snapcdc verify: read the lake's outputs and run records (no write, no delete)",
            [
                iam.PolicyStatement(actions=["s3:GetObject"], resources=[storage.objects_arn(p) for p in verify_reads]),
                _list(storage, VERIFY_LISTS + iceberg),
                _key(storage, ["kms:Decrypt"]),
                *operator_glue_statement(False, database, iceberg_tables or []),
            ],
        )
        writes = [storage.objects_arn(p) for p in replay_writes]
        self.replay = self._policy(
            REPLAY_LOGICAL_ID,
            "snapcdc replay: recompute a table's outputs from raw/; deletes only under the output prefixes",
            [
                iam.PolicyStatement(actions=["s3:GetObject"], resources=[storage.objects_arn(p) for p in replay_reads]),
                iam.PolicyStatement(actions=["s3:PutObject", "s3:AbortMultipartUpload"], resources=writes),
                iam.PolicyStatement(actions=["s3:DeleteObject"], resources=writes),
                _list(storage, REPLAY_LISTS + iceberg),
                _key(storage, ["kms:Decrypt", "kms:GenerateDataKey"]),
                *operator_glue_statement(True, database, iceberg_tables or []),
            ],
        )
        prefixes = sorted({p.replace("/", "") for p in verify_reads + replay_reads + replay_writes})
        for policy in (self.verify, self.replay):
            NagSuppressions.add_resource_suppressions(
                policy,
                [
                    {
                        "id": "AwsSolutions-IAM5",
                        "reason": "Object-level S3 permissions scoped to the prefixes the command reads or"
                        " rewrites; object keys under a prefix can only be named with a wildcard.",
                        "appliesTo": [
                            {"regex": f"/^Resource::arn:<AWS::Partition>:s3:::.+/{p}/\\*$/"} for p in prefixes
                        ],
                    }
                ],
            )

    def _policy(self, logical_id: str, description: str, statements: list[iam.PolicyStatement]) -> iam.ManagedPolicy:
        policy = iam.ManagedPolicy(self, logical_id, description=description, statements=statements)
        cfn = policy.node.default_child
        assert isinstance(cfn, iam.CfnManagedPolicy)
        cfn.override_logical_id(logical_id)
        return policy


def _list(storage: DataLakeStorage, prefixes: list[str]) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        actions=["s3:ListBucket"],
        resources=[storage.bucket_arn],
        conditions={"StringLike": {"s3:prefix": storage.list_prefixes(*prefixes)}},
    )


def _key(storage: DataLakeStorage, actions: list[str]) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        actions=actions,
        resources=[storage.data_key.key_arn],
        conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}},
    )
