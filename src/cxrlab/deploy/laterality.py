"""Linear laterality: "is this film mirrored left-right?", the OOD gate's default left-right check.

``cxrlab.deploy.laterality_net`` (``--ood-laterality cnn``) catches far more mirrored films, at more false flags
of upright ones on held-out films (``bench_ood.py --dev``, docs/deploy.md), which is why this stays the default.

A chest film is only mildly asymmetric (heart and aortic knob to the patient's left, liver and gastric bubble
on either side of the diaphragm), so the check reads a finer picture: the gradient magnitude of the 64x64
thumbnail block-averaged to 32x32 and z-scored, and only its antisymmetric part ``a = g - fliplr(g)`` (the
image half, 32x16 numbers). Mirroring an image negates ``a`` exactly, so a logistic regression without
intercept on ``a`` (fitted on the validation images, label 0, and their mirror images, label 1) is exactly
sign-symmetric: ``logit(mirrored x) = -logit(x)``. Its out-of-fold scores on validation images (5 folds
grouped by image) therefore also give its scores on their mirrored versions, without refitting.

Measured on the NIH sample run's 101 validation images (out of fold, docs/deploy.md): area under the ROC curve
about 0.9, too weak to catch most mirrored films under a 3% false-flag budget. Validation images only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIDE = 32
C_GRID = (0.01, 0.1, 1.0)


def antisymmetric(thumbs: np.ndarray) -> np.ndarray:
    """(N, SIDE * SIDE / 2) antisymmetric part of the z-scored SIDE x SIDE gradient magnitude of 64x64 thumbnails."""
    t = np.asarray(thumbs, np.float32).reshape(len(thumbs), 64, 64)
    lo, hi = t.min(axis=(1, 2), keepdims=True), t.max(axis=(1, 2), keepdims=True)
    t = (t - lo) / np.maximum(hi - lo, 1e-6)
    gy, gx = np.gradient(t, axis=(1, 2))
    g = np.hypot(gx, gy).reshape(len(t), SIDE, 64 // SIDE, SIDE, 64 // SIDE).mean(axis=(2, 4))  # (N, 32, 32)
    g = (g - g.mean(axis=(1, 2), keepdims=True)) / np.maximum(g.std(axis=(1, 2), keepdims=True), 1e-6)
    return (g - g[:, :, ::-1])[:, :, : SIDE // 2].reshape(len(t), -1)


def _fit_coef(a: np.ndarray, c: float) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    y = np.r_[np.zeros(len(a)), np.ones(len(a))]
    clf = LogisticRegression(C=c, fit_intercept=False, max_iter=5000).fit(np.r_[a, -a], y)
    return clf.coef_[0].astype(np.float32)


def _auc(upright: np.ndarray) -> float:
    """ROC AUC of upright (label 0) vs mirrored (label 1, scores -upright), by the Mann-Whitney count."""
    up, fl = upright[:, None], -upright[None, :]
    return float(((fl > up).sum() + 0.5 * (fl == up).sum()) / up.size)


@dataclass
class LateralityCheck:
    """``coef`` (SIDE * SIDE / 2,): the mirrored-vs-upright logit is ``antisymmetric(thumbs) @ coef``."""

    coef: np.ndarray

    @classmethod
    def fit(cls, thumbs: np.ndarray, folds: list[np.ndarray], variants: np.ndarray
            ) -> tuple[LateralityCheck, np.ndarray]:
        """(the check, out-of-fold logits (V, N) of ``variants`` (V, N, 64*64)) from validation ``thumbs``.

        ``folds``: index arrays grouping each image with its variants; ``variants[0]`` should be the images
        themselves. The regularisation C is chosen from ``C_GRID`` by the out-of-fold AUC of upright vs mirrored
        validation images."""
        a = antisymmetric(thumbs)
        rest = [np.setdiff1d(np.arange(len(a)), held) for held in folds]
        best: tuple[float, list[np.ndarray]] | None = None
        for c in C_GRID:
            coefs = [_fit_coef(a[r], c) for r in rest]
            held_out = np.empty(len(a), np.float32)
            for held, coef in zip(folds, coefs, strict=True):
                held_out[held] = a[held] @ coef
            if best is None or _auc(held_out) > best[0]:
                best, chosen = (_auc(held_out), coefs), c
        out = np.empty(variants.shape[:2], np.float32)
        for held, coef in zip(folds, best[1], strict=True):
            a_held = antisymmetric(variants[:, held].reshape(-1, 64 * 64))
            out[:, held] = a_held.reshape(len(variants), len(held), -1) @ coef
        return cls(_fit_coef(a, chosen)), out

    def logit(self, thumbs: np.ndarray) -> np.ndarray:
        """(B,) log-odds that each thumbnail is mirrored left-right."""
        return antisymmetric(thumbs) @ self.coef
