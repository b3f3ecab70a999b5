"""Where the extract function's kaggle dependency layer is built, shared by the build and the stack.

Pure (no CDK import), so ``layers/build_layers.py`` can use it without synthesizing anything.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
KAGGLE_LAYER_DIR = REPO_ROOT / "layers" / "kaggle"
REQUIREMENTS = KAGGLE_LAYER_DIR / "requirements.txt"
BUILD_ROOT = KAGGLE_LAYER_DIR / "build"
# Synth and tests use this tiny stand-in so they never run pip (context build_layers=false).
PLACEHOLDER_DIR = KAGGLE_LAYER_DIR / "placeholder"
PLACEHOLDER_DESCRIPTION = "PLACEHOLDER kaggle layer (synthesized with build_layers=false): not deployable"

# The function runs CPython 3.12 on arm64 (Graviton): wheels for exactly that, never sdists.
PIP_PLATFORM_ARGS = (
    "--platform",
    "manylinux2014_aarch64",
    "--implementation",
    "cp",
    "--python-version",
    "3.12",
    "--only-binary=:all:",
)
# The python3.12 Lambda runtime ships the AWS SDK; a second copy in the layer only costs space.
PROVIDED_BY_RUNTIME = ("boto3", "botocore", "s3transfer", "jmespath")


def requirements_hash() -> str:
    """Digest of the requirements and the pip platform flags: a change of either rebuilds."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes())
    digest.update("\0".join((*PIP_PLATFORM_ARGS, *PROVIDED_BY_RUNTIME)).encode())
    return digest.hexdigest()[:16]


def build_dir() -> Path:
    return BUILD_ROOT / requirements_hash()


def is_built(path: Path | None = None) -> bool:
    return ((path or build_dir()) / ".complete").exists()


def directory_size(path: Path) -> int:
    """Bytes of every regular file under ``path`` (what Lambda counts as unzipped size)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
