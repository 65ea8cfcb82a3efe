"""Uncertainty: MC-dropout and test-time augmentation predictions of a run.

Per-class uncertainty columns go into predictions files as ``std:<class>`` (spread of the sampled
probabilities), ``entropy:<class>`` (binary predictive entropy of the mean probability, nats) and
``mi:<class>`` (mutual information = predictive entropy - mean per-sample entropy: the model's own
(epistemic) part). What is computed from those files alone (risk-coverage curves, AURC, selective
prediction) lives in ``cxrlab.evaluate.selective``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from cxrlab.errors import CxrlabError
from cxrlab.predict import ImageSetDataset, images_from_run, iter_batches, load_run, open_run_cache
from cxrlab.predict.tta import tta_views, view
from cxrlab.predictions import Predictions, write_predictions
from cxrlab.tasks import probabilities

log = logging.getLogger(__name__)
EPS = 1e-7


# ----------------------------------------------------------------------------- sampling
def dropout_modules(model: nn.Module) -> list[nn.Module]:
    """Modules whose dropout is active in train mode: Dropout layers with p > 0, and timm-style models
    applying functional dropout from a ``drop_rate`` attribute (e.g. timm ResNet heads)."""
    found = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0]
    found += [m for m in model.modules() if not isinstance(m, nn.modules.dropout._DropoutNd)
              and isinstance(getattr(m, "drop_rate", None), (int, float)) and m.drop_rate > 0]
    return found


def enable_mc_dropout(model: nn.Module) -> int:
    """Eval mode everywhere (BatchNorm keeps running stats) except dropout; returns the number enabled."""
    model.eval()
    modules = dropout_modules(model)
    for m in modules:
        m.training = True  # this module only, not its children (a model with drop_rate stays eval below)
    return len(modules)


def _head_only(model: nn.Module, x: torch.Tensor) -> bool:
    """True when, with dropout on, ``forward_features`` is deterministic: all dropout sits in the head, so the
    backbone runs once and only the head is sampled (the common case: ResNet/EfficientNet/paper CNN heads)."""
    if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
        return False
    cached = model.__dict__.get("_mc_head_only")  # the probe costs half a forward: once per model
    if cached is None:
        probe = x[:1]
        cached = bool(torch.equal(model.forward_features(probe), model.forward_features(probe)))
        model.__dict__["_mc_head_only"] = cached
    return cached


def _repeat(t: torch.Tensor, n: int) -> torch.Tensor:
    return t.repeat(n, *([1] * (t.dim() - 1)))


@torch.no_grad()
def mc_dropout_samples(model: nn.Module, x: torch.Tensor, samples: int, task: str = "multilabel",
                       batched: bool = True, max_batch: int = 256, head_only: bool | None = None) -> torch.Tensor:
    """(S, B, C) probabilities from ``samples`` stochastic forward passes with only dropout active.

    Batched mode repeats the batch ``samples`` times in one forward pass (chunks of at most ``max_batch``
    rows; each repeated row draws its own dropout mask). When all dropout is in the head, the backbone runs
    once and only the head is repeated (``head_only``: None = detect, False = always the whole network).
    ``batched=False`` is the plain loop (for comparison).
    """
    if not dropout_modules(model):
        name = getattr(model, "model_name", type(model).__name__)
        raise CxrlabError(
            f"model {name} has no active dropout, so MC-dropout would return the same prediction every time; "
            "use --method tta, an ensemble of runs (`cxrlab ensemble`), or retrain with model.drop_rate=0.2"
        )
    was_training = model.training
    enable_mc_dropout(model)
    try:
        if not batched:
            return torch.stack([probabilities(model(x), task) for _ in range(samples)])
        b = x.shape[0]
        run, inp = model, x
        if head_only is not False and _head_only(model, x):
            run, inp = model.forward_head, model.forward_features(x)
        per_chunk = max(1, max_batch // max(b, 1))
        out = []
        for start in range(0, samples, per_chunk):
            n = min(per_chunk, samples - start)
            out.append(probabilities(run(_repeat(inp, n)), task).reshape(n, b, -1))  # (n*B, C) -> (n, B, C)
        return torch.cat(out)
    finally:
        model.train(was_training)


@torch.no_grad()
def tta_samples(model: nn.Module, x: torch.Tensor, task: str = "multilabel", views: int = 7,
                flip: bool = False) -> torch.Tensor:
    """(V, B, C) probabilities over deterministic medical-safe views (see ``tta_views``)."""
    model.eval()
    chosen = tta_views(flip)[: max(1, views)]
    if flip and not any(v[0] == "hflip" for v in chosen):
        chosen[-1] = tta_views(True)[-1]
    if flip:
        log.warning("TTA with horizontal flip: anatomy is not mirror-symmetric (S4 measured flip-TTA hurting)")
    return torch.stack([probabilities(model(view(x, dx, dy, s)), task) for _, dx, dy, s in chosen])


def summarize(samples: np.ndarray) -> dict[str, np.ndarray]:
    """mean, std, entropy, mi (each (B, C)) from (S, B, C) sampled probabilities (binary per class)."""
    p = np.clip(samples, EPS, 1 - EPS)
    mean = p.mean(axis=0)
    entropy = -(mean * np.log(mean) + (1 - mean) * np.log(1 - mean))
    expected = -(p * np.log(p) + (1 - p) * np.log(1 - p)).mean(axis=0)
    return {"mean": samples.mean(axis=0), "std": samples.std(axis=0), "entropy": entropy,
            "mi": np.clip(entropy - expected, 0, None)}


def uncertainty_frame(stats: dict[str, np.ndarray], classes: list[str]) -> pd.DataFrame:
    """The ``std:<class>``, ``entropy:<class>``, ``mi:<class>`` columns."""
    cols = {f"{k}:{c}": stats[k][:, i] for k in ("std", "entropy", "mi") for i, c in enumerate(classes)}
    return pd.DataFrame(cols)


def uncertainty_predictions(run_dir: str | Path, *, split: str, method: str, out: str | Path, samples: int = 30,
                            batch_size: int = 16, tta_flip: bool = False) -> Path:
    """Predict a run's split with MC-dropout or TTA; write a predictions file with uncertainty columns."""
    if method not in ("mc_dropout", "tta"):
        raise CxrlabError(f"unknown uncertainty method {method!r}; valid: mc_dropout, tta")
    if samples < 2:
        raise CxrlabError(f"--samples {samples}: need at least 2 samples to measure spread")
    model, info = load_run(run_dir)
    classes, task = list(info.classes), info.task
    images = images_from_run(info, split)
    dataset = ImageSetDataset(images, info, cache=open_run_cache(info, images))  # the cache, else the files
    parts = []
    for batch in iter_batches(dataset, batch_size):
        if method == "mc_dropout":
            parts.append(mc_dropout_samples(model, batch.x, samples, task).numpy())
        else:
            parts.append(tta_samples(model, batch.x, task, views=samples, flip=tta_flip).numpy())
    stats = summarize(np.concatenate(parts, axis=1))
    meta = {"task": task, "classes": classes, "model": info.model_name, "split": split,
            "run_dir": str(run_dir), "uncertainty": method, "samples": int(parts[0].shape[0]),
            "checkpoint_sha256": info.weights_sha256, "images_from_cache": dataset.n_from_cache}
    preds = Predictions(images.image_ids, stats["mean"], classes, meta, None, uncertainty_frame(stats, classes))
    return write_predictions(out, preds)
