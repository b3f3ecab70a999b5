"""Each function's code plus its layers must stay under Lambda's 250 MiB unzipped limit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stacks.kaggle_layer import build_dir, directory_size, is_built
from stacks.packaging import (
    CDC_CODE_DIR,
    CLI_ONLY_PATHS,
    EXTRACT_CODE_DIR,
    KAGGLE_LAYER_BOUND_BYTES,
    LAMBDA_UNZIPPED_LIMIT_BYTES,
    MIB,
    PUBLISHED_LAYERS,
    published_layer_bytes,
)

from .synthesis import Synth


def _asset_bytes(synth: Synth, resource: dict[str, Any]) -> int:
    """Bytes of the asset folder CDK staged for a function or layer (what ships, after excludes)."""
    return directory_size(synth.outdir / resource["Metadata"]["aws:asset:path"])


def _layer_bytes(synth: Synth, layer: Any) -> tuple[str, int]:
    if isinstance(layer, str):
        return layer, published_layer_bytes(layer)
    resource = synth.resource(layer["Ref"])
    description = resource["Properties"]["Description"]
    if "kaggle" in description.lower():
        # Synth uses a placeholder: count the real build if there is one, else its recorded bound.
        size = directory_size(build_dir()) if is_built() else KAGGLE_LAYER_BOUND_BYTES
        return "kaggle layer", size
    return description, _asset_bytes(synth, resource)


@pytest.mark.parametrize("function", ["ExtractFunction", "CdcFunction"])
def test_function_code_and_layers_fit_in_250_mib_unzipped(synth: Synth, function: str) -> None:
    # Given the function's own code (as staged) and each of its layers
    resource = synth.resource(function)
    parts = {"code": _asset_bytes(synth, resource)}
    parts.update(_layer_bytes(synth, layer) for layer in resource["Properties"]["Layers"])
    # When adding them up
    total = sum(parts.values())
    # Then they stay under the limit
    summary = ", ".join(f"{name}: {size / MIB:.1f} MiB" for name, size in parts.items())
    assert total < LAMBDA_UNZIPPED_LIMIT_BYTES, f"{function} is {total / MIB:.1f} MiB ({summary})"


def test_every_public_layer_in_use_has_a_recorded_size_and_source(synth: Synth) -> None:
    # Given the layer ARNs the functions reference
    arns = {
        layer
        for function in synth.resources("AWS::Lambda::Function").values()
        for layer in function["Properties"]["Layers"]
        if isinstance(layer, str)
    }
    # Then each has a size in stacks/packaging.py, with where the number comes from
    assert arns
    for arn in arns:
        assert published_layer_bytes(arn) > 0
    assert all(len(layer.source) > 40 for layer in PUBLISHED_LAYERS)


def test_core_layer_ships_the_package_without_development_leftovers(synth: Synth) -> None:
    # Given the staged core layer
    (core,) = [
        r for r in synth.resources("AWS::Lambda::LayerVersion").values() if "core" in r["Properties"]["Description"]
    ]
    staged = synth.outdir / core["Metadata"]["aws:asset:path"]
    # Then it has the Lambda layer layout python/snapcdc/ and no egg-info or bytecode caches
    assert (staged / "python" / "snapcdc" / "__init__.py").is_file()
    assert (staged / "python" / "snapcdc" / "pipeline.json").is_file()
    assert not list(staged.rglob("*.egg-info"))
    assert not list(staged.rglob("__pycache__"))


def _staged_core(synth: Synth) -> Path:
    (core,) = [
        r for r in synth.resources("AWS::Lambda::LayerVersion").values() if "core" in r["Properties"]["Description"]
    ]
    return synth.outdir / core["Metadata"]["aws:asset:path"]


def test_core_layer_leaves_out_the_development_harness_and_the_cli(synth: Synth) -> None:
    # Given the staged core layer
    package = _staged_core(synth) / "python" / "snapcdc"
    # Then the fake Kaggle, embedded moto, the demo and the console script's modules are not in it
    assert not (package / "local").exists()
    assert not (package / "cli.py").exists()
    for path in CLI_ONLY_PATHS:
        assert not (_staged_core(synth) / path).exists(), path
    # And the rest of the package is
    assert (package / "engine" / "__init__.py").is_file()
    assert (package / "cdc" / "stage.py").is_file()


@pytest.mark.parametrize("code_dir", [EXTRACT_CODE_DIR, CDC_CODE_DIR], ids=["extract", "cdc"])
def test_each_handler_imports_with_the_staged_core_layer_alone(synth: Synth, code_dir: Path) -> None:
    # Given a fresh interpreter whose snapcdc package is the staged layer (not the source tree)
    layer = _staged_core(synth) / "python"
    script = (
        f"import sys; sys.path[:0] = [{str(code_dir)!r}, {str(layer)!r}]\n"
        "import handler, snapcdc\n"
        f"assert snapcdc.__file__.startswith({str(layer)!r}), snapcdc.__file__\n"
    )
    # When the handler module is imported
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    # Then nothing it needs was left out of the layer
    assert result.returncode == 0, result.stderr[-2000:]
