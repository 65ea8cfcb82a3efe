"""Array-level AUROC: the one implementation, shared by training's validation metric (``cxrlab.train``) and
evaluation, ensembles, CV and selective prediction (``cxrlab.evaluate.metrics`` re-exports it). It sits at the
bottom of the package so that training does not import evaluation.
"""

from __future__ import annotations

import numpy as np


def binary_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """AUROC of one class from plain arrays: NaN labels masked; NaN when one label value remains.

    Mann-Whitney with tie-aware (average) ranks: equal to sklearn's ``roc_auc_score`` and to ``ranking.auc_ap``
    with unit weights, but cheap enough to call thousands of times (ensemble weight grids, training epochs).
    """
    from scipy.stats import rankdata

    labels, scores = np.asarray(labels, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    known = ~np.isnan(labels)
    y, s = labels[known] == 1, scores[known]
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def per_class_auroc(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(C,) ``binary_auroc`` of each column of (N, C) ``labels`` / ``probs``; NaN for single-valued classes."""
    return np.array([binary_auroc(labels[:, c], probs[:, c]) for c in range(probs.shape[1])])


def macro_auroc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean AUROC over the classes whose known labels hold both values; NaN labels masked; NaN when none.

    The one array-level macro AUROC (training's validation metric, ensembles, CV, selective prediction).
    Unlike ``evaluate_predictions`` it excludes no class by name: pass the columns you want averaged.
    """
    values = per_class_auroc(np.asarray(labels, dtype=np.float64), np.asarray(probs, dtype=np.float64))
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
