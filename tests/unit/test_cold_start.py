"""Every scheduled run of the CDC function is a cold start: importing its handler loads only what
each run needs (a library used by one helper, or by another path only, is not imported)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

IMPORT_HANDLER = """
import json, sys
sys.path.insert(0, sys.argv[1])
import handler
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def _top_level_modules_after_importing(folder: Path) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_HANDLER, str(folder)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={"PATH": "", "AWS_DEFAULT_REGION": "us-east-1"},
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_importing_the_cdc_handler_does_not_import_pandas_or_pyspark() -> None:
    # Given a fresh interpreter; when the CDC handler is imported (as Lambda does on a cold start)
    loaded = _top_level_modules_after_importing(ROOT / "lambdas" / "cdc")
    # Then the engine came with it, and neither pandas nor pyspark did
    assert {"snapcdc", "pyarrow", "numpy"} <= loaded
    assert "pandas" not in loaded
    assert "pyspark" not in loaded
