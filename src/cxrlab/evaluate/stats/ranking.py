"""AUROC and average precision for many weightings of the same images at once.

The bootstrap needs the AUROC of each class under 1,000 resamplings of patients. Resampling only changes how
many times each patient counts, so every replicate is the same sorted list of scores with different weights.
We sort once per class, sum the weights of positives and negatives within each group of tied scores with one
sparse matrix product (groups x patients) @ (patients x replicates), and read both metrics off cumulative
sums: no Python loop over replicates or images. ``weighted_auroc`` is the AUROC-only path (compare, study
report, study matrix): it carries only the tie groups that hold a positive, a few times faster, same numbers.

Definitions (weights w_i, positives P, negatives N):
  AUROC = sum_{i in P, j in N} w_i w_j [s_i > s_j] + 0.5 [s_i = s_j]  /  (sum_P w * sum_N w)
  AP    = sum over distinct thresholds t (descending) of (recall(t) - recall(t_prev)) * precision(t),
          the step-wise definition scikit-learn uses (no interpolation).
With all weights 1 these are exactly sklearn's ``roc_auc_score`` and ``average_precision_score``.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

CHUNK = 250  # replicates per block: bounds memory at about groups x CHUNK x 8 bytes x 4
AUROC_CHUNK = 64  # weighted_auroc's blocks: a (units, 64) block stays in cache (20% faster than 250 at NIH size)


def tie_groups(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Return (order, group of each sorted element, number of groups), ascending scores."""
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    new = np.empty(len(s), dtype=bool)
    new[:1] = True
    new[1:] = s[1:] != s[:-1]
    groups = np.cumsum(new) - 1
    return order, groups, int(groups[-1]) + 1 if len(s) else 0


