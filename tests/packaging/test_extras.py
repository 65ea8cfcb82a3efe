"""Each optional feature names the `pip install 'cxrlab[extra]'` that fixes a missing package, in one line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import tomllib

from cxrlab.errors import CxrlabError
from cxrlab.extras import EXTRAS, install_hint, require_extra

ROOT = Path(__file__).resolve().parents[2]


def test_extras_match_pyproject():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(EXTRAS) == set(declared) - {"dev"}


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_missing_extra_is_one_line_naming_the_install(extra, monkeypatch):
    for module in EXTRAS[extra][1]:
        monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
        with pytest.raises(CxrlabError) as err:
            require_extra(extra, module)
        message = str(err.value)
        assert "\n" not in message
        assert install_hint(extra) in message
        assert f"'{module}'" in message


def test_present_extra_returns_the_module():
    pytest.importorskip("fastapi")
    assert require_extra("serve", "fastapi").__name__ == "fastapi"


def test_unknown_extra_is_a_programming_error():
    with pytest.raises(ValueError, match="known"):
        require_extra("nonsense")

