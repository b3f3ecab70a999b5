"""The Spark CDC job in the template: Glue 5.0, its code as assets, bookmarks off, workers from context,
a security configuration encrypting with the data key, a least-privilege role, the CDC function allowed
to start it (and nothing else), a failed run alarmed."""

from __future__ import annotations

from typing import Any

from .cfn_helpers import render, role_statements
from .synthesis import Synth

CDC_PREFIXES = {"raw/", "snapshots/", "_runs/", "cdc/", "full-load/", "quarantine/", "changelog/", "scd2/", "dms/"}


def _job(synth: Synth) -> dict[str, Any]:
    (job,) = synth.resources("AWS::Glue::Job").values()
    return dict(job["Properties"])


def test_the_job_runs_glue_5_with_its_code_as_assets_and_bookmarks_off(synth: Synth) -> None:
    job = _job(synth)
    assert job["GlueVersion"] == "5.0"
    assert job["Command"]["Name"] == "glueetl"
    assert job["Command"]["PythonVersion"] == "3"
    assert render(job["Command"]["ScriptLocation"]).startswith("s3://")
    arguments = job["DefaultArguments"]
    assert arguments["--job-bookmark-option"] == "job-bookmark-disable"
    assert render(arguments["--extra-py-files"]).endswith(".zip")
    assert "pyarrow==24.0.0" in arguments["--additional-python-modules"]
    assert job["MaxRetries"] == 0
    (configuration,) = synth.resources("AWS::Glue::SecurityConfiguration")
    assert job["SecurityConfiguration"] == {"Ref": configuration}


def test_workers_come_from_context(synth: Synth, custom_synth: Synth) -> None:
    assert (_job(synth)["WorkerType"], _job(synth)["NumberOfWorkers"]) == ("G.1X", 10)
    assert (_job(custom_synth)["WorkerType"], _job(custom_synth)["NumberOfWorkers"]) == ("G.2X", 20)


def test_the_security_configuration_encrypts_s3_logs_and_bookmarks_with_the_data_key(synth: Synth) -> None:
    (configuration,) = synth.resources("AWS::Glue::SecurityConfiguration").values()
    encryption = configuration["Properties"]["EncryptionConfiguration"]
    (key,) = [k for k in synth.resources("AWS::KMS::Key") if k.startswith("StorageDataKey")]
    key_arn = {"Fn::GetAtt": [key, "Arn"]}
    assert encryption["S3Encryptions"] == [{"S3EncryptionMode": "SSE-KMS", "KmsKeyArn": key_arn}]
    assert encryption["CloudWatchEncryption"] == {"CloudWatchEncryptionMode": "SSE-KMS", "KmsKeyArn": key_arn}
    assert encryption["JobBookmarksEncryption"] == {"JobBookmarksEncryptionMode": "CSE-KMS", "KmsKeyArn": key_arn}


def test_the_job_role_reaches_only_the_cdc_prefixes_its_code_and_its_tables(synth: Synth) -> None:
    role = _job(synth)["Role"]["Fn::GetAtt"][0]
    statements = role_statements(synth.template, role)
    objects = {r for s in statements if "s3:GetObject" in s.actions or "s3:PutObject" in s.actions for r in s.resources}
    data = {r.split("/", 1)[1] for r in objects if "-data-" in r}
    assert {p.rstrip("*") for p in data} <= CDC_PREFIXES
    assert all("*" not in a for s in statements for a in s.actions)
    glue = sorted({a for s in statements for a in s.actions if a.startswith("glue:")})
    assert glue == ["glue:CreateTable", "glue:GetTable", "glue:UpdateTable"]


def test_the_cdc_function_may_only_start_this_job(synth: Synth) -> None:
    from .cfn_helpers import function_role

    statements = role_statements(synth.template, function_role(synth.template, "CdcFunction"))
    (start,) = [s for s in statements if any("Job" in a for a in s.actions)]
    assert start.actions == ["glue:StartJobRun"]
    assert [r.rsplit(":", 1)[1] for r in start.resources] == [f"job/{_job(synth)['Name']}"]


def test_the_threshold_is_sized_from_the_function_memory_or_set_in_context(synth: Synth, custom_synth: Synth) -> None:
    def threshold(s: Synth) -> int:
        (function,) = [
            f for f in s.resources("AWS::Lambda::Function").values()
            if "SPARK_JOB_NAME" in f["Properties"].get("Environment", {}).get("Variables", {})
        ]  # fmt: skip
        return int(function["Properties"]["Environment"]["Variables"]["SPARK_THRESHOLD_BYTES"])

    assert threshold(synth) == 2048 * 1024 * 1024  # half of the CDC function's 4096 MB
    assert threshold(custom_synth) == 500 * 1024 * 1024


def test_a_failed_timed_out_or_errored_run_alarms(synth: Synth) -> None:
    (rule_id, rule) = next(
        (k, r) for k, r in synth.resources("AWS::Events::Rule").items() if "EventPattern" in r["Properties"]
    )
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.glue"]
    assert pattern["detail"]["state"] == ["FAILED", "TIMEOUT", "ERROR"]
    assert pattern["detail"]["jobName"] == [_job(synth)["Name"]]
    alarms = [
        a["Properties"]
        for a in synth.resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "TriggeredRules"
    ]
    (alarm,) = alarms
    assert alarm["Namespace"] == "AWS/Events"
    assert alarm["Dimensions"] == [{"Name": "RuleName", "Value": {"Ref": rule_id}}]
    assert alarm["AlarmActions"]
