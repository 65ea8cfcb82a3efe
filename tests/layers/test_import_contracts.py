"""The import-layer contracts in .importlinter hold: cxrlab imports downward only and has no import cycles.

CI runs the same check as ``lint-imports`` from the repository root.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _lint_imports() -> str | None:
    here = Path(sys.executable).parent / "lint-imports"
    return str(here) if here.exists() else shutil.which("lint-imports")


def test_import_contracts_hold():
    tool = _lint_imports()
    if tool is None:
        pytest.skip("import-linter is not installed (pip install import-linter)")
    done = subprocess.run([tool, "--config", str(REPO / ".importlinter")], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_contract_names_every_top_level_module():
    """A new top-level module or package must be placed in a layer (else it could import anything)."""
    import configparser
    import re

    parser = configparser.ConfigParser()
    parser.read(REPO / ".importlinter")
    layered = set(re.findall(r"cxrlab\.(\w+)", parser["importlinter:contract:layers"]["layers"]))
    src = REPO / "src" / "cxrlab"
    names = {p.stem for p in src.glob("*.py") if p.stem not in ("__init__", "__main__")}
    names |= {p.name for p in src.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert not sorted(names - layered), f"add to a layer in .importlinter: {sorted(names - layered)}"


def test_stats_core_contract_names_every_other_evaluate_module():
    """``evaluate.stats`` may import no other evaluate module: a new one must be added to that contract."""
    import configparser

    parser = configparser.ConfigParser()
    parser.read(REPO / ".importlinter")
    forbidden = set(parser["importlinter:contract:stats-core"]["forbidden_modules"].split())
    evaluate = REPO / "src" / "cxrlab" / "evaluate"
    names = {f"cxrlab.evaluate.{p.stem}" for p in evaluate.glob("*.py") if p.stem != "__init__"}
    assert not sorted(names - forbidden), f"add to the stats-core contract: {sorted(names - forbidden)}"
