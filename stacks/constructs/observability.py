"""Dashboard and alarms over the functions' Powertools metrics, alarm notifications on SNS.

Metrics are Powertools EMF metrics in ``metrics_namespace`` with dimensions ``service`` (the
function's POWERTOOLS_SERVICE_NAME) and ``table``.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from snapcdc import metric_names as names

from stacks.constructs.cdc import CDC_SERVICE
from stacks.constructs.extract import EXTRACT_SERVICE
from stacks.context import StackSettings

# Per-invocation metrics (dimension service only) that say the lake is current: CDC accepted a
# snapshot, or extract found the dataset (or every table) unchanged since the last snapshot.
FRESHNESS_METRICS = (
    (CDC_SERVICE, names.SNAPSHOTS_PROCESSED),
    (EXTRACT_SERVICE, names.SKIPPED_UNCHANGED),
    (EXTRACT_SERVICE, names.SKIPPED_UNCHANGED_VERSION),
)
FIVE_MINUTES = Duration.minutes(5)


class Observability(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StackSettings,
        tables: Sequence[str],
        functions: dict[str, lambda_.IFunction],
        dead_letter_queues: dict[str, sqs.IQueue],
        job_failures: dict[str, events.IRule] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._namespace = settings.metrics_namespace

        self.alarm_topic = self._alarm_topic(settings)
        self.alarms: list[cloudwatch.Alarm] = []

        for name, function in functions.items():
            self._alarm(
                f"{name}Errors",
                function.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
                f"The {name} function failed (see its log group; failed async events go to its DLQ)",
            )
        for name, rule in (job_failures or {}).items():
            # A Glue job run that failed, timed out or errored alarms as a failed function does.
            self._alarm(
                f"{name}JobFailed",
                cloudwatch.Metric(
                    namespace="AWS/Events",
                    metric_name="TriggeredRules",
                    dimensions_map={"RuleName": rule.rule_name},
                    period=FIVE_MINUTES,
                    statistic="Sum",
                ),
                f"A run of the {name} Glue job failed, timed out or errored (see its run in the Glue console)",
            )
        for name, queue in dead_letter_queues.items():
            self._alarm(
                f"{name}DeadLetters",
                queue.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES, statistic="Maximum"),
                f"Events the {name} function gave up on are waiting in its DLQ: inspect and replay",
            )
        # The extract handler returns (does not raise) on errors a retry cannot fix, such as a
        # missing secret or bad credentials, so Lambda's Errors metric does not see them.
        self._alarm(
            "ExtractFailed",
            cloudwatch.Metric(
                namespace=self._namespace,
                metric_name=names.EXTRACT_FAILED,
                dimensions_map={"service": EXTRACT_SERVICE},
                statistic="Sum",
                period=FIVE_MINUTES,
            ),
            "An extract run failed (bad credentials, missing secret, hostile archive...): see its log",
        )
        # Likewise the CDC handler for a table that failed with a PermanentError (the others go on).
        self._alarm(
            "CdcFailed",
            cloudwatch.Metric(
                namespace=self._namespace,
                metric_name=names.CDC_FAILED,
                dimensions_map={"service": CDC_SERVICE},
                statistic="Sum",
                period=FIVE_MINUTES,
            ),
            "A table's CDC run failed for good (an unreadable run record, a catalog or migration refusal): see its log",
        )
        for table in tables:
            title = _title(table)
            self._alarm(
                f"{title}DeleteGuardRefused",
                self.cdc_metric(names.DELETE_GUARD_REFUSED, table),
                f"A {table} snapshot would delete more rows than allowed and was refused (nothing written"
                " to cdc/); allow it in the table's config and replay if the deletes are real",
            )
            self._alarm(
                f"{title}Quarantined",
                self.cdc_metric(names.QUARANTINED, table),
                f"Rows of {table} with a null or duplicated key went to quarantine/",
            )
            self._alarm(
                f"{title}MalformedSnapshot",
                self.cdc_metric(names.MALFORMED_SNAPSHOTS, table),
                f"A {table} CSV could not be parsed; the run record and log name the file and line",
            )
        self._alarm(
            "Stale",
            self.freshness(),
            f"No snapshot processed, and no unchanged dataset seen, for {settings.staleness_hours} h:"
            " the extract or the CDC side has stalled",
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=settings.staleness_hours,
            missing=cloudwatch.TreatMissingData.BREACHING,
        )

        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"{settings.stack_name}-pipeline",
            default_interval=Duration.days(7),
        )
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=f"# snapcdc\nPer-table metrics in namespace `{self._namespace}`; alarms notify"
                " the SNS alarm topic.",
                width=24,
                height=2,
            ),
            cloudwatch.AlarmStatusWidget(alarms=list(self.alarms), title="Alarms", width=24, height=4),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="pipeline freshness (runs per hour)", left=[self.freshness()], width=24, height=4
            )
        )
        for table in tables:
            self.dashboard.add_widgets(*self._table_widgets(table))
        self.dashboard.add_widgets(*self._function_widgets(functions, dead_letter_queues))

    # -- metrics -------------------------------------------------------------------------------

    def cdc_metric(self, name: str, table: str, period: Duration = FIVE_MINUTES) -> cloudwatch.Metric:
        return self._metric(name, CDC_SERVICE, table, period)

    def extract_metric(self, name: str, table: str, period: Duration = FIVE_MINUTES) -> cloudwatch.Metric:
        return self._metric(name, EXTRACT_SERVICE, table, period)

    def _metric(self, name: str, service: str, table: str, period: Duration) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=self._namespace,
            metric_name=name,
            dimensions_map={"service": service, "table": table},
            statistic="Sum",
            period=period,
        )

    def freshness(self) -> cloudwatch.MathExpression:
        """Hourly count of runs that left the lake current (a dataset that did not change on Kaggle
        is not a stall); fewer than 1 in each hour of the window means the pipeline stalled."""
        hour = Duration.hours(1)
        using = {
            f"m{i}": cloudwatch.Metric(
                namespace=self._namespace,
                metric_name=name,
                dimensions_map={"service": service},
                statistic="Sum",
                period=hour,
            )
            for i, (service, name) in enumerate(FRESHNESS_METRICS)
        }
        return cloudwatch.MathExpression(
            expression=" + ".join(f"FILL({m}, 0)" for m in using),
            using_metrics=using,
            period=hour,
            label="fresh runs per hour",
        )

    # -- alarms --------------------------------------------------------------------------------

    def _alarm_topic(self, settings: StackSettings) -> sns.Topic:
        # aws/sns cannot be used: CloudWatch needs kms:GenerateDataKey/Decrypt on the topic's key,
        # which only a customer managed key's policy can grant.
        key = kms.Key(
            self,
            "AlarmTopicKey",
            description=f"{settings.stack_name}: encrypts the alarm notification topic",
            enable_key_rotation=True,
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )
        topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name=f"{settings.stack_name} alarms",
            master_key=key,
            enforce_ssl=True,
        )
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:*"
                    },
                },
            )
        )
        if settings.alarm_email:
            topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))
        return topic

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        description: str,
        *,
        comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluation_periods: int = 1,
        missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            alarm_description=description,
            threshold=1,
            comparison_operator=comparison,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=evaluation_periods,
            treat_missing_data=missing,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.alarm_topic))
        self.alarms.append(alarm)
        return alarm

    # -- dashboard -----------------------------------------------------------------------------

    def _table_widgets(self, table: str) -> list[cloudwatch.IWidget]:
        def graph(title: str, metrics: list[cloudwatch.IMetric], width: int = 6) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(title=f"{table}: {title}", left=metrics, width=width, height=6)

        return [
            graph("changes", [self.cdc_metric(m, table) for m in (names.INSERTS, names.UPDATES, names.DELETES)]),
            graph("rows read", [self.cdc_metric(names.ROWS_READ, table)]),
            graph(
                "data quality",
                [
                    self.cdc_metric(m, table)
                    for m in (
                        names.QUARANTINED,
                        names.UPDATES_WITHOUT_DATE_BUMP,
                        names.DELETE_GUARD_REFUSED,
                        names.MALFORMED_SNAPSHOTS,
                    )
                ],
            ),
            graph(
                "runs",
                [
                    self.cdc_metric(names.DURATION_SECONDS, table).with_(statistic="Maximum"),
                    self.extract_metric(names.EXTRACTED_BYTES, table),
                    self.extract_metric(names.SKIPPED_UNCHANGED, table),
                ],
            ),
        ]

    def _function_widgets(
        self, functions: dict[str, lambda_.IFunction], queues: dict[str, sqs.IQueue]
    ) -> list[cloudwatch.IWidget]:
        widgets: list[cloudwatch.IWidget] = []
        for name, function in functions.items():
            widgets.append(
                cloudwatch.GraphWidget(
                    title=f"{name} function",
                    left=[function.metric_invocations(), function.metric_errors(), function.metric_throttles()],
                    right=[function.metric_duration(statistic="Maximum")],
                    width=8,
                    height=6,
                )
            )
        widgets.append(
            cloudwatch.GraphWidget(
                title="dead-letter queues",
                left=[q.metric_approximate_number_of_messages_visible(label=n) for n, q in queues.items()],
                width=8,
                height=6,
            )
        )
        return widgets


def _title(table: str) -> str:
    return "".join(part.capitalize() for part in table.split("_"))
