"""Packaging (issue 13, part 1): every third-party import of the package is a declared runtime
dependency, the license file the metadata names is shipped, and ``slicewatch --version`` answers."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions, version
from pathlib import Path

ROOT = Path(__file__).parents[1]


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = set()
    for req in project["dependencies"]:
        names.add(re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def imported_top_levels() -> dict[str, set[str]]:
    """Top-level module names imported anywhere in ``monitor/`` (module level or in a function)."""
    out: dict[str, set[str]] = {}
    for path in (ROOT / "monitor").rglob("*.py"):
        if "migrations" in path.parts:  # alembic's env/versions (alembic is declared)
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for n in names:
                out.setdefault(n.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return out


def test_every_third_party_import_is_a_declared_runtime_dependency() -> None:
    deps = declared()
    dists = packages_distributions()
    optional = {"matplotlib"}  # replay --plot only, imported inside the function; the `plot` extra
    missing = {}
    for module, where in sorted(imported_top_levels().items()):
        if module in sys.stdlib_module_names or module in ("monitor", "__future__") or module in optional:
            continue
        owners = {d.lower().replace("_", "-") for d in dists.get(module, [])}
        assert owners, f"{module} (imported in {sorted(where)}) is not installed"
        if not owners & deps:
            missing[module] = sorted(where)
    assert not missing, f"imported but not declared in [project].dependencies: {missing}"


def test_the_license_the_metadata_names_is_shipped() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert "LICENSE" in project["license-files"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "Copyright 2026 The Slicewatch authors" in text


def test_version_option_prints_the_installed_version() -> None:
    out = subprocess.run([sys.executable, "-m", "monitor.cli", "--version"], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"slicewatch {version('slicewatch')}"
