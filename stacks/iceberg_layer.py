"""Where the CDC function's iceberg layer (pyiceberg) is built, shared by the build and the stack.

Pure (no CDK import). Built like the kaggle layer (``stacks/kaggle_layer.py``), but without pip's
dependency resolution (the function's other layers have pyarrow and pydantic), its native
libraries stripped of debug symbols (``llvm-strip``) and the parts of pyiceberg the CDC function
never imports removed: the CDC function's code and layers must stay under Lambda's 250 MiB.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from stacks.kaggle_layer import PIP_PLATFORM_ARGS, REPO_ROOT

ICEBERG_LAYER_DIR = REPO_ROOT / "layers" / "iceberg"
REQUIREMENTS = ICEBERG_LAYER_DIR / "requirements.txt"
BUILD_ROOT = ICEBERG_LAYER_DIR / "build"
PLACEHOLDER_DIR = ICEBERG_LAYER_DIR / "placeholder"
PLACEHOLDER_DESCRIPTION = "PLACEHOLDER iceberg layer (synthesized with build_layers=false): not deployable"
# Left out of the layer: pyiceberg's CLI and the catalogs and IO the function does not use, type
# stubs, and zstandard's CFFI backend (its C backend is the one imported).
REMOVED = (
    "pyiceberg/cli",
    "pyiceberg/catalog/rest",
    "pyiceberg/catalog/hive.py",
    "pyiceberg/catalog/sql.py",
    "pyiceberg/catalog/bigquery_metastore.py",
    "pyiceberg/catalog/dynamodb.py",
    "pyiceberg/io/fsspec.py",
    "hive_metastore",  # the Hive catalog's Thrift client, vendored by the pyiceberg wheel
    "fb303",
    "zstandard/_cffi.*",
    "zstandard/backend_cffi.py",
    "**/*.pyi",
)
STRIP = ("llvm-strip", "--strip-unneeded")


def requirements_hash() -> str:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes())
    digest.update("\0".join((*PIP_PLATFORM_ARGS, *REMOVED, *STRIP)).encode())
    return digest.hexdigest()[:16]


def build_dir() -> Path:
    return BUILD_ROOT / requirements_hash()


def is_built(path: Path | None = None) -> bool:
    return ((path or build_dir()) / ".complete").exists()
