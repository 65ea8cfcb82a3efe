"""Tiny phantom data (64 px) and study files for the study tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parents[1] / "train"))
from train_helpers import make_tiny  # noqa: E402

BASE_SET = {"data.image_size": 64, "train.batch_size": 16, "train.device": "cpu", "augment.policy": "none",
            "train.deterministic": True}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict[str, str]:
    """96 multi-label phantom images: index, split, cache."""
    paths = make_tiny(tmp_path_factory.mktemp("study_data"), 96)
    return {k.removeprefix("data."): v for k, v in paths.items()}


def write_study(path: Path, data: dict[str, str] | None = None, **fields) -> Path:
    """A study file: smoke recipe at 64 px on ``data`` plus ``fields`` (arms, seeds, sweep, ...)."""
    study = {"name": "tiny", "base": {"recipe": "configs/smoke.yaml", "set": dict(BASE_SET)},
             "budget": {"epochs": 1}, "evaluate": {"bootstrap": 50}}
    if data:
        study["data"] = dict(data)
    study.update(fields)
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path
