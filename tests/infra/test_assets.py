"""No deployable asset holds the dev harness: every file of every asset the template deploys (the
functions' code, the layers, the Glue job's ``--extra-py-files`` zip and script) is listed and checked."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from .synthesis import Synth

# The dev harness's names: its package, its distribution's folder and its modules.
HARNESS_NAMES = {"snapcdc_dev", "devkit", "fake_kaggle", "embedded_aws", "demo"}


def harness_files(names: list[str]) -> list[str]:
    """The files whose path has a folder or module named like the dev harness."""
    found = []
    for name in names:
        path = PurePosixPath(name)
        parts = {*path.parts[:-1], path.name, path.stem.removesuffix(".cpython-311")}
        if parts & HARNESS_NAMES or any(n in name for n in ("snapcdc_dev", "fake_kaggle", "embedded_aws")):
            found.append(name)
    return found


def _asset_manifest(synth: Synth) -> dict[str, Any]:
    manifest = synth.outdir / f"{synth.stack.artifact_id}.assets.json"
    files: dict[str, Any] = json.loads(manifest.read_text(encoding="utf-8"))["files"]
    return files


def asset_files(root: Path) -> list[str]:
    """The files an asset ships: a staged folder's files, a zip's members, or the file itself."""
    if root.is_dir():
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    if zipfile.is_zipfile(root):
        with zipfile.ZipFile(root) as archive:
            return sorted(n for n in archive.namelist() if not n.endswith("/"))
    return [root.name]


def deployed_assets(synth: Synth) -> dict[str, Path]:
    """The assets the template names, by object key (anywhere in it), and where CDK staged each."""
    text = json.dumps(synth.template)
    found = {}
    for entry in _asset_manifest(synth).values():
        for destination in entry["destinations"].values():
            if destination["objectKey"] in text:
                found[destination["objectKey"]] = synth.outdir / entry["source"]["path"]
    return found


def test_the_check_finds_harness_files() -> None:
    # Given a listing with the harness's package, a demo module and ordinary modules
    names = ["python/snapcdc/cli.py", "python/snapcdc_dev/fake_kaggle.py", "snapcdc/local/demo.py", "index.py"]
    # When it is checked
    found = harness_files(names)
    # Then the harness's files are named, the others are not
    assert found == ["python/snapcdc_dev/fake_kaggle.py", "snapcdc/local/demo.py"]


def test_no_deployable_asset_holds_the_dev_harness(synth: Synth) -> None:
    # Given every asset the template deploys: the functions' and layers' code, the Glue job's package
    assets = deployed_assets(synth)
    staged = {location.name for location in assets.values()}
    code = [*synth.resources("AWS::Lambda::Function").values(), *synth.resources("AWS::Lambda::LayerVersion").values()]
    assert {r["Metadata"]["aws:asset:path"] for r in code if "Metadata" in r} <= staged
    job = next(iter(synth.resources("AWS::Glue::Job").values()))
    extra_py_files = json.dumps(job["Properties"]["DefaultArguments"]["--extra-py-files"])
    glue_package = [key for key in assets if key in extra_py_files]
    assert len(glue_package) == 1, "the Glue job's --extra-py-files asset is not among the listed assets"
    # When each asset's files are listed
    listings = {key: asset_files(location) for key, location in assets.items()}
    # Then the core package ships in the Glue zip (the listing is real) and no asset holds a harness file
    assert "snapcdc/lake/layout.py" in listings[glue_package[0]]
    assert {key: harness_files(names) for key, names in listings.items() if harness_files(names)} == {}
