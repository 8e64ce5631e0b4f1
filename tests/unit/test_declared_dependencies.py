"""Every library the package imports is one pyproject.toml declares: `peregrine demo` imported
psutil, then only a test extra, so an install without the extras failed at its first run; and
code that leans on a transitive dependency (faust's aiohttp and mode) must say which versions."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OWN = {"pipeline", "agents"}


def imported_libraries() -> dict[str, str]:
    """Top-level module -> the first file importing it, for every non-stdlib, non-own import."""
    found: dict[str, str] = {}
    for path in sorted([*ROOT.glob("pipeline/**/*.py"), *ROOT.glob("agents/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in OWN:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_library_is_a_declared_dependency():
    declared = {normalized(re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0])
                for spec in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    distributions = packages_distributions()
    imported = imported_libraries()
    assert {"faust", "orjson", "lark", "psutil"} <= set(imported)  # the scan sees the package's imports
    undeclared = {module: where for module, where in imported.items()
                  if not {normalized(d) for d in distributions.get(module, [])} & declared}
    assert undeclared == {}, f"imported but not in pyproject.toml's dependencies: {undeclared}"
