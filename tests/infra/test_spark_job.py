"""The Spark CDC job in the template: Glue 5.0, its code as assets, bookmarks off, workers from context,
a security configuration encrypting with the data key, a least-privilege role, the CDC function allowed
to start it (and nothing else), a failed run alarmed."""

from __future__ import annotations

from typing import Any

from snapcdc.lake.layout import ICEBERG_PREFIX, SPARK_PARTS_PREFIX

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
    assert "pyiceberg==0.12.0" in arguments["--additional-python-modules"]
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
    # (and the diff tasks' scratch, which the merge tasks read and the driver deletes, and the Iceberg tables)
    assert {p.rstrip("*") for p in data} <= {*CDC_PREFIXES, SPARK_PARTS_PREFIX, ICEBERG_PREFIX}
    # It deletes its scratch, part files of the outputs its tasks write (a retried run's stale parts) and
    # the data files of an Iceberg commit that lost its race: never a single-file output (the CDC
    # function's), never raw/, _runs/ or scd2/
    deletes = {r.split("/", 1)[1] for s in statements if "s3:DeleteObject" in s.actions for r in s.resources}
    outputs = ("snapshots/", "full-load/", "quarantine/", "cdc/", "changelog/", "dms/")
    assert deletes == {SPARK_PARTS_PREFIX + "*", ICEBERG_PREFIX + "*", *(f"{p}*-part-*" for p in outputs)}
    assert all("*" not in a for s in statements for a in s.actions)
    glue = sorted({a for s in statements for a in s.actions if a.startswith("glue:")})
    assert glue == ["glue:CreateTable", "glue:GetDatabase", "glue:GetTable", "glue:UpdateTable"]


def test_the_job_role_keeps_the_iceberg_tables_as_the_cdc_role_does(synth: Synth) -> None:
    from .cfn_helpers import function_role

    # Given the Iceberg statements of the job's role and of the CDC function's role
    job = role_statements(synth.template, _job(synth)["Role"]["Fn::GetAtt"][0])
    cdc = role_statements(synth.template, function_role(synth.template, "CdcFunction"))

    def iceberg(statements: list[Any]) -> dict[str, set[str]]:
        """Resource -> the actions granted on it, for the Iceberg tables' Glue ARNs and iceberg/*."""
        (glue,) = [s for s in statements if s.body.get("Sid") == "IcebergTablesInTheGlueCatalog"]
        wanted = {render(r) for r in glue.resources} | {
            r for s in statements for r in s.resources if r.endswith("/iceberg/*")
        }
        grants: dict[str, set[str]] = {}
        for statement in statements:
            for resource in statement.resources:
                if render(resource) in wanted:
                    grants.setdefault(render(resource), set()).update(statement.actions)
        return grants

    # Then the same Glue actions on the same tables and the same objects under iceberg/, and no DeleteTable
    assert iceberg(job) and iceberg(job) == iceberg(cdc)
    assert not any("glue:DeleteTable" in s.actions for s in job)


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
            if "SPARK_THRESHOLD_BYTES" in f["Properties"].get("Environment", {}).get("Variables", {})
        ]  # fmt: skip
        return int(function["Properties"]["Environment"]["Variables"]["SPARK_THRESHOLD_BYTES"])

    assert threshold(synth) == 2048 * 1024 * 1024  # half of the CDC function's 4096 MB
    assert threshold(custom_synth) == 500 * 1024 * 1024


def _conf(job: dict[str, Any]) -> dict[str, str]:
    """The job's ``--conf`` argument (``a=1 --conf b=2``) as Spark settings."""
    pairs = [item.strip() for item in job["DefaultArguments"]["--conf"].split("--conf")]
    return dict(pair.split("=", 1) for pair in pairs)


def test_the_spark_settings_have_defaults_sized_for_the_workload(synth: Synth) -> None:
    # Given the job as cdk.json's defaults make it
    job = _job(synth)
    # Then the executors' Python workers get an eighth of a G.1X worker's 16 GB, adaptive execution is on,
    # the driver's result cap is 2 GB, and shuffle partitions follow each raw object's size (128 MB each)
    assert _conf(job) == {
        "spark.executor.memoryOverhead": "2048m",
        "spark.driver.maxResultSize": "2048m",
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.sql.adaptive.skewJoin.enabled": "true",
    }
    assert job["DefaultArguments"]["--SHUFFLE_PARTITIONS"] == "0"
    assert job["DefaultArguments"]["--PARTITION_MB"] == "128"
    assert (job["Timeout"], job["MaxRetries"]) == (120, 0)