def auc_ap(
    scores: np.ndarray, y: np.ndarray, owner: np.ndarray | None = None, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and AP of one class under each row of ``weights``.

    Args:
        scores: (N,) predicted scores.
        y: (N,) 0/1 labels (no NaN: mask unknown labels before calling).
        owner: (N,) index of the unit each image belongs to (patient), 0..U-1; None: each image its own unit.
        weights: (R, U) weight of each unit in each replicate; None: a single replicate of ones.

    Returns:
        (auroc, ap), each (R,), NaN where a replicate has no positive or no negative weight.
    """
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y).astype(bool)
    n = len(scores)
    owner = np.arange(n) if owner is None else np.asarray(owner)
    if weights is None:
        weights = np.ones((1, int(owner.max()) + 1 if n else 0))
    weights = np.asarray(weights, dtype=np.float64)
    if n == 0:
        nan = np.full(len(weights), np.nan)
        return nan, nan.copy()
    order, groups, _ = tie_groups(scores)
    ys, us = y[order], owner[order]
    groups, n_groups = _merge_negative_runs(groups, ys)
    shape = (n_groups, weights.shape[1])
    m_pos = sparse.csr_matrix((ys.astype(np.float64), (groups, us)), shape=shape)
    m_neg = sparse.csr_matrix(((~ys).astype(np.float64), (groups, us)), shape=shape)
    aucs, aps = [], []
    for start in range(0, len(weights), CHUNK):
        wt = np.ascontiguousarray(weights[start : start + CHUNK].T)  # (U, r)
        pos = np.asarray(m_pos @ wt)  # (G, r) positive weight per tie group
        neg = np.asarray(m_neg @ wt)
        a, p = _from_group_sums(pos, neg)
        aucs.append(a)
        aps.append(p)
    return np.concatenate(aucs), np.concatenate(aps)


def _merge_negative_runs(groups: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, int]:
    """Merge consecutive tie groups that hold no positive: both metrics are unchanged, and with a rare
    finding the number of groups drops from ~N to ~2 x positives (the bootstrap's cost is linear in it)."""
    n_groups = int(groups[-1]) + 1
    has_pos = np.zeros(n_groups, dtype=bool)
    has_pos[groups[ys]] = True
    start = has_pos.copy()
    start[0] = True
    start[1:] |= has_pos[:-1]
    merged = np.cumsum(start) - 1
    return merged[groups], int(merged[-1]) + 1


def _from_group_sums(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and AP from per-group positive/negative weights (G, r), groups in ascending score order.

    Written for few passes over the (G, r) arrays: two cumulative sums, reused in place."""
    total_pos, total_neg = pos.sum(0), neg.sum(0)
    cum_neg = np.cumsum(neg, axis=0)  # negatives at or below each group
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (np.einsum("gr,gr->r", pos, cum_neg) - 0.5 * np.einsum("gr,gr->r", pos, neg)) / (total_pos * total_neg)
        tp = np.cumsum(pos, axis=0)  # becomes: positives at or above each group (descending threshold)
        np.subtract(pos, tp, out=tp)
        tp += total_pos
        fp = cum_neg  # becomes: negatives at or above each group
        np.subtract(neg, fp, out=fp)
        fp += total_neg
        fp += tp  # predicted positives at this threshold
        np.divide(tp, fp, out=tp, where=fp > 0)  # precision (tp is 0 wherever fp + tp is 0)
        ap = np.einsum("gr,gr->r", pos, tp) / total_pos
    auc[(total_pos <= 0) | (total_neg <= 0)] = np.nan
    ap[total_pos <= 0] = np.nan
    return auc, ap


def replicate_blocks(weights: np.ndarray) -> list[np.ndarray]:
    """(R, U) weights as contiguous (U, r) blocks of ``AUROC_CHUNK`` replicates, for ``weighted_auroc(blocks=)``:
    transposed once, then shared by every class and model scored on the same replicates. Integer counts whose
    replicate totals stay under 2^24 (every bootstrap here) are stored as float32: every sum the AUROC needs is then
    an integer below 2^24, exact in float32, at half the memory traffic; the products are summed in float64."""
    weights = np.asarray(weights, dtype=np.float64)
    exact32 = bool(np.all(weights == np.round(weights))) and float(weights.sum(axis=1).max(initial=0)) < 2**24
    dtype = np.float32 if exact32 else np.float64
    return [np.ascontiguousarray(weights[s : s + AUROC_CHUNK].T, dtype=dtype)
            for s in range(0, len(weights), AUROC_CHUNK)]


def weighted_auroc(
    scores: np.ndarray, y: np.ndarray, owner: np.ndarray | None = None, weights: np.ndarray | None = None,
    blocks: list[np.ndarray] | None = None,
) -> np.ndarray:
    """AUROC alone under each row of ``weights`` (R,): ``auc_ap(...)[0]`` with fewer passes over the data.

    Same arguments and the same numbers as ``auc_ap`` (with integer weights, such as bootstrap counts, every
    sum is an exact integer, so the two agree to the last bit); NaN where a replicate has no positive or no
    negative weight. The scores are sorted once per call (the side with fewer images counts as positive: the
    same pairs). Each tie group k that holds a positive gets three weights: its positives, the negatives tied
    with it, and the negatives above positive group k-1 up to and including group k. The numerator is
    sum_k pos_k (cumsum(upto)_k - 0.5 tied_k) (a tied pair counts one half), read off (K, r) arrays built by
    sparse products, ``AUROC_CHUNK`` replicates at a time: about 2 x K x AUROC_CHUNK values in memory, no re-sort and no
    per-image array per replicate. ``blocks``: ``replicate_blocks(weights)``, given instead of ``weights``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y).astype(bool)
    n = len(scores)
    owner = np.arange(n) if owner is None else np.asarray(owner)
    if blocks is None:
        blocks = replicate_blocks(np.ones((1, int(owner.max()) + 1 if n else 0)) if weights is None else weights)
    if n == 0 or y.all() or not y.any():
        return np.full(sum(b.shape[1] for b in blocks), np.nan)
    if 2 * y.sum() > n:  # the same pairs seen from the other side: fewer positive groups to carry
        scores, y = -scores, ~y
    m_pos, m_upto, m_tied, neg_per_unit = _positive_groups(scores, y, owner, *blocks[0].shape[:1], blocks[0].dtype)
    out = []
    for wt in blocks:  # (U, r)
        pos = np.asarray(m_pos @ wt)  # (K, r) positive weight of each positive tie group
        upto = np.asarray(m_upto @ wt)  # negatives above the previous positive group, up to this one
        np.cumsum(upto, axis=0, out=upto)  # negatives at or below each positive group
        num = np.einsum("kr,kr->r", pos, upto, dtype=np.float64)
        if m_tied.nnz:  # a tied pair counts one half
            num -= 0.5 * np.einsum("kr,kr->r", pos, np.asarray(m_tied @ wt), dtype=np.float64)
        total_pos, total_neg = pos.sum(0, dtype=np.float64), (neg_per_unit @ wt).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = num / (total_pos * total_neg)
        auc[(total_pos <= 0) | (total_neg <= 0)] = np.nan
        out.append(auc)
    return np.concatenate(out)


def _positive_groups(scores: np.ndarray, y: np.ndarray, owner: np.ndarray, units: int, dtype=np.float64):
    """Sparse (K, U) counts per positive tie group k (ascending score) and unit: its positives, the negatives
    above positive group k-1 up to and including group k, the negatives tied with group k; and (U,) negatives
    per unit (negatives above every positive count only there)."""
    order, groups, _ = tie_groups(scores)
    ys, us = y[order], owner[order]
    pos_groups = np.unique(groups[ys])  # ascending
    k = np.searchsorted(pos_groups, groups)  # the first positive group at or above each element
    tied = ~ys & (k < len(pos_groups)) & (pos_groups[np.minimum(k, len(pos_groups) - 1)] == groups)
    upto = ~ys & (k < len(pos_groups))
    shape = (len(pos_groups), units)

    def counts(mask: np.ndarray) -> sparse.csr_matrix:
        return sparse.csr_matrix((np.ones(int(mask.sum()), dtype=dtype), (k[mask], us[mask])), shape=shape)

    neg_per_unit = np.bincount(us[~ys], minlength=units).astype(dtype)
    return counts(ys), counts(upto), counts(tied), neg_per_unit


def auroc(scores: np.ndarray, y: np.ndarray) -> float:
    """Plain (unweighted) AUROC; NaN when ``y`` has a single value."""
    return float(auc_ap(scores, y)[0][0])


def average_precision(scores: np.ndarray, y: np.ndarray) -> float:
    """Plain (unweighted) average precision; NaN without positives."""
    return float(auc_ap(scores, y)[1][0])
