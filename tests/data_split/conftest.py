"""Fixtures for the split/audit/cache tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from split_helpers import make_index

from cxrlab.data.index import Index


@pytest.fixture
def small_index(tmp_path: Path) -> Index:
    return make_index(tmp_path)


@pytest.fixture
def image_index(tmp_path: Path) -> Index:
    """12 patients x 2 images, each a distinct 12x15 PNG."""
    return make_index(tmp_path, n_patients=12, per_patient=2, size=12)
