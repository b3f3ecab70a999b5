"""Read a synthesized CloudFormation template: render intrinsics to text, walk policy statements."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# Resource types whose properties hold IAM policy documents, and where.
POLICY_DOCUMENTS = {
    "AWS::IAM::Policy": ("PolicyDocument",),
    "AWS::IAM::ManagedPolicy": ("PolicyDocument",),
    "AWS::S3::BucketPolicy": ("PolicyDocument",),
    "AWS::SQS::QueuePolicy": ("PolicyDocument",),
    "AWS::SNS::TopicPolicy": ("PolicyDocument",),
    "AWS::KMS::Key": ("KeyPolicy",),
    "AWS::SecretsManager::ResourcePolicy": ("ResourcePolicy",),
}


def render(value: Any) -> str:
    """An intrinsic as readable text: Ref X -> ${X}, GetAtt X.Arn -> ${X.Arn}, Join -> joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((name, arg),) = value.items()
        if name == "Ref":
            return f"${{{arg}}}"
        if name == "Fn::GetAtt":
            return "${" + ".".join(arg) + "}"
        if name == "Fn::Join":
            separator, parts = arg
            return separator.join(render(p) for p in parts)
        if name == "Fn::Sub":
            return arg if isinstance(arg, str) else arg[0]
    return repr(value)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Statement:
    logical_id: str
    resource_type: str
    body: dict[str, Any]

    @property
    def effect(self) -> str:
        return str(self.body["Effect"])

    @property
    def actions(self) -> list[str]:
        return [str(a) for a in as_list(self.body.get("Action", []))]

    @property
    def resources(self) -> list[str]:
        return [render(r) for r in as_list(self.body.get("Resource", []))]

    @property
    def conditions(self) -> dict[str, Any]:
        return dict(self.body.get("Condition", {}))

    @property
    def principal(self) -> Any:
        return self.body.get("Principal")


def policy_statements(template: dict[str, Any]) -> Iterator[Statement]:
    for logical_id, resource in template["Resources"].items():
        path = POLICY_DOCUMENTS.get(resource["Type"])
        if path is None:
            continue
        document: Any = resource["Properties"]
        for key in path:
            document = document[key]
        for body in as_list(document["Statement"]):
            yield Statement(logical_id, resource["Type"], body)
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"].get("Policies", []):
                for body in as_list(policy["PolicyDocument"]["Statement"]):
                    yield Statement(logical_id, resource["Type"], body)


def role_statements(template: dict[str, Any], role_logical_id: str) -> list[Statement]:
    """Identity-policy statements attached to one role (inline or AWS::IAM::Policy)."""
    statements = []
    for statement in policy_statements(template):
        resource = template["Resources"][statement.logical_id]
        if statement.logical_id == role_logical_id:
            statements.append(statement)
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            roles = resource["Properties"].get("Roles", [])
            if {"Ref": role_logical_id} in roles:
                statements.append(statement)
    return statements


def function_role(template: dict[str, Any], function_logical_id: str) -> str:
    role = template["Resources"][function_logical_id]["Properties"]["Role"]
    return str(role["Fn::GetAtt"][0])
