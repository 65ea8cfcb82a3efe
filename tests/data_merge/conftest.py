"""Three phantom sources (NIH, CheXpert, PadChest layouts), indexed once per test session, and their merge."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrlab.data.merge import merge_indexes
from cxrlab.data.phantom_sources import index_phantom_sources


@pytest.fixture(scope="session")
def sources(tmp_path_factory) -> dict[str, Path]:
    """name -> index folder of the three phantom sources (30 images each, 32 px)."""
    return index_phantom_sources(tmp_path_factory.mktemp("sources"), n=30, size=32)


@pytest.fixture(scope="session")
def merged(sources, tmp_path_factory):
    """(merged index, report) of the three sources, default names."""
    return merge_indexes([(None, p) for p in sources.values()], tmp_path_factory.mktemp("merged") / "m")
