"""Error messages that point to the docs point to something that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cxrlab.config import load_config
from cxrlab.errors import CxrlabError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not (ROOT / "docs").is_dir(), reason="docs/ is not here (installed package)")
def test_missing_recipe_names_an_existing_recipes_section():
    with pytest.raises(CxrlabError) as err:
        load_config("configs/no_such_recipe.yaml")
    message = str(err.value)
    assert "\n" not in message and "configs/no_such_recipe.yaml does not exist" in message
    page, section = re.search(r"listed in (docs/\w+\.md), section '(\w+)'", message).groups()
    headings = re.findall(r"^## (.+)$", (ROOT / page).read_text(), flags=re.M)
    assert any(h.startswith(section) for h in headings), headings
