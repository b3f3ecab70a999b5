"""Local Spark needs Java 17: without it the Spark tier fails and says what to install (never a skip)."""

from __future__ import annotations

import pytest
from snapcdc.spark import session


def test_a_machine_without_java_fails_naming_java_17(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session.shutil, "which", lambda name: None)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(session.JavaMissingError, match="Java 17"):
        session.local_session()


def test_importing_the_spark_package_does_not_import_pyspark() -> None:
    import subprocess
    import sys

    code = "import snapcdc.spark.engine, snapcdc.spark.job, sys; print('pyspark' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
