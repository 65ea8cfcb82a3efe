"""Every module imported under src/cxrlab is the standard library, cxrlab itself, or declared in pyproject.toml.

The imports are parsed from the source (no hand-written list); a module is matched to its distribution through
the installed packages' metadata, or by name when the optional package is not installed here.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "cxrlab"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> dict[str, str]:
    """Normalised distribution name -> where it is declared (dependencies or an extra)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = {}
    groups = {"dependencies": project["dependencies"], **project.get("optional-dependencies", {})}
    for group, requirements in groups.items():
        for requirement in requirements:
            found[_normalise(re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0])] = group
    return found


def _imported_modules() -> dict[str, str]:
    """Top-level module -> first file importing it (absolute imports only)."""
    modules: dict[str, str] = {}
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                modules.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return modules


def test_every_imported_package_is_declared():
    declared = _declared()
    distributions = importlib.metadata.packages_distributions()
    undeclared = []
    for module, where in _imported_modules().items():
        if module in sys.stdlib_module_names or module in ("cxrlab", "__future__"):
            continue
        candidates = {_normalise(d) for d in distributions.get(module, [])} or {_normalise(module)}
        if not candidates & declared.keys():
            undeclared.append(f"{module} (imported in {where}; distributions: {sorted(candidates)})")
    assert not undeclared, "imported but not declared in pyproject.toml: " + "; ".join(undeclared)


def test_the_parser_sees_known_imports():
    modules = _imported_modules()
    assert {"torch", "numpy", "pandas", "cv2", "timm"} <= modules.keys()
    assert _normalise("opencv-python-headless") in _declared()
