"""Tiny phantom datasets shared by the training tests (made once per session, 64 px)."""

from __future__ import annotations

import pytest
from train_helpers import make_tiny


@pytest.fixture(scope="session")
def tiny_ml(tmp_path_factory) -> dict[str, str]:
    """96 multi-label phantom images at 64 px."""
    return make_tiny(tmp_path_factory.mktemp("ml"), 96)


@pytest.fixture(scope="session")
def tiny_mc(tmp_path_factory) -> dict[str, str]:
    """96 multi-class phantom images at 64 px."""
    return {**make_tiny(tmp_path_factory.mktemp("mc"), 96, task="multiclass"), "task": "multiclass"}
