"""Tone check: "are this picture's tones and edges like this run's validation chest films?" (model-free).

Per image, from a 64x64 thumbnail of the model input after min-max scaling: the cumulative histogram of
intensities (a film's broad tonal spread, unlike a text page's two spikes, a knee's mostly black field or a
negative) and of gradient magnitudes (how much edge and texture there is). The score is the Mahalanobis distance
(Ledoit-Wolf shrinkage) to the validation images', scored out of fold for calibration, as for the feature
distance.

The numbers of bins are chosen per run from ``GRID`` by ``choose_bins`` on the validation images alone: each
candidate's out-of-fold distances are thresholded at their maximum, and it scores the share of outliers made
from the held-out validation images (negatives, gamma 0.4 and 2.5, blurred, a 2x zoom into the centre; each
scored by the fold that did not see its source) beyond that threshold. The best wins; ties go to the fewest
numbers. (Every candidate's threshold at its own out-of-fold maximum flags a new validation-like image with
the same probability, 1 / (n + 1), by exchangeability: candidates differ only in what they catch.) No phantom
views or other test-like kinds are used, so the benchmark's kinds stay unseen.

The check catches what the classifier's own features can miss (other views and body parts, documents,
synthetic slices) without any model. (The thumbnail itself, where the lungs
and mediastinum lie, is the orientation check's input: ``cxrlab.deploy.orientation``.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxrlab.deploy.gaussian import gaussian, mahalanobis, out_of_fold

DEFAULT_BINS = (8, 4)  # what gates saved before the bins were chosen per run used
GRID = tuple((i, e) for i in (4, 8, 16) for e in (2, 4, 8))  # (intensity bins, edge bins)


def _scaled(thumbs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(min-max scaled (N, 64, 64) thumbnails, their gradient magnitudes)."""
    t = np.asarray(thumbs, np.float32).reshape(len(thumbs), 64, 64)
    lo, hi = t.min(axis=(1, 2), keepdims=True), t.max(axis=(1, 2), keepdims=True)
    n = (t - lo) / np.maximum(hi - lo, 1e-6)
    gy, gx = np.gradient(n, axis=(1, 2))
    return n, np.hypot(gx, gy)


def tone_statistics(thumbs: np.ndarray, bins: tuple[int, int] = DEFAULT_BINS) -> np.ndarray:
    """(N, bins[0] - 1 + bins[1]) cumulative intensity and edge histograms of (N, 64*64) thumbnails
    (``cxrlab.deploy.orientation.thumbnails``): the share of pixels below each inner bin edge of ``bins[0]``
    intensity bins on [0, 1] (the last cumulative share is always 1, left out), and at or below each edge of
    ``bins[1]`` gradient-magnitude bins on [0, 0.2] (``np.histogram``'s bins, counted without a loop)."""
    n, g = _scaled(thumbs)
    n, g = n.reshape(len(n), 1, -1), g.reshape(len(g), 1, -1)
    tones = (n < np.linspace(0, 1, bins[0] + 1)[1:-1, None]).mean(axis=2)
    inner = (g < np.linspace(0, 0.2, bins[1] + 1)[1:-1, None]).mean(axis=2)
    edges = np.concatenate([inner, (g <= 0.2).mean(axis=2)], axis=1)
    return np.concatenate([tones, edges], axis=1).astype(np.float32)


def validation_outliers(thumbs: np.ndarray) -> np.ndarray:
    """(5, N, 64*64) outliers made from each thumbnail: negative, gamma 0.4, gamma 2.5, blurred, 2x centre zoom."""
    import cv2

    t = np.asarray(thumbs, np.float32).reshape(len(thumbs), 64, 64)
    lo, hi = t.min(axis=(1, 2), keepdims=True), t.max(axis=(1, 2), keepdims=True)
    n = (t - lo) / np.maximum(hi - lo, 1e-6)
    blurred = np.stack([cv2.GaussianBlur(x, (0, 0), 2.0) for x in n])
    zoomed = np.stack([cv2.resize(x[16:48, 16:48], (64, 64), interpolation=cv2.INTER_LINEAR) for x in n])
    return np.stack([1 - n, n**0.4, n**2.5, blurred, zoomed]).reshape(5, len(t), -1)


def choose_bins(thumbs: np.ndarray, folds: int = 5, seed: int = 0) -> tuple[tuple[int, int], dict]:
    """(the ``GRID`` entry chosen on validation ``thumbs``, each candidate's share of outliers caught)."""
    outliers = validation_outliers(thumbs)
    split = np.array_split(np.random.default_rng(seed).permutation(len(thumbs)), min(folds, len(thumbs)))
    table: dict[tuple[int, int], float] = {}
    for bins in GRID:
        val = tone_statistics(thumbs, bins)
        out = tone_statistics(outliers.reshape(-1, 64 * 64), bins).reshape(len(outliers), len(thumbs), -1)
        val_score, out_score = np.empty(len(val)), np.empty(out.shape[:2])
        for held in split:
            g = gaussian(val[np.setdiff1d(np.arange(len(val)), held)])
            val_score[held] = mahalanobis(g, val[held])
            out_score[:, held] = mahalanobis(g, out[:, held].reshape(-1, val.shape[1])).reshape(len(out), -1)
        table[bins] = float((out_score > val_score.max()).mean())
    best = max(table.values())
    return min((b for b in GRID if table[b] >= best - 1e-12), key=sum), table  # ties: the fewest numbers


@dataclass
class ToneCheck:
    """Mean and precision of the validation statistics; ``threshold`` on the distance (set by the gate)."""

    mean: np.ndarray
    precision: np.ndarray
    threshold: float = float("inf")
    bins: tuple[int, int] = DEFAULT_BINS

    @classmethod
    def fit(cls, thumbs: np.ndarray) -> tuple[ToneCheck, np.ndarray]:
        """(the check, each validation image's out-of-fold distance) from validation thumbnails; bins chosen by
        ``choose_bins`` on the same images."""
        bins, _ = choose_bins(thumbs)
        stats = tone_statistics(thumbs, bins)
        g = gaussian(stats)
        return cls(g["mean"], g["precision"], bins=bins), out_of_fold(stats)

    def score(self, thumbs: np.ndarray) -> np.ndarray:
        return mahalanobis({"mean": self.mean, "precision": self.precision}, tone_statistics(thumbs, self.bins))

    def tensors(self) -> dict[str, np.ndarray]:
        return {"tones.mean": self.mean, "tones.precision": self.precision,
                "tones.bins": np.array(self.bins, np.int64)}

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], meta: dict) -> ToneCheck | None:
        """The stored check; gates saved before the bins were chosen per run used ``DEFAULT_BINS``."""
        if "tones.mean" not in tensors:
            return None
        bins = tuple(int(b) for b in tensors["tones.bins"]) if "tones.bins" in tensors else DEFAULT_BINS
        return cls(tensors["tones.mean"], tensors["tones.precision"], float(meta["tones_threshold"]), bins)
