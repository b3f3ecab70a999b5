"""Skips of checkov findings, written into the template where checkov reads them.

checkov reads a CloudFormation resource's ``Metadata.checkov.skip`` list of ``{id, comment}``;
every skip carries the reason a security reviewer can check (tests/infra/test_checkov.py refuses
a skip without one).
"""

from __future__ import annotations

from aws_cdk import CfnResource
from constructs import IConstruct

MIN_REASON_LENGTH = 60


def skip_checks(resource: IConstruct, *skips: tuple[str, str]) -> None:
    """Skip checkov checks ``(id, reason)`` on ``resource`` (an L2 construct or its CfnResource)."""
    cfn = resource if isinstance(resource, CfnResource) else resource.node.default_child
    if not isinstance(cfn, CfnResource):
        raise TypeError(f"{resource.node.path} has no CloudFormation resource to put a checkov skip on")
    for check_id, reason in skips:
        if len(reason.strip()) < MIN_REASON_LENGTH:
            raise ValueError(f"checkov skip {check_id} on {cfn.node.path}: give a reason a reviewer can check")
    existing = cfn.get_metadata("checkov") or {}
    entries = [*existing.get("skip", []), *({"id": i, "comment": r} for i, r in skips)]
    cfn.add_metadata("checkov", {"skip": entries})
