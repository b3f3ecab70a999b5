"""cdk-nag (AwsSolutions) and cfn-lint over the synthesized stack."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk.assertions import Annotations, Match
from cfnlint.api import lint

from .synthesis import Synth

NAG_RULE = Match.string_like_regexp("AwsSolutions-.*")


@pytest.fixture(scope="module")
def nag_annotations(synth: Synth) -> Annotations:
    return Annotations.from_stack(synth.stack)


def _describe(findings: list) -> list[str]:  # type: ignore[type-arg]
    return [f"{f.id}: {f.entry.data}" for f in findings]


def test_cdk_nag_reports_no_unsuppressed_errors(nag_annotations: Annotations) -> None:
    # Given the stack synthesized with the AwsSolutions checks as an aspect (app.py)
    # When collecting error annotations from cdk-nag
    errors = nag_annotations.find_error("*", NAG_RULE)
    # Then there are none
    assert _describe(errors) == []


def test_cdk_nag_reports_no_unsuppressed_warnings(nag_annotations: Annotations) -> None:
    # Given the same synthesis
    warnings = nag_annotations.find_warning("*", NAG_RULE)
    # Then no warning either
    assert _describe(warnings) == []


def test_cdk_nag_ran_and_every_suppression_has_a_reason(synth: Synth) -> None:
    # Given the resources that carry cdk-nag suppressions in their metadata
    suppressions = [
        rule
        for resource in synth.template["Resources"].values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    report = next(synth.outdir.glob("AwsSolutions-*-NagReport.csv")).read_text(encoding="utf-8")
    # Then the checks ran (their report exists), and each suppression names a rule and a real reason
    assert '"Compliant"' in report
    assert suppressions
    for rule in suppressions:
        assert rule["id"].startswith("AwsSolutions-")
        assert len(rule["reason"]) >= 60, rule


def test_iam5_suppressions_are_scoped_with_applies_to(synth: Synth) -> None:
    # Given the IAM5 (wildcard) suppressions
    iam5 = [
        rule
        for resource in synth.template["Resources"].values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
        if rule["id"] == "AwsSolutions-IAM5"
    ]
    # Then each one lists the findings it covers (never a blanket IAM5 suppression)
    assert iam5
    assert all(rule.get("applies_to") for rule in iam5)


def _lint(template_path: Path) -> list[str]:
    """cfn-lint's default rule set (errors and warnings), for the stack's region."""
    matches = lint(template_path.read_text(encoding="utf-8"), regions=["us-east-1"])
    return [f"{m.rule.id} {m.message} ({'/'.join(map(str, m.path))})" for m in matches]


def test_cfn_lint_reports_no_errors_or_warnings(synth: Synth) -> None:
    # Given the synthesized template(s)
    templates = sorted(synth.outdir.glob("*.template.json"))
    # When cfn-lint checks them
    findings = [finding for template in templates for finding in _lint(template)]
    # Then there is nothing to report
    assert templates
    assert findings == []


def test_cfn_lint_also_passes_for_the_custom_context(custom_synth: Synth) -> None:
    # Given the stack with a prefix, a named bucket, a cron schedule and an e-mail subscription
    findings = [f for t in sorted(custom_synth.outdir.glob("*.template.json")) for f in _lint(t)]
    # Then cfn-lint is clean too
    assert findings == []
