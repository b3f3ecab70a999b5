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


def test_a_cluster_run_changes_only_settings_the_environment_names() -> None:
    # Given the environment a driver on a standalone cluster gets
    environment = {
        session.MASTER: "spark://127.0.0.1:7077",
        session.DRIVER_MEMORY: "1g",
        session.EXECUTOR_MEMORY: "2g",
        session.CORES: "2",
        session.EVENT_LOG: "/tmp/events",
    }
    # When the session's settings are read from it over the caller's defaults
    settings = session.SessionSettings.from_environment(environment, cores=8, driver_memory="4g")
    conf = settings.conf()
    # Then the cluster's values win, and the event log is on
    assert conf["spark.master"] == "spark://127.0.0.1:7077"
    assert (conf["spark.driver.memory"], conf["spark.executor.memory"]) == ("1g", "2g")
    assert (conf["spark.sql.shuffle.partitions"], conf["spark.default.parallelism"]) == ("4", "2")
    assert conf["spark.eventLog.enabled"] == "true" and conf["spark.eventLog.dir"] == "file:///tmp/events"
    assert conf["spark.ui.enabled"] == "false"


def test_without_the_environment_a_local_session_keeps_its_defaults() -> None:
    settings = session.SessionSettings.from_environment({}, cores=3)
    conf = settings.conf()
    assert conf["spark.master"] == "local[3]" and conf["spark.driver.memory"] == "4g"
    assert "spark.executor.memory" not in conf and "spark.eventLog.enabled" not in conf
