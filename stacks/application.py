"""Build the CDK app: cdk.json context (also when run without the CDK CLI), the stack, cdk-nag."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from aws_cdk import App, Aspects, Environment
from cdk_nag import AwsSolutionsChecks

from stacks.context import StackSettings
from stacks.kaggle_layer import REPO_ROOT
from stacks.snapcdc_stack import SnapCdcStack

CDK_JSON = REPO_ROOT / "cdk.json"


def cdk_json_context() -> dict[str, Any]:
    """cdk.json's context: the CDK CLI passes it to the app, `python app.py` alone would not."""
    context: dict[str, Any] = json.loads(CDK_JSON.read_text(encoding="utf-8")).get("context", {})
    # Asset paths in the template metadata: `sam local invoke` finds the functions' code by them.
    context.setdefault("aws:cdk:enable-asset-metadata", True)
    return context


def build_app(context: Mapping[str, Any] | None = None, outdir: str | None = None) -> tuple[App, SnapCdcStack]:
    """The app with its one stack and the AwsSolutions checks; ``context`` overrides cdk.json.

    Values the CDK CLI passes (``-c key=value``) take precedence over both. Nothing here calls
    AWS: the account stays unresolved unless CDK_DEFAULT_ACCOUNT is set, the region comes from
    context (the public layer ARNs are regional).
    """
    merged = {**cdk_json_context(), **(context or {})}
    app = App(context=merged, outdir=outdir, analytics_reporting=False)
    settings = StackSettings.from_context(app.node.try_get_context)
    stack = SnapCdcStack(
        app,
        settings.stack_name,
        settings=settings,
        description="snapcdc: snapshot change-data-capture from Kaggle into an S3 data lake",
        env=Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=settings.region),
    )
    Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return app, stack
