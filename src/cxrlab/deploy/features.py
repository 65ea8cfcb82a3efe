"""Penultimate features next to the logits: what the out-of-distribution gate measures distances on.

``WithFeatures(model)`` returns ``(logits, features)`` from one forward pass: ``features`` is the pooled
representation the classifier head reads (timm's ``forward_head(f, pre_logits=True)`` where the model has it,
else the feature map averaged over its spatial or token axes). It is what gets exported to ONNX, so the ONNX
engine can gate images exactly as the PyTorch one does.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


def _has_pre_logits(model: nn.Module) -> bool:
    try:
        return "pre_logits" in inspect.signature(model.forward_head).parameters
    except (AttributeError, TypeError, ValueError):
        return False


class WithFeatures(nn.Module):
    """``model`` returning ``(logits (B, K), features (B, D))``; logits equal ``model(x)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.pre_logits = _has_pre_logits(model)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.model.forward_features(x)
        logits = self.model.forward_head(f)
        if self.pre_logits:
            pooled = self.model.forward_head(f, pre_logits=True)
        elif f.ndim == 4:
            pooled = f.mean(dim=(2, 3))  # (B, C, h, w) -> (B, C)
        elif f.ndim == 3:
            pooled = f.mean(dim=1)  # tokens (B, N, D) -> (B, D)
        else:
            pooled = f.flatten(1)
        return logits, pooled.flatten(1)


@torch.no_grad()
def collect(model: nn.Module, dataset: Dataset, max_images: int = 2000, batch_size: int = 32
            ) -> dict[str, np.ndarray | list[str]]:
    """Logits, features, targets, ids and orientation ``thumbnails`` of the first ``max_images`` items of
    ``dataset`` (in order)."""
    from cxrlab.deploy.orientation import thumbnails
    net = model if isinstance(model, WithFeatures) else WithFeatures(model)
    net.eval()
    n = min(len(dataset), max_images)
    subset = torch.utils.data.Subset(dataset, range(n))
    logits, feats, targets, ids, thumbs = [], [], [], [], []
    for images, target, batch_ids in DataLoader(subset, batch_size=batch_size, shuffle=False):
        z, f = net(images)
        logits.append(z.float().numpy())
        feats.append(f.float().numpy())
        targets.append(target.numpy())
        thumbs.append(thumbnails(images.float().numpy()))
        ids += [str(i) for i in batch_ids]
    return {"logits": np.concatenate(logits), "features": np.concatenate(feats),
            "targets": np.concatenate(targets), "ids": ids, "thumbnails": np.concatenate(thumbs)}


def laterality_thumbnails(info, max_images: int = 2000, batch_size: int = 64) -> np.ndarray | None:
    """Thumbnails of the run's training images for the laterality network (no forward pass), or None.

    Mirroring labels itself, so training images may teach laterality; test images never: any image of the
    run's test split (by id or content, ``cxrlab.guards``) is refused. When the images are unreachable or the
    check cannot be completed, the laterality network is trained on validation images alone (said in a warning
    and in the gate summary's ``laterality_images``)."""
    import warnings

    from cxrlab.deploy import runs
    from cxrlab.deploy.orientation import thumbnails
    from cxrlab.errors import CxrlabError

    try:
        dataset = runs.split_dataset(info, "train")
        rows = runs.not_test_rows(info, dataset, max_images, "the laterality check")
    except (CxrlabError, FileNotFoundError, KeyError) as exc:
        warnings.warn(f"OOD gate: the laterality check is trained on validation images only ({exc})", stacklevel=2)
        return None
    out = [thumbnails(torch.stack([dataset[i][0] for i in rows[s : s + batch_size]]).float().numpy())
           for s in range(0, len(rows), batch_size)]
    return np.concatenate(out) if out else None


def first_batch(dataset: Dataset, n: int = 8) -> torch.Tensor:
    """The first ``n`` preprocessed images of ``dataset`` as one (n, C, H, W) batch."""
    n = min(n, len(dataset))
    return torch.stack([dataset[i][0] for i in range(n)])
