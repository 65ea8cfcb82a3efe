"""The few facts about a trained run that deployment needs, read through the shared inference API.

``load(run, which)`` returns the model and a plain ``info`` dict (the keys of ``RunInfo.to_dict()`` when
``cxrlab.predict`` provides it, else the checkpoint JSON); ``split_dataset`` gives the run's validation or test
images preprocessed exactly as evaluation saw them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from cxrlab.errors import CxrlabError


def load(run: str | Path, which: str = "best") -> tuple[nn.Module, dict[str, Any]]:
    """``(model, info)`` for a run directory or checkpoint; the model is in eval mode on the CPU."""
    from cxrlab.train.checkpoint import load_run_model

    model, info = load_run_model(run, which=which, device="cpu")
    info = dict(info)
    info.setdefault("run_dir", str(Path(info["path"]).parent.parent))
    info.setdefault("checkpoint", info["path"])
    info["which"] = which
    return model, info


def contract_info(info: dict[str, Any]) -> dict[str, Any]:
    """The part of ``info`` an exported model carries: what it predicts and how its input is made."""
    keys = ("task", "classes", "model_name", "model_kwargs", "preprocess", "weights_sha256", "run_dir",
            "checkpoint", "which")
    return {k: info.get(k) for k in keys}


def eval_transform(info: dict[str, Any]):
    """The run's deterministic evaluation transform (uint8 (1, S, S) -> float32 (C, H, W))."""
    from cxrlab.infer import eval_transform as transform

    return transform(info)


def split_dataset(info: dict[str, Any], split: str = "val") -> Dataset:
    """The run's ``split`` images with the evaluation transform; raises ``CxrlabError`` when unavailable."""
    from cxrlab.infer import _split_dataset

    run_dir = Path(info["run_dir"])
    dataset, _ = _split_dataset(run_dir, info, split, eval_transform(info))
    if len(dataset) == 0:
        raise CxrlabError(f"{run_dir}: no readable {split} images")
    return dataset
