"""A Python environment made of what an AWS Glue 5.0 job has and nothing else, for running glue/cdc_job.py.

* the modules Glue 5.0 provides, at their versions (glue/glue5-provided-modules.txt, AWS's list), installed
  without dependencies, as Glue's image has them;
* then ``--additional-python-modules`` as the synthesized template declares it, installed the way Glue
  installs it (pip, dependencies included, over the provided ones);
* Spark's own Python (pyspark, py4j) from the pinned pyspark 3.5.4, as Glue's Spark installation gives it;
* the ``--extra-py-files`` zip, built from the synthesized asset, on the path (spark-submit ``--py-files``).

The environment is a virtualenv under ``.venv-glue5/<key>/`` (the key: a hash of the two module lists),
built once per machine from the local pip cache and the package registry; a build takes a few minutes,
a reuse nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PROVIDED_MODULES = REPO_ROOT / "glue" / "glue5-provided-modules.txt"
ENVIRONMENTS = REPO_ROOT / ".venv-glue5"


class GlueEnvironmentError(AssertionError):
    """The environment could not be built; the message has pip's output."""


def provided_modules() -> list[str]:
    lines = PROVIDED_MODULES.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@dataclass(frozen=True)
class GlueEnvironment:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def versions(self, distributions: list[str]) -> dict[str, str]:
        """The installed version of each distribution (as the environment's own Python sees it)."""
        script = (
            f"import json, importlib.metadata as m; print(json.dumps({{d: m.version(d) for d in {distributions!r}}}))"
        )
        return dict(json.loads(self._python(script)))

    def importable(self, modules: list[str]) -> list[str]:
        """Those of ``modules`` the environment's Python can import."""
        script = f"import json, importlib.util as u; print(json.dumps([m for m in {modules!r} if u.find_spec(m)]))"
        return list(json.loads(self._python(script)))

    def _python(self, script: str) -> str:
        done = subprocess.run([str(self.python), "-I", "-c", script], capture_output=True, text=True, check=True)
        return done.stdout


def glue_environment(additional_python_modules: str) -> GlueEnvironment:
    """The environment for ``additional_python_modules`` (the template's comma-separated list), built if new."""
    additional = [m.strip() for m in additional_python_modules.split(",") if m.strip()]
    key = hashlib.sha256("\n".join([*provided_modules(), "--", *additional]).encode()).hexdigest()[:16]
    root = ENVIRONMENTS / key
    if (root / ".complete").is_file():
        return GlueEnvironment(root)
    ENVIRONMENTS.mkdir(exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=ENVIRONMENTS))
    try:
        _run([sys.executable, "-m", "venv", str(building)])
        python = str(building / "bin" / "python")
        _run([python, "-m", "pip", "install", "--quiet", "--no-compile", "--no-deps", "-r", str(PROVIDED_MODULES)])
        _run([python, "-m", "pip", "install", "--quiet", "--no-compile", *additional])
        _link_spark_python(building, final=root)
        (building / ".complete").write_text(additional_python_modules, encoding="utf-8")
        if root.exists():
            shutil.rmtree(root)
        building.rename(root)  # only `python -m ...` is used: the venv works from its new folder
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return GlueEnvironment(root)


def _run(command: list[str]) -> None:
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=1800)
    if done.returncode != 0:
        raise GlueEnvironmentError(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def _link_spark_python(venv: Path, final: Path) -> None:
    """pyspark and py4j of the pinned pyspark (Glue's Spark), and only them, through one .pth folder
    (written with the folder the environment will have, ``final``)."""
    import py4j
    import pyspark

    spark_python = venv / "glue-spark-python"
    spark_python.mkdir()
    for module in (pyspark, py4j):
        (spark_python / module.__name__).symlink_to(Path(str(module.__file__)).parent)
    pth = site_packages(venv) / "glue-spark-python.pth"
    pth.write_text(str(final / spark_python.name) + "\n", encoding="utf-8")


def site_packages(venv: Path) -> Path:
    (found,) = (venv / "lib").glob("python3*/site-packages")
    return found


def zip_package(asset_dir: Path, target: Path) -> Path:
    """The ``--extra-py-files`` zip as CDK uploads the folder asset: its content at the zip's root."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(asset_dir.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(asset_dir).as_posix())
    return target


def asset_hash(s3_url: str) -> str:
    """The asset hash in a synthesized ``s3://.../<hash>.zip`` or ``.py`` URL."""
    match = re.search(r"([0-9a-f]{64})\.(zip|py)$", s3_url)
    if match is None:
        raise ValueError(f"no asset hash in {s3_url!r}")
    return match.group(1)
