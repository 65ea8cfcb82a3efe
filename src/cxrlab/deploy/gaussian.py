"""Distances the OOD gate's checks share: Mahalanobis under a Ledoit-Wolf covariance (and its out-of-fold
version for calibration) and the k-th nearest neighbour cosine distance."""

from __future__ import annotations

import numpy as np


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def kth_distance(query: np.ndarray, reference: np.ndarray, k: int, exclude_self: bool = False) -> np.ndarray:
    """(Q,) cosine distance from each (normalised) query row to its k-th nearest reference row."""
    out = np.empty(len(query), dtype=np.float32)
    for start in range(0, len(query), 256):  # (256, N) similarity blocks: memory stays bounded
        sim = query[start : start + 256] @ reference.T
        if exclude_self:
            rows = np.arange(sim.shape[0])
            sim[rows, start + rows] = -np.inf
        kth = -np.partition(-sim, k - 1, axis=1)[:, k - 1]
        out[start : start + 256] = 1.0 - kth
    return out


def gaussian(features: np.ndarray) -> dict[str, np.ndarray]:
    """Mean and Ledoit-Wolf shrunk precision of ``features`` (N, D)."""
    from sklearn.covariance import LedoitWolf

    lw = LedoitWolf().fit(np.asarray(features, dtype=np.float64))
    return {"mean": lw.location_.astype(np.float32), "precision": lw.precision_.astype(np.float32)}


def mahalanobis(tensors: dict[str, np.ndarray], features: np.ndarray) -> np.ndarray:
    d = np.asarray(features, dtype=np.float32).reshape(len(features), -1) - tensors["mean"]
    return np.sqrt(np.maximum(np.einsum("nd,de,ne->n", d, tensors["precision"], d), 0.0)).astype(np.float32)


def out_of_fold(features: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Each image's Mahalanobis distance under a fit on the other folds."""
    order = np.random.default_rng(seed).permutation(len(features))
    out = np.empty(len(features), dtype=np.float32)
    for held in np.array_split(order, min(folds, len(features))):
        rest = np.setdiff1d(order, held)
        out[held] = mahalanobis(gaussian(features[rest]), features[held])
    return out