def test_the_spark_settings_follow_context(custom_synth: Synth) -> None:
    # Given glue_* context keys set (G.2X, overhead 3 GB, 400 partitions, 256 MB, 1 GB results, no AQE)
    job = _job(custom_synth)
    conf = _conf(job)
    # Then each reaches the job's arguments
    assert conf["spark.executor.memoryOverhead"] == "3072m"
    assert conf["spark.driver.maxResultSize"] == "1024m"
    assert {conf[k] for k in conf if k.startswith("spark.sql.adaptive")} == {"false"}
    assert job["DefaultArguments"]["--SHUFFLE_PARTITIONS"] == "400"
    assert job["DefaultArguments"]["--PARTITION_MB"] == "256"
    # and the timeout, which also ages a claim out (the CDC function's SPARK_JOB_TIMEOUT_MINUTES)
    assert job["Timeout"] == 240
    assert job["MaxRetries"] == 0  # the state-change handler retries (glue_max_retries), never Glue


def test_the_memory_overhead_defaults_to_an_eighth_of_the_worker_type(synth: Synth, custom_synth: Synth) -> None:
    # Given G.2X workers (32 GB) and an explicit overhead in custom_synth: the explicit value wins
    assert _conf(_job(custom_synth))["spark.executor.memoryOverhead"] == "3072m"
    # And without it the overhead follows the worker type
    from stacks.constructs.spark_job import spark_conf
    from stacks.context import StackSettings

    assert spark_conf(StackSettings(glue_worker_type="G.4X"))["spark.executor.memoryOverhead"] == "8192m"


def _state_function(synth: Synth) -> dict[str, Any]:
    return dict(synth.resource("SparkStateFunction")["Properties"])


def test_a_failed_timed_out_stopped_or_errored_run_goes_to_the_state_function(synth: Synth) -> None:
    # Given the rule on the job's state changes
    (rule,) = [r for r in synth.resources("AWS::Events::Rule").values() if "EventPattern" in r["Properties"]]
    pattern = rule["Properties"]["EventPattern"]
    # Then it matches this job's runs that ended without finishing, STOPPED included
    assert pattern["source"] == ["aws.glue"]
    assert pattern["detail-type"] == ["Glue Job State Change"]
    assert sorted(pattern["detail"]["state"]) == ["ERROR", "FAILED", "STOPPED", "TIMEOUT"]
    assert pattern["detail"]["jobName"] == [_job(synth)["Name"]]
    # And its one target is the state-change function, retried twice
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["SparkStateFunction", "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2
    environment = _state_function(synth)["Environment"]["Variables"]
    assert environment["SPARK_JOB_NAME"] == _job(synth)["Name"]
    assert environment["SPARK_MAX_RESTARTS"] == "2"


def test_the_restart_bound_and_the_takeover_age_follow_context(custom_synth: Synth) -> None:
    # Given glue_max_retries=3 and glue_timeout_minutes=240
    state = _state_function(custom_synth)["Environment"]["Variables"]
    (cdc,) = [
        f["Properties"]["Environment"]["Variables"]
        for f in custom_synth.resources("AWS::Lambda::Function").values()
        if "SPARK_THRESHOLD_BYTES" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    # Then the state-change function restarts a table 3 times, and so may the CDC function's takeover,
    # which takes a claim over once it is older than the job's timeout
    assert state["SPARK_MAX_RESTARTS"] == cdc["SPARK_MAX_RESTARTS"] == "3"
    assert cdc["SPARK_JOB_TIMEOUT_MINUTES"] == "240"


def test_a_table_whose_restarts_are_given_up_alarms_with_its_name(synth: Synth) -> None:
    # Given the alarms on the state-change function's per-table metric
    alarms = [
        a["Properties"]
        for a in synth.resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "SparkRestartsGivenUp"
    ]
    # Then there is one per table, each naming its table, and each notifies the alarm topic
    from snapcdc.config import load_config

    tables = {d["Value"] for a in alarms for d in a["Dimensions"] if d["Name"] == "table"}
    assert tables == set(load_config().table_names)
    assert all({"Name": "service", "Value": "snapcdc-spark-state"} in a["Dimensions"] for a in alarms)
    assert all(a["AlarmActions"] for a in alarms)
    # And the rule's raw TriggeredRules count (no table in it) alarms no more
    assert not [
        a
        for a in synth.resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "TriggeredRules"
    ]


def test_the_state_function_may_only_read_and_replace_claims_and_restart_this_job(synth: Synth) -> None:
    from .cfn_helpers import role_statements

    role = _state_function(synth)["Role"]["Fn::GetAtt"][0]
    statements = role_statements(synth.template, role)
    actions = sorted({a for s in statements for a in s.actions})
    # Then it reads and rewrites the claims and nothing else of the bucket, lists _runs/, uses the data key
    # through S3, and gets and starts runs of this one job; it deletes nothing
    assert [a for a in actions if a.startswith(("s3:", "glue:"))] == [
        "glue:GetJobRun",
        "glue:StartJobRun",
        "s3:GetObject",
        "s3:ListBucket",
        "s3:PutObject",
    ]
    objects = {r for s in statements if "s3:PutObject" in s.actions for r in s.resources}
    assert {r.split("/", 1)[1] for r in objects} == {"_runs/*.glue.json"}
    glue = {r for s in statements if "glue:StartJobRun" in s.actions for r in s.resources}
    assert [r.rsplit(":", 1)[1] for r in glue] == [f"job/{_job(synth)['Name']}"]
