"""Typed cdk.json context: defaults, parsing of CLI strings, errors that name the key."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.application import CDK_JSON
from stacks.context import ContextError, StackSettings


def test_cdk_json_context_matches_the_code_defaults() -> None:
    # Given the context keys in cdk.json (the documented defaults)
    context = json.loads(CDK_JSON.read_text(encoding="utf-8"))["context"]
    # When parsing them
    settings = StackSettings.from_mapping(context)
    # Then they equal the dataclass defaults (one source of truth, documented in cdk.json)
    assert settings == StackSettings()


def test_command_line_strings_are_parsed() -> None:
    # Given values as `cdk -c key=value` passes them (strings)
    settings = StackSettings.from_mapping(
        {"build_layers": "true", "cdc_memory_mb": "3008", "data_prefix": "/lake/", "log_level": "debug"}
    )
    # Then they are typed and normalized
    assert settings.build_layers is True
    assert settings.cdc_memory_mb == 3008
    assert settings.data_prefix == "lake"
    assert settings.key_prefix == "lake/"
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("schedule_expression", "every 4 hours"),
        ("schedule_expression", "rate(0 hours)"),
        ("cdc_memory_mb", "20000"),
        ("cdc_memory_mb", "lots"),
        ("extract_timeout_minutes", 16),
        ("extract_timeout_minutes", 2),  # not more than the extract's 120 s upload margin
        ("bucket_name", "Not_A_Bucket"),
        ("data_prefix", "bad prefix"),
        ("log_retention_days", 42),
        ("log_level", "LOUD"),
        ("build_layers", "yes"),
        ("raw_retention_days", 3),
        ("staleness_hours", 48),
        ("alarm_email", "nobody"),
        ("powertools_layer_arn", "arn:aws:lambda:us-east-1:017000801446:function:nope"),
        ("region", "Mars"),
        ("stack_name", "1bad"),
        ("glue_database_name", "Bad-Name"),
    ],
)
def test_bad_value_names_the_context_key(key: str, value: Any) -> None:
    # Given one invalid context value
    # When parsing the context
    # Then the error names the key and shows the value
    with pytest.raises(ContextError) as error:
        StackSettings.from_mapping({key: value})
    assert str(error.value).startswith(f"context key {key!r}: got {value!r}, expected ")


def test_layer_arn_from_another_region_is_refused() -> None:
    # Given a stack in eu-west-1 that keeps the us-east-1 default layer ARNs
    # When parsing the context
    # Then the error names the layer key and the region key
    with pytest.raises(ContextError, match=r"'powertools_layer_arn'.*us-east-1.*eu-west-1.*'region'"):
        StackSettings.from_mapping({"region": "eu-west-1"})


def test_app_reports_a_bad_context_value_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    # Given the app entry point and an invalid schedule
    import app
    from stacks import application

    original = application.cdk_json_context

    def bad_context() -> dict[str, Any]:
        return {**original(), "schedule_expression": "sometimes"}

    # When running it
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(application, "cdk_json_context", bad_context)
        code = app.main()
    # Then it exits 2 with one line naming the key
    assert code == 2
    assert "context key 'schedule_expression'" in capsys.readouterr().err
