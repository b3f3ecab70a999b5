"""Each function's code plus its layers must stay under Lambda's 250 MiB unzipped limit."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.kaggle_layer import build_dir, directory_size, is_built
from stacks.packaging import (
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
