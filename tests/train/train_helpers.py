"""Helpers for the training tests: tiny phantom datasets and config overrides."""

from __future__ import annotations

from pathlib import Path


def make_tiny(root: Path, n: int, task: str = "multilabel", contrast: float = 1.0, finding_scale: float = 1.0,
              size: int = 64) -> dict[str, str]:
    """Phantom + index + patient-level split + cache; returns the --set overrides that point at them."""
    from cxrlab.data.cache import build_cache
    from cxrlab.data.phantom import make_phantom_index
    from cxrlab.data.splits import make_split

    index = make_phantom_index(root, n=n, task=task, size=size, seed=0, contrast=contrast,
                               finding_scale=finding_scale, workers=1)
    make_split(index, root / "split.csv", val=0.25, test=0.15, seed=0)
    build_cache(index, root / "cache", size=size, workers=1)
    return {"data.index": str(root / "index"), "data.split": str(root / "split.csv"), "data.cache": str(root / "cache")}


def overrides(data: dict[str, str], **extra) -> list[str]:
    """``key=value`` strings for load_config: the data paths, a tiny fast CPU setup, then ``extra``."""
    base = {**data, "data.image_size": 64, "model.name": "cnn_gap", "loss.name": "bce", "train.epochs": 2,
            "train.batch_size": 16, "train.lr": 3e-3, "train.device": "cpu", "augment.policy": "none",
            "train.deterministic": "true"}
    if "multiclass" in data.get("task", ""):
        base["loss.name"] = "ce"
    base.update({k.replace("__", "."): v for k, v in extra.items()})
    return [f"{k}={v}" for k, v in base.items() if k != "task"]
