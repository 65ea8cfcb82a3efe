"""Samplers that rebalance training draws, and a guard against correcting imbalance twice.

- ``balanced`` (multi-class): each class is drawn equally often (weight 1 / class count).
- ``rarity`` (multi-label): a row's weight is that of its rarest positive class (1 / positives of that
  class); rows with no positive label count as one more class ("no finding").
- ``source_weights`` (merged data, ``data.source_weights``): each source's share of the draws, ``balanced``
  (equal shares) or a mapping ``{source: relative weight}``; combined with a class sampler, the class weights
  are normalised within each source so the source shares hold. A source drawn far above its natural share
  repeats its images many times per epoch: that over-correction is warned about.
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


def source_shares(sources: np.ndarray, spec: str | dict[str, float]) -> dict[str, float]:
    """{source: share of the draws} from ``balanced`` or a {source: relative weight} mapping (sums to 1)."""
    present = sorted(set(map(str, sources)))
    if spec == "balanced":
        return {s: 1.0 / len(present) for s in present}
    if not isinstance(spec, dict):
        raise CxrlabError(f"data.source_weights {spec!r}: use balanced or a mapping {{source: weight}}")
    missing, extra = [s for s in present if s not in spec], [s for s in spec if s not in present]
    if missing or extra:
        raise CxrlabError(f"data.source_weights names {sorted(spec)} but the training sources are {present}; "
                          "give a weight for each training source (or use balanced)")
    if any(float(spec[s]) <= 0 for s in present):
        raise CxrlabError(f"data.source_weights {spec}: every weight must be > 0")
    total = sum(float(spec[s]) for s in present)
    return {s: float(spec[s]) / total for s in present}


def source_row_weights(sources: np.ndarray, spec: str | dict[str, float], base: np.ndarray | None = None
                       ) -> np.ndarray:
    """(N,) weights giving each source its share; ``base`` (class-sampler weights) is normalised within each source."""
    sources = np.asarray(sources).astype(str)
    shares = source_shares(sources, spec)
    base = np.ones(len(sources)) if base is None else np.asarray(base, dtype=np.float64)
    out = np.zeros(len(sources))
    for name, share in shares.items():
        rows = sources == name
        out[rows] = share * base[rows] / base[rows].sum()
    warn_source_oversampling(sources, shares)
    return out


def warn_source_oversampling(sources: np.ndarray, shares: dict[str, float], limit: float = 5.0) -> str | None:
    """Warn when a source is drawn more than ``limit`` times its natural share (its images repeat that often)."""
    natural = {s: float(np.mean(sources == s)) for s in shares}
    over = {s: shares[s] / natural[s] for s in shares if natural[s] > 0 and shares[s] / natural[s] > limit}
    if not over:
        return None
    worst = max(over, key=over.get)
    msg = (f"data.source_weights draws source {worst!r} {over[worst]:.1f}x more often than its share of the training "
           f"images ({natural[worst]:.1%} of images, {shares[worst]:.1%} of draws): its images repeat that often and "
           "the model may overfit them; lower its weight or add images")
    warnings.warn(msg, UserWarning, stacklevel=3)
    return msg


def build_sampler(
    name: str,
    task: str,
    labels: np.ndarray,
    num_samples: int | None = None,
    replacement: bool = True,
    generator: torch.Generator | None = None,
    sources: np.ndarray | None = None,
    source_weights: str | dict[str, float] | None = None,
) -> WeightedRandomSampler | None:
    """A ``WeightedRandomSampler`` for ``name`` (None for ``none``: the loader shuffles).

    Args:
        name: none, balanced (multi-class) or rarity (multi-label; balanced is accepted as an alias).
        task: multilabel or multiclass.
        labels: (N, C) labels of the training rows (one-hot for multi-class, NaN = unknown).
        num_samples: draws per epoch (default N).
        replacement: draw with replacement.
        generator: the seeded generator that orders draws.
        sources: (N,) source of each training row (merged data), with ``source_weights`` (balanced or a mapping).
    """
    if name == "none" and source_weights is None:
        return None
    weights = None if name == "none" else _class_weights(name, task, labels)
    if source_weights is not None:
        if sources is None:
            raise CxrlabError("data.source_weights needs a merged index with a source column (`cxrlab data merge`)")
        weights = source_row_weights(sources, source_weights, weights)
    n = num_samples or len(weights)
    return WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), n, replacement, generator=generator)


def _class_weights(name: str, task: str, labels: np.ndarray) -> np.ndarray:
    if name == "balanced" and task == "multiclass":
        weights = balanced_weights(np.nanargmax(labels, axis=1), labels.shape[1])
    elif name in ("rarity", "balanced") and task == "multilabel":
        weights = rarity_weights(labels)
    elif name == "rarity":
        raise CxrlabError("sampler.name=rarity is for multi-label data; use sampler.name=balanced for multi-class")
    else:
        raise CxrlabError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}")
    return weights


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
