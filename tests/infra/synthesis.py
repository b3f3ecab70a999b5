"""Synthesize the stack for the infra tests (imported by conftest.py and the tests' type hints)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
# Node 20 is past jsii's end-of-life date: its banner on every test process is only noise.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from stacks.application import build_app  # noqa: E402
from stacks.snapcdc_stack import SnapCdcStack  # noqa: E402


@dataclass
class Synth:
    app: App
    stack: SnapCdcStack
    outdir: Path
    template: dict[str, Any]

    @property
    def assertions(self) -> Template:
        return Template.from_json(self.template)

    def resources(self, type_name: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.template["Resources"].items() if v["Type"] == type_name}

    def resource(self, logical_id: str) -> dict[str, Any]:
        resource: dict[str, Any] = self.template["Resources"][logical_id]
        return resource


def synthesize(tmp: Path, context: dict[str, Any] | None = None) -> Synth:
    app, stack = build_app(context=context, outdir=str(tmp))
    assembly = app.synth()
    artifact = assembly.get_stack_artifact(stack.artifact_id)
    template = json.loads((tmp / artifact.template_file).read_text(encoding="utf-8"))
    return Synth(app=app, stack=stack, outdir=tmp, template=template)
