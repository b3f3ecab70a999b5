#!/usr/bin/env python3
"""CDK entry point: `make synth` (templates in cdk.out/) or `make deploy` (npx cdk deploy)."""

from __future__ import annotations

import sys

from stacks.application import build_app
from stacks.context import ContextError


def main() -> int:
    try:
        app, _ = build_app()
    except ContextError as error:
        print(f"snapcdc: {error}", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
