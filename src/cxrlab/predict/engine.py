"""Batched inference: any engine mapping a float32 batch (B, C, H, W) to logits (B, K) over a dataset.

The engine is an ``nn.Module`` (moved to ``device``, eval mode, no gradients) or any other callable (an ONNX
Runtime session wrapped to take and return tensors plugs in here). Probabilities come from
``cxrlab.tasks.probabilities`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cxrlab.predict.info import RunInfo
from cxrlab.predictions import Predictions
from cxrlab.tasks import probabilities

Engine = nn.Module | Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Outputs:
    """Raw outputs over a dataset, row-aligned: ids, logits (N, K) float32, targets (as the dataset yields
    them; None when it has no labels)."""

    image_ids: list[str]
    logits: np.ndarray
    targets: np.ndarray | None


@torch.no_grad()
def dataset_logits(engine: Engine, dataset: Dataset, *, batch_size: int = 64, device: str | torch.device = "cpu",
                   num_workers: int = 0, num_classes: int | None = None) -> Outputs:
    """Logits of ``engine`` on every item ``(x, target, image_id)`` of ``dataset``, in order."""
    if isinstance(engine, nn.Module):
        engine = engine.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    logits, targets, ids = [], [], []
    for images, target, batch_ids in loader:
        logits.append(torch.as_tensor(engine(images.to(device))).float().cpu().numpy())
        targets.append(np.asarray(target))
        ids += [str(i) for i in batch_ids]
    k = num_classes or 0
    all_logits = np.concatenate(logits) if logits else np.zeros((0, k), dtype=np.float32)
    all_targets = np.concatenate(targets) if targets else None
    if all_targets is not None and all_targets.ndim == 1 and (all_targets == -1).all():
        all_targets = None  # a dataset without labels
    return Outputs(ids, all_logits, all_targets)


@torch.no_grad()
def predict_dataset(engine: Engine, info: RunInfo, dataset: Dataset, *, batch_size: int = 64,
                    device: str | torch.device = "cpu", num_workers: int = 0) -> Predictions:
    """Probabilities of ``engine`` on ``dataset`` (sigmoid for multi-label, softmax for multi-class)."""
    if isinstance(engine, nn.Module):
        engine = engine.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    probs, ids = [], []
    for images, _, batch_ids in loader:
        # probabilities on the engine's own device, as training's validation computes them
        probs.append(probabilities(torch.as_tensor(engine(images.to(device))).float(), info.task).cpu().numpy())
        ids += [str(i) for i in batch_ids]
    probs_all = np.concatenate(probs) if probs else np.zeros((0, info.num_classes))
    meta = {"task": info.task, "classes": list(info.classes), "model": info.model_name,
            "checkpoint_sha256": info.weights_sha256}
    return Predictions(ids, probs_all, list(info.classes), meta)
