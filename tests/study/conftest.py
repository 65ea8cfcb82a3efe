"""Tiny phantom data (64 px) for the study tests; study files come from study_helpers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "train"))
sys.path.insert(0, str(Path(__file__).parents[1] / "evaluate"))  # report_lint: what every report must satisfy
from train_helpers import make_tiny  # noqa: E402


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict[str, str]:
    """96 multi-label phantom images: index, split, cache."""
    paths = make_tiny(tmp_path_factory.mktemp("study_data"), 96)
    return {k.removeprefix("data."): v for k, v in paths.items()}
