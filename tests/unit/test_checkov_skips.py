"""stacks.checkov.skip_checks: a skip without a real reason never reaches the template."""

from __future__ import annotations

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_sqs as sqs

from stacks.checkov import skip_checks

REASON = "A reason long enough for a reviewer to check it against the resource and the threat model."


def test_skip_is_written_into_the_resource_metadata() -> None:
    # Given a queue
    stack = Stack(App(), "S")
    queue = sqs.Queue(stack, "Q")
    # When two checks are skipped on it, in two calls
    skip_checks(queue, ("CKV_AWS_27", REASON))
    skip_checks(queue, ("CKV_AWS_1", REASON))
    # Then the metadata lists both with their reasons
    assert queue.node.default_child.get_metadata("checkov") == {  # type: ignore[union-attr]
        "skip": [{"id": "CKV_AWS_27", "comment": REASON}, {"id": "CKV_AWS_1", "comment": REASON}]
    }


def test_a_skip_without_a_real_reason_is_refused() -> None:
    # Given a queue
    queue = sqs.Queue(Stack(App(), "S"), "Q")
    # When a check is skipped with a token reason
    # Then the synth fails, naming the check
    with pytest.raises(ValueError, match="CKV_AWS_27"):
        skip_checks(queue, ("CKV_AWS_27", "n/a"))
