"""Samplers that rebalance training draws, and a guard against correcting imbalance twice.

- ``balanced`` (multi-class): each class is drawn equally often (weight 1 / class count).
- ``rarity`` (multi-label): a row's weight is that of its rarest positive class (1 / positives of that
  class); rows with no positive label count as one more class ("no finding").
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler

from cxrlab.errors import CxrlabError

SAMPLERS = ("none", "balanced", "rarity")


def balanced_weights(class_indices: np.ndarray, num_classes: int) -> np.ndarray:
    """(N,) weights that give every present class the same expected number of draws."""
    counts = np.bincount(class_indices, minlength=num_classes).astype(np.float64)
    return 1.0 / counts[class_indices]


def rarity_weights(labels: np.ndarray) -> np.ndarray:
    """(N,) weights from each row's rarest positive class; NaN (unknown) labels count as negative."""
    pos = np.nan_to_num(labels, nan=0.0) > 0.5  # (N, C)
    counts = pos.sum(axis=0).astype(np.float64)
    inv = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)  # (C,)
    weights = (pos * inv).max(axis=1)
    none = ~pos.any(axis=1)
    if none.any():
        weights[none] = 1.0 / none.sum()
    return weights


def build_sampler(
    name: str,
    task: str,
    labels: np.ndarray,
    num_samples: int | None = None,
    replacement: bool = True,
    generator: torch.Generator | None = None,
) -> WeightedRandomSampler | None:
    """A ``WeightedRandomSampler`` for ``name`` (None for ``none``: the loader shuffles).

    Args:
        name: none, balanced (multi-class) or rarity (multi-label; balanced is accepted as an alias).
        task: multilabel or multiclass.
        labels: (N, C) labels of the training rows (one-hot for multi-class, NaN = unknown).
        num_samples: draws per epoch (default N).
        replacement: draw with replacement.
        generator: the seeded generator that orders draws.
    """
    if name == "none":
        return None
    if name == "balanced" and task == "multiclass":
        weights = balanced_weights(np.nanargmax(labels, axis=1), labels.shape[1])
    elif name in ("rarity", "balanced") and task == "multilabel":
        weights = rarity_weights(labels)
    elif name == "rarity":
        raise CxrlabError("sampler.name=rarity is for multi-label data; use sampler.name=balanced for multi-class")
    else:
        raise CxrlabError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}")
    n = num_samples or len(weights)
    return WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), n, replacement, generator=generator)


def uses_inverse_frequency(loss_name: str, loss_kwargs: dict) -> bool:
    """True when a loss re-weights classes by their frequency (weighted BCE, class_weights, pos_weight)."""
    return (
        "weighted" in loss_name
        or loss_kwargs.get("class_weights") is not None
        or loss_kwargs.get("pos_weight") is not None
    )


def warn_if_double_correction(sampler: str, loss_name: str, loss_kwargs: dict | None = None) -> str | None:
    """Warn when a rebalancing sampler meets inverse-frequency loss weights (S3 did both).

    Each alone evens out the classes; together the rare classes end up over-weighted by roughly the
    imbalance ratio again. Returns the warning text, or None.
    """
    if sampler == "none" or not uses_inverse_frequency(loss_name, loss_kwargs or {}):
        return None
    msg = (
        f"sampler {sampler!r} already rebalances classes and loss {loss_name!r} also weights them by inverse "
        "frequency: rare classes are corrected twice; drop one (e.g. --set sampler.name=none)"
    )
    warnings.warn(msg, UserWarning, stacklevel=2)
    return msg
