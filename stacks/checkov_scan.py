"""checkov's CloudFormation checks on the synthesized stack, offline: any failed check is an error.

``make checkov`` (part of ``make lint``) and tests/infra/test_checkov.py run it. checkov lives in its
own venv (``.venv-checkov``: its pins of boto3/botocore/packaging clash with the project's), so it
is run as a program on the template file. Nothing leaves the machine: no platform API key, no
policy-mapping or module download, no update check, and a proxy on a closed loopback port catches
any request that would still try.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
_DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, a request fails at once

OFFLINE_ENVIRONMENT = {
    "BC_SKIP_MAPPING": "TRUE",
    "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE",
    "HTTP_PROXY": _DEAD_PROXY,
    "HTTPS_PROXY": _DEAD_PROXY,
    "http_proxy": _DEAD_PROXY,
    "https_proxy": _DEAD_PROXY,
    "NO_PROXY": "",
    "no_proxy": "",
}


@dataclass(frozen=True)
class Finding:
    check_id: str
    resource: str
    name: str
    reason: str = ""

    def line(self) -> str:
        suffix = f": {self.reason}" if self.reason else ""
        return f"{self.check_id} {self.resource} ({self.name}){suffix}"


@dataclass(frozen=True)
class ScanResult:
    passed: int
    failed: list[Finding]
    skipped: list[Finding]
    parsing_errors: int


def scan(template: Path, checkov: Path = DEFAULT_CHECKOV) -> ScanResult:
    """Run checkov's cloudformation framework on one template; raises if checkov itself fails."""
    if not checkov.exists():
        raise FileNotFoundError(f"{checkov} not found: run `make checkov` (it creates .venv-checkov)")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_", "CKV_"))}
    environment |= OFFLINE_ENVIRONMENT
    command = [
        str(checkov),
        "--file",
        str(template),
        "--framework",
        "cloudformation",
        "--skip-download",
        "--output",
        "json",
        "--compact",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300, check=False)
    # checkov exits 1 when a check failed; anything else than JSON on stdout is checkov failing.
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"checkov exited {done.returncode} without a report: {done.stderr[-2000:]}") from None
    summary = report["summary"]
    results = report.get("results", {})

    def findings(kind: str) -> list[Finding]:
        return [Finding(r["check_id"], r["resource"], r["check_name"], _reason(r)) for r in results.get(kind, [])]

    return ScanResult(
        passed=int(summary["passed"]),
        failed=findings("failed_checks"),
        skipped=findings("skipped_checks"),
        parsing_errors=int(summary["parsing_errors"]),
    )


def _reason(result: dict[str, Any]) -> str:
    return str((result.get("check_result") or {}).get("suppress_comment", ""))


def synthesize(outdir: Path) -> Path:
    """The stack as `make synth` builds it; returns its template file."""
    from stacks.application import build_app

    app, stack = build_app(outdir=str(outdir))
    assembly = app.synth()
    return outdir / assembly.get_stack_artifact(stack.artifact_id).template_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--checkov", type=Path, default=DEFAULT_CHECKOV, help="the checkov program")
    parser.add_argument("--template", type=Path, help="a synthesized template (default: synthesize the stack)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="snapcdc-checkov-") as tmp:
        template = args.template or synthesize(Path(tmp))
        result = scan(template, args.checkov)
    for finding in result.skipped:
        print(f"skipped {finding.line()}")
    for finding in result.failed:
        print(f"FAILED  {finding.line()}")
    print(
        f"checkov: {result.passed} passed, {len(result.failed)} failed, {len(result.skipped)} skipped,"
        f" {result.parsing_errors} parsing errors"
    )
    return 1 if result.failed or result.parsing_errors else 0


if __name__ == "__main__":
    sys.exit(main())
