"""The two functions: runtime, sizing, layers, environment, failure handling, triggers."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.constructs.layers import SharedLayers
from stacks.context import DEFAULT_AWS_SDK_PANDAS_LAYER_ARN, DEFAULT_POWERTOOLS_LAYER_ARN
from stacks.kaggle_layer import PLACEHOLDER_DESCRIPTION

from .cfn_helpers import render
from .synthesis import Synth

EXTRACT = "ExtractFunction"
CDC = "CdcFunction"


def _props(synth: Synth, logical_id: str) -> dict[str, Any]:
    props: dict[str, Any] = synth.resource(logical_id)["Properties"]
    return props


def _layer_description(synth: Synth, layer: Any) -> str:
    return str(synth.resource(layer["Ref"])["Properties"]["Description"])


@pytest.mark.parametrize("logical_id", [EXTRACT, CDC])
def test_functions_run_python_3_12_on_arm64_with_tracing(synth: Synth, logical_id: str) -> None:
    # Given a pipeline function
    props = _props(synth, logical_id)
    # Then it runs handler.lambda_handler on python3.12/arm64 with active X-Ray tracing
    assert props["Runtime"] == "python3.12"
    assert props["Architectures"] == ["arm64"]
    assert props["Handler"] == "handler.lambda_handler"
    assert props["TracingConfig"] == {"Mode": "Active"}


def test_extract_function_is_sized_for_the_dataset_zip_and_capped_to_one_run(synth: Synth) -> None:
    # Given the extract function (the Kaggle zip and its CSVs stream through memory to S3, never /tmp)
    props = _props(synth, EXTRACT)
    # Then it has 1 GB, 10 minutes, Lambda's minimum /tmp, and one concurrent execution
    assert props["MemorySize"] == 1024
    assert props["Timeout"] == 600
    assert props["EphemeralStorage"] == {"Size": 512}
    assert props["ReservedConcurrentExecutions"] == 1


def test_cdc_function_is_sized_for_big_tables(synth: Synth) -> None:
    # Given the CDC function
    props = _props(synth, CDC)
    # Then it has 4 GB memory, the 15-minute maximum and 8 GB of /tmp
    assert props["MemorySize"] == 4096
    assert props["Timeout"] == 900
    assert props["EphemeralStorage"] == {"Size": 8192}


def test_sizes_and_concurrency_follow_context(custom_synth: Synth) -> None:
    # Given cdc_memory_mb=6144 and extract_reserved_concurrency=0 (unreserved)
    # Then the CDC memory follows and the extract function has no reserved concurrency
    assert _props(custom_synth, CDC)["MemorySize"] == 6144
    assert "ReservedConcurrentExecutions" not in _props(custom_synth, EXTRACT)


def test_extract_layers_are_core_kaggle_and_powertools(synth: Synth) -> None:
    # Given the extract function's layers
    layers = _props(synth, EXTRACT)["Layers"]
    # Then it has our core layer, the kaggle layer (a marked placeholder in synth) and Powertools
    descriptions = sorted(_layer_description(synth, layer) for layer in layers if isinstance(layer, dict))
    assert descriptions == sorted(
        [PLACEHOLDER_DESCRIPTION, "snapcdc core package (config, layout, CDC engine, S3 store)"]
    )
    assert DEFAULT_POWERTOOLS_LAYER_ARN in layers
    assert len(layers) == 3


def test_cdc_layers_are_core_aws_sdk_for_pandas_and_powertools(synth: Synth) -> None:
    # Given the CDC function's layers
    layers = _props(synth, CDC)["Layers"]
    # Then it has our core layer and the two public layers by their context ARNs
    assert DEFAULT_AWS_SDK_PANDAS_LAYER_ARN in layers
    assert DEFAULT_POWERTOOLS_LAYER_ARN in layers
    # And our own two: the core package and pyiceberg (docs/iceberg.md)
    ours = sorted(_layer_description(synth, layer) for layer in layers if isinstance(layer, dict))
    assert len(ours) == 2
    assert any(d.startswith("snapcdc core package") for d in ours)
    assert any("iceberg" in d.lower() for d in ours)
    assert len(layers) == 4


def test_core_and_kaggle_layers_target_the_functions_runtime(synth: Synth) -> None:
    # Given our own layers
    for layer in synth.resources("AWS::Lambda::LayerVersion").values():
        # Then each declares python3.12 / arm64
        assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
        assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]


def test_kaggle_layer_needs_a_build_when_build_layers_is_true(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    # Given build_layers=true and no built layer
    from aws_cdk import App, Stack

    from stacks import kaggle_layer
    from stacks.constructs import layers as layers_module
    from stacks.context import StackSettings

    monkeypatch.setattr(layers_module, "build_dir", lambda: tmp_path / "missing")
    settings = StackSettings.from_mapping({"build_layers": "true"})
    # When building the layers
    # Then the error names the context key and the make target
    with pytest.raises(layers_module.KaggleLayerNotBuiltError, match=r"'build_layers'.*make layers"):
        SharedLayers(Stack(App(), "T"), "Layers", settings=settings)
    assert kaggle_layer.PLACEHOLDER_DIR.is_dir()


def test_extract_environment(synth: Synth) -> None:
    # Given the extract function's environment
    env = _props(synth, EXTRACT)["Environment"]["Variables"]
    # Then it names the bucket (by its derived name), prefix, secret and Powertools settings
    assert render(env["BUCKET_NAME"]) == "snapcdc-data-${AWS::AccountId}-${AWS::Region}"
    assert env["DATA_PREFIX"] == ""
    secret_id = env["KAGGLE_SECRET_ARN"]["Ref"]
    assert synth.resource(secret_id)["Type"] == "AWS::SecretsManager::Secret"
    assert env["POWERTOOLS_SERVICE_NAME"] == "snapcdc-extract"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "snapcdc"
    assert env["LOG_LEVEL"] == "INFO"


def test_cdc_environment_has_no_secret(synth: Synth) -> None:
    # Given the CDC function's environment
    env = _props(synth, CDC)["Environment"]["Variables"]
    # Then it has the bucket, prefix, Glue database, the Spark job (threshold, timeout, restarts), Powertools
    # settings and OpenBLAS's threads (none: a cold start's import spins none), and nothing about Kaggle
    assert set(env) == {
        "BUCKET_NAME",
        "DATA_PREFIX",
        "GLUE_DATABASE",
        "SPARK_JOB_NAME",
        "SPARK_THRESHOLD_BYTES",
        "SPARK_JOB_TIMEOUT_MINUTES",
        "SPARK_MAX_RESTARTS",
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
        "LOG_LEVEL",
        "OPENBLAS_NUM_THREADS",
    }
    assert env["POWERTOOLS_SERVICE_NAME"] == "snapcdc-cdc"
    assert env["OPENBLAS_NUM_THREADS"] == "1"


def test_environment_follows_context(custom_synth: Synth) -> None:
    # Given data_prefix=lake/, bucket_name and metrics_namespace in context
    for logical_id in (EXTRACT, CDC):
        env = _props(custom_synth, logical_id)["Environment"]["Variables"]
        # Then the prefix is normalized (no slashes) and the names are passed through
        assert env["DATA_PREFIX"] == "lake"
        assert env["BUCKET_NAME"] == "acme-snapcdc-lake"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "acme/snapcdc"


@pytest.mark.parametrize("logical_id", [EXTRACT, CDC])
def test_functions_log_to_their_own_retained_log_group(synth: Synth, logical_id: str) -> None:
    # Given the function's logging config
    group_id = _props(synth, logical_id)["LoggingConfig"]["LogGroup"]["Ref"]
    # Then the log group has the context's retention (30 days)
    assert synth.resource(group_id)["Properties"]["RetentionInDays"] == 30


@pytest.mark.parametrize(("logical_id", "max_age"), [(EXTRACT, 3600), (CDC, 6 * 3600)])
def test_failed_async_invocations_retry_twice_then_go_to_an_encrypted_dlq(
    synth: Synth, logical_id: str, max_age: int
) -> None:
    # Given the function's async invoke config
    (config,) = [
        c["Properties"]
        for c in synth.resources("AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": logical_id}
    ]
    # Then it retries twice, drops events older than max_age, and sends failures to an SQS DLQ
    assert config["MaximumRetryAttempts"] == 2
    assert config["MaximumEventAgeInSeconds"] == max_age
    queue_id = config["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    queue = synth.resource(queue_id)
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_dead_letter_queues_deny_requests_without_tls(synth: Synth) -> None:
    # Given the queue policies
    denied: set[str] = set()
    for policy in synth.resources("AWS::SQS::QueuePolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement.get("Condition") == {
                "Bool": {"aws:SecureTransport": "false"}
            }:
                denied.update(q["Ref"] for q in policy["Properties"]["Queues"])
    # Then every queue is covered
    assert denied == set(synth.resources("AWS::SQS::Queue"))


def _schedules(synth: Synth) -> list[dict[str, Any]]:
    """The scheduled EventBridge rules (the other rule matches failed Glue job runs)."""
    return [r for r in synth.resources("AWS::Events::Rule").values() if "ScheduleExpression" in r["Properties"]]


def test_schedule_runs_extract_every_4_hours_with_retries_and_dlq(synth: Synth) -> None:
    # Given the EventBridge rule
    (rule,) = _schedules(synth)
    props = rule["Properties"]
    (target,) = props["Targets"]
    # Then it fires rate(4 hours) at the extract function, retrying twice, then to the extract DLQ
    assert props["ScheduleExpression"] == "rate(4 hours)"
    assert props["State"] == "ENABLED"
    assert target["Arn"] == {"Fn::GetAtt": [EXTRACT, "Arn"]}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 2}
    dlq = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    extract_config = next(
        c["Properties"]
        for c in synth.resources("AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": EXTRACT}
    )
    assert extract_config["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0] == dlq


def test_schedule_comes_from_context(custom_synth: Synth) -> None:
    # Given schedule_expression=cron(15 */6 * * ? *)
    (rule,) = _schedules(custom_synth)
    # Then the rule uses it
    assert rule["Properties"]["ScheduleExpression"] == "cron(15 */6 * * ? *)"


def _notification(synth: Synth) -> dict[str, Any]:
    (bucket,) = [
        b for b in synth.resources("AWS::S3::Bucket").values() if "NotificationConfiguration" in b["Properties"]
    ]
    (config,) = bucket["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
    return dict(config)


def test_raw_csv_uploads_invoke_the_cdc_function(synth: Synth) -> None:
    # Given the data bucket's notification configuration
    config = _notification(synth)
    # Then any ObjectCreated (PUT or multipart) under raw/ ending in .csv invokes the CDC function
    assert config["Event"] == "s3:ObjectCreated:*"
    assert config["Filter"]["S3Key"]["Rules"] == [
        {"Name": "prefix", "Value": "raw/"},
        {"Name": "suffix", "Value": ".csv"},
    ]
    assert config["Function"] == {"Fn::GetAtt": [CDC, "Arn"]}


def test_notification_prefix_honours_data_prefix(custom_synth: Synth) -> None:
    # Given data_prefix=lake/
    # Then only lake/raw/**.csv invokes the CDC function
    assert _notification(custom_synth)["Filter"]["S3Key"]["Rules"][0] == {"Name": "prefix", "Value": "lake/raw/"}


def test_only_the_data_bucket_and_account_may_invoke_the_cdc_function(synth: Synth) -> None:
    # Given the S3 invoke permission
    (permission,) = [
        p["Properties"]
        for p in synth.resources("AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "s3.amazonaws.com"
    ]
    # Then it is scoped to the data bucket's ARN and this account (bucket ARNs carry no account)
    assert permission["FunctionName"] == {"Fn::GetAtt": [CDC, "Arn"]}
    assert render(permission["SourceArn"]) == "arn:${AWS::Partition}:s3:::snapcdc-data-${AWS::AccountId}-${AWS::Region}"
    assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_bucket_notification_waits_for_the_invoke_permission(synth: Synth) -> None:
    # Given the data bucket (S3 validates the destination when the notification is saved)
    (bucket,) = [
        b for b in synth.resources("AWS::S3::Bucket").values() if "NotificationConfiguration" in b["Properties"]
    ]
    permission_id = next(
        k
        for k, p in synth.resources("AWS::Lambda::Permission").items()
        if p["Properties"]["Principal"] == "s3.amazonaws.com"
    )
    # Then it depends on the permission, and no notification custom resource is needed
    assert permission_id in bucket["DependsOn"]
    assert not synth.resources("Custom::S3BucketNotifications")
