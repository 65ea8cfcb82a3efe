"""Study files for the study tests (a module of its own: test modules import it, conftest too)."""

from __future__ import annotations

from pathlib import Path

import yaml

BASE_SET = {"data.image_size": 64, "train.batch_size": 16, "train.device": "cpu", "augment.policy": "none",
            "train.deterministic": True}


def write_study(path: Path, data: dict[str, str] | None = None, **fields) -> Path:
    """A study file: smoke recipe at 64 px on ``data`` plus ``fields`` (arms, seeds, sweep, ...)."""
    study = {"name": "tiny", "base": {"recipe": "configs/smoke.yaml", "set": dict(BASE_SET)},
             "budget": {"epochs": 1}, "evaluate": {"bootstrap": 50}}
    if data:
        study["data"] = dict(data)
    study.update(fields)
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path
