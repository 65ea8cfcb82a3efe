"""One version source: the package's __version__ is what the installed distribution and the CLI report."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import tomllib

import cxrlab
from cxrlab.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_takes_the_version_from_the_package():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "cxrlab.__version__"}


def test_installed_metadata_and_cli_agree(capsys):
    assert importlib.metadata.version("cxrlab") == cxrlab.__version__
    try:
        main(["--version"])
    except SystemExit:
        pass
    assert capsys.readouterr().out.strip() == f"cxrlab {cxrlab.__version__}"


def test_changelog_names_the_current_version():
    assert f"## {cxrlab.__version__}" in (ROOT / "CHANGELOG.md").read_text()
