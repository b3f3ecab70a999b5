"""`make synth` works with no AWS credentials or account in the environment, and never calls AWS."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from stacks.kaggle_layer import REPO_ROOT


def test_app_synthesizes_without_aws_environment(no_aws_environment: dict[str, str], tmp_path: Path) -> None:
    # Given an environment without any AWS_* or CDK_DEFAULT_* variable, and no network use
    env = {**no_aws_environment, "CDK_OUTDIR": str(tmp_path), "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    # When running the app as `make synth` does
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    # Then it writes the template, account-agnostic (no lookup happened)
    assert result.returncode == 0, result.stderr[-2000:]
    template = json.loads((tmp_path / "SnapCdc.template.json").read_text(encoding="utf-8"))
    assert "ExtractFunction" in template["Resources"]
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["artifacts"]["SnapCdc"]["environment"] == "aws://unknown-account/us-east-1"
    assert not list(tmp_path.glob("**/cdk.context.json"))
