"""Build the functions' dependency layers without Docker: kaggle (extract) and iceberg (CDC).

pip downloads manylinux arm64 wheels for CPython 3.12 (the function's runtime and architecture)
into ``layers/kaggle/build/<hash>/python``, where ``<hash>`` is a digest of the requirements file
and of these build settings: the layer is built once per change of its inputs, and the stack
picks the directory of the current hash (``stacks/kaggle_layer.py``). boto3/botocore are removed
after the install: the Lambda runtime ships them and they would only add ~25 MB.

The iceberg layer (``stacks/iceberg_layer.py``) is built the same way into ``layers/iceberg/build/<hash>/``
with ``--no-deps`` (its requirements list every package it needs), then trimmed: the unused parts
removed and the native libraries stripped with ``llvm-strip``.

Usage: ``python layers/build_layers.py`` (``make layers``); ``--print-dir`` prints the target.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stacks import iceberg_layer
from stacks.kaggle_layer import (
    PIP_PLATFORM_ARGS,
    PROVIDED_BY_RUNTIME,
    REQUIREMENTS,
    build_dir,
    directory_size,
)

READY_MARKER = ".complete"


def build(force: bool = False) -> Path:
    target = build_dir()
    if (target / READY_MARKER).exists() and not force:
        print(f"kaggle layer up to date: {target}")
        return target
    if target.exists():
        shutil.rmtree(target)
    site = target / "python"
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        *PIP_PLATFORM_ARGS,
        "--target",
        str(site),
        "-r",
        str(REQUIREMENTS),
    ]
    print("+", " ".join(command))
    subprocess.run(command, check=True)
    _strip(site)
    (target / READY_MARKER).write_text("built by layers/build_layers.py\n", encoding="utf-8")
    print(f"kaggle layer built: {target} ({directory_size(target) / 1e6:.1f} MB unzipped)")
    return target


def build_iceberg(force: bool = False) -> Path:
    """The CDC function's pyiceberg layer: exact packages, no resolution, trimmed to fit 250 MiB."""
    target = iceberg_layer.build_dir()
    if (target / READY_MARKER).exists() and not force:
        print(f"iceberg layer up to date: {target}")
        return target
    if shutil.which(iceberg_layer.STRIP[0]) is None:
        raise SystemExit(f"{iceberg_layer.STRIP[0]} is needed to build the iceberg layer (apt-get install llvm)")
    if target.exists():
        shutil.rmtree(target)
    site = target / "python"
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"]
    command += [*PIP_PLATFORM_ARGS, "--target", str(site), "-r", str(iceberg_layer.REQUIREMENTS)]
    print("+", " ".join(command))
    subprocess.run(command, check=True)
    for pattern in iceberg_layer.REMOVED:
        for path in list(site.glob(pattern)):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for library in site.rglob("*.so"):
        subprocess.run([*iceberg_layer.STRIP, str(library)], check=True)
    _strip(site)
    (target / READY_MARKER).write_text("built by layers/build_layers.py\n", encoding="utf-8")
    print(f"iceberg layer built: {target} ({directory_size(target) / 1e6:.1f} MB unzipped)")
    return target


def _strip(site: Path) -> None:
    """Drop what the runtime already has, and bytecode caches (the runtime writes none to /opt)."""
    for entry in list(site.iterdir()):
        name = entry.name.lower()
        if any(name == pkg or name.startswith(f"{pkg}-") for pkg in PROVIDED_BY_RUNTIME):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    for cache in list(site.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)
    bin_dir = site / "bin"
    if bin_dir.exists():  # console scripts with a build-machine shebang: useless in Lambda
        shutil.rmtree(bin_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--print-dir", action="store_true", help="print the build directory and exit")
    args = parser.parse_args(argv)
    if args.print_dir:
        print(build_dir())
        print(iceberg_layer.build_dir())
        return 0
    build(force=args.force)
    build_iceberg(force=args.force)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
