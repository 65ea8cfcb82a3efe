"""Shared fixtures. Tests use tiny synthetic data; those on ../shared/data skip cleanly when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("CXRLAB_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (or $CXRLAB_SHARED_DATA); skips the test when absent."""
    root = shared_data_dir()
    if not (root / "nih-sample").is_dir():
        pytest.skip(f"shared data not found at {root}")
    return root


@pytest.fixture(autouse=True)
def _few_threads():
    """Two cores are shared by everything here; one intra-op thread keeps tests from fighting."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
