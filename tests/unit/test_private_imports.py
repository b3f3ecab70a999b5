"""One door into each package: no module outside ``snapcdc/engine/`` imports an underscore-private name
from another package (the engine's rules that Spark assembles are named publicly in
:mod:`snapcdc.engine.parts`). The AST of every module of the package and of the dev harness is read."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [ROOT / "layers" / "core" / "python" / "snapcdc", ROOT / "devkit" / "snapcdc_dev"]
ENGINE = PACKAGES[0] / "engine"


def _package_of(module: str) -> str:
    """``snapcdc.engine.csv_input`` -> ``snapcdc.engine``; a top-level module is its own package."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else module


def _module_name(path: Path) -> str:
    for base in PACKAGES:
        if path.is_relative_to(base):
            relative = path.relative_to(base.parent).with_suffix("")
            return ".".join(p for p in relative.parts if p != "__init__")
    raise AssertionError(path)


def _private_imports(path: Path, here: str | None = None) -> list[str]:
    """``module.name`` for each underscore-private name imported from another package (``here``: the
    module's name, default from its path)."""
    here = here or _module_name(path)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if _package_of(node.module) == _package_of(here) or not node.module.startswith("snapcdc"):
                continue
            private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
            private += [node.module] if any(p.startswith("_") for p in node.module.split(".")) else []
            found += [f"{here}: from {node.module} import {name}" for name in private]
    return found


def test_no_module_outside_the_engine_imports_a_private_name_of_another_package() -> None:
    # Given every module of the package and the dev harness, but the engine's own
    modules = [p for base in PACKAGES for p in base.rglob("*.py") if not p.is_relative_to(ENGINE)]
    assert len(modules) > 40
    # When their imports are read
    found = [line for path in sorted(modules) for line in _private_imports(path)]
    # Then none names an underscore-private name of another package
    assert found == []


def test_the_check_finds_a_private_import(tmp_path: Path) -> None:
    # Given a module of the Spark package importing one of the engine's private names
    module = tmp_path / "probe.py"
    source = "from snapcdc.engine.csv_input import _ends_cleanly\nfrom snapcdc.spark.reader import _parse\n"
    module.write_text(source, encoding="utf-8")
    # When its imports are read
    found = _private_imports(module, "snapcdc.spark._probe_for_test")
    # Then the engine's private name is found, the package's own is not
    assert found == ["snapcdc.spark._probe_for_test: from snapcdc.engine.csv_input import _ends_cleanly"]
