"""Issue #4: dashboard, alarms and their SNS topic."""

from __future__ import annotations

import json
from typing import Any

import pytest
from snapcdc import metric_names

from stacks.constructs.observability import FRESHNESS_METRICS

from .cfn_helpers import render
from .synthesis import Synth

TABLES = ["clientes", "produtos", "transacoes", "transacao_produto"]
CDC_METRICS = (
    "RowsRead",
    "Inserts",
    "Updates",
    "Deletes",
    "Quarantined",
    "UpdatesWithoutDateBump",
    "DurationSeconds",
    "DeleteGuardRefused",
    "MalformedSnapshots",
)
EXTRACT_METRICS = ("ExtractedBytes", "SkippedUnchanged")


def _alarms(synth: Synth) -> list[dict[str, Any]]:
    return [a["Properties"] for a in synth.resources("AWS::CloudWatch::Alarm").values()]


def _dashboard_body(synth: Synth) -> str:
    (dashboard,) = synth.resources("AWS::CloudWatch::Dashboard").values()
    return render(dashboard["Properties"]["DashboardBody"])


def test_dashboard_shows_every_pipeline_metric_per_table(synth: Synth) -> None:
    # Given the dashboard body
    body = _dashboard_body(synth)
    # Then every CDC and extract metric appears, per table, with the service and table dimensions
    for table in TABLES:
        for metric in CDC_METRICS:
            assert f'"snapcdc","{metric}","service","snapcdc-cdc","table","{table}"' in body
        for metric in EXTRACT_METRICS:
            assert f'"snapcdc","{metric}","service","snapcdc-extract","table","{table}"' in body
    # And the pipeline-wide freshness signals (dimension service only) have a graph
    for service, metric in FRESHNESS_METRICS:
        assert f'"snapcdc","{metric}","service","{service}"' in body


def test_alarms_notify_the_encrypted_topic(synth: Synth) -> None:
    # Given the alarm topic
    ((topic_id, topic),) = synth.resources("AWS::SNS::Topic").items()
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    # Then it is encrypted with a rotating CMK that CloudWatch may use, and every alarm targets it
    key = synth.resource(key_id)["Properties"]
    assert key["EnableKeyRotation"] is True
    cloudwatch = [
        s for s in key["KeyPolicy"]["Statement"] if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch and set(cloudwatch[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey"}
    for alarm in _alarms(synth):
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]


def test_no_email_subscription_without_alarm_email(synth: Synth) -> None:
    # Given no alarm_email in context
    # Then the topic has no subscription
    assert not synth.resources("AWS::SNS::Subscription")


def test_email_subscription_when_alarm_email_is_set(custom_synth: Synth) -> None:
    # Given alarm_email=data-team@example.com
    (subscription,) = custom_synth.resources("AWS::SNS::Subscription").values()
    # Then the topic e-mails it
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == "data-team@example.com"


@pytest.mark.parametrize("function", ["ExtractFunction", "CdcFunction"])
def test_each_function_has_an_errors_alarm(synth: Synth, function: str) -> None:
    # Given the alarms on AWS/Lambda Errors
    alarms = [
        a
        for a in _alarms(synth)
        if a.get("MetricName") == "Errors" and a["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]
    ]
    # Then one fires on any error
    assert len(alarms) == 1
    assert alarms[0]["Threshold"] == 1
    assert alarms[0]["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_each_dead_letter_queue_has_a_messages_visible_alarm(synth: Synth) -> None:
    # Given the alarms on AWS/SQS ApproximateNumberOfMessagesVisible
    alarmed = {
        a["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for a in _alarms(synth)
        if a.get("MetricName") == "ApproximateNumberOfMessagesVisible"
    }
    # Then every queue (both DLQs) has one
    assert alarmed == set(synth.resources("AWS::SQS::Queue"))


def test_extract_failures_that_do_not_raise_are_alarmed(synth: Synth) -> None:
    # Given the alarms on the extract handler's own failure metric
    alarms = [a for a in _alarms(synth) if a.get("MetricName") == "ExtractFailed"]
    # Then there is one, on the extract service's series, threshold any failure
    assert len(alarms) == 1
    assert alarms[0]["Dimensions"] == [{"Name": "service", "Value": "snapcdc-extract"}]
    assert alarms[0]["Threshold"] == 1
    assert alarms[0]["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_cdc_failures_that_do_not_raise_are_alarmed(synth: Synth) -> None:
    # Given the alarms on the CDC handler's own failure metric
    alarms = [a for a in _alarms(synth) if a.get("MetricName") == "CdcFailed"]
    # Then there is one, on the CDC service's series, threshold any failure
    assert len(alarms) == 1
    assert alarms[0]["Dimensions"] == [{"Name": "service", "Value": "snapcdc-cdc"}]
    assert alarms[0]["Threshold"] == 1
    assert alarms[0]["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


@pytest.mark.parametrize("metric", ["DeleteGuardRefused", "Quarantined", "MalformedSnapshots"])
def test_data_quality_alarms_per_table(synth: Synth, metric: str) -> None:
    # Given the alarms on a CDC data-quality metric
    alarms = [a for a in _alarms(synth) if a.get("MetricName") == metric]
    tables = {next(d["Value"] for d in a["Dimensions"] if d["Name"] == "table") for a in alarms}
    # Then each table has one that fires on the first occurrence
    assert tables == set(TABLES)
    for alarm in alarms:
        assert alarm["Namespace"] == "snapcdc"
        assert {"Name": "service", "Value": "snapcdc-cdc"} in alarm["Dimensions"]
        assert alarm["Threshold"] == 1
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"


def _staleness_alarm(synth: Synth) -> dict[str, Any]:
    (alarm,) = [a for a in _alarms(synth) if "Metrics" in a and "SnapshotsProcessed" in json.dumps(a["Metrics"])]
    return alarm


def test_staleness_alarm_treats_missing_data_as_breaching(synth: Synth) -> None:
    # Given the staleness alarm
    alarm = _staleness_alarm(synth)
    # Then it fires when no run left the lake current in each of 12 hours, missing data = breaching
    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    assert alarm["Threshold"] == 1
    assert alarm["EvaluationPeriods"] == 12
    assert alarm["DatapointsToAlarm"] == 12
    assert alarm["TreatMissingData"] == "breaching"
    stats = [m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m]
    # And "current" means CDC processed a snapshot or extract found the dataset unchanged
    assert {(s["Metric"]["Dimensions"][0]["Value"], s["Metric"]["MetricName"]) for s in stats} == set(FRESHNESS_METRICS)
    assert all(s["Period"] == 3600 and s["Stat"] == "Sum" for s in stats)
    (expression,) = [m["Expression"] for m in alarm["Metrics"] if "Expression" in m]
    assert expression.count("FILL(") == len(FRESHNESS_METRICS)


def test_staleness_window_and_namespace_follow_context(custom_synth: Synth) -> None:
    # Given staleness_hours=6 and metrics_namespace=acme/snapcdc
    alarm = _staleness_alarm(custom_synth)
    # Then the window is 6 hourly periods over the custom namespace
    assert alarm["EvaluationPeriods"] == 6
    namespaces = {m["MetricStat"]["Metric"]["Namespace"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert namespaces == {"acme/snapcdc"}


def _custom_metric_names(synth: Synth) -> set[str]:
    """Every metric in the snapcdc namespace that an alarm or a dashboard widget reads."""
    names = {a["MetricName"] for a in _alarms(synth) if a.get("Namespace") == "snapcdc"}
    for alarm in _alarms(synth):
        for query in alarm.get("Metrics", []):
            metric = query.get("MetricStat", {}).get("Metric", {})
            if metric.get("Namespace") == "snapcdc":
                names.add(metric["MetricName"])
    body = json.loads(_dashboard_body(synth))
    for widget in body["widgets"]:
        for metric in widget.get("properties", {}).get("metrics", []):
            if metric and metric[0] == "snapcdc":
                names.add(metric[1])
    return names


def test_every_alarm_and_widget_reads_a_metric_the_handlers_emit(synth: Synth) -> None:
    # Given the names the handlers emit (snapcdc.metric_names; the handler tests check they are emitted)
    emitted = {
        *metric_names.CDC_TABLE_METRICS,
        *metric_names.CDC_INVOCATION_METRICS,
        *metric_names.EXTRACT_TABLE_METRICS,
        *metric_names.EXTRACT_INVOCATION_METRICS,
    }
    # When collecting every custom metric the alarms and the dashboard read
    read = _custom_metric_names(synth)
    # Then each is one the code emits, and the set is the one the dashboard test expects
    assert read, "no custom metric found: the template walk is broken"
    assert read <= emitted, f"alarms or widgets watch metrics no code emits: {sorted(read - emitted)}"
    assert set(CDC_METRICS) | set(EXTRACT_METRICS) <= read
