"""Tone check: "are this picture's tones and edges like this run's validation chest films?" (model-free).

Per image, from a 64x64 thumbnail of the model input after min-max scaling: the cumulative histogram of
intensities (8 bins: a film's broad tonal spread, unlike a text page's two spikes, a knee's mostly black field
or a negative) and of gradient magnitudes (4 bins: how much edge and texture there is). Cumulative and coarse,
so the 11 numbers are stable enough for a covariance from about a hundred validation images (finer, plain
histograms put more in-distribution test images beyond the validation maximum when tried). The score is the
Mahalanobis distance (Ledoit-Wolf shrinkage) to the validation images', scored out of fold for calibration, as
for the feature distance. It catches what the classifier's own features can miss (other
views and body parts, documents, synthetic slices) without any model. (The thumbnail itself, where the lungs
and mediastinum lie, is the orientation check's input: ``cxrlab.deploy.orientation``.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxrlab.deploy.gaussian import gaussian, mahalanobis, out_of_fold


def tone_statistics(thumbs: np.ndarray) -> np.ndarray:
    """(N, 11) cumulative intensity and edge histograms of (N, 64*64) ``cxrlab.deploy.orientation.thumbnails``."""
    out = []
    for t in np.asarray(thumbs, np.float32).reshape(len(thumbs), 64, 64):
        n = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        tones = np.cumsum(np.histogram(n, bins=8, range=(0, 1))[0])[:-1] / n.size  # the last is always 1
        gy, gx = np.gradient(n)
        edges = np.cumsum(np.histogram(np.hypot(gx, gy), bins=4, range=(0, 0.2))[0]) / n.size
        out.append(np.concatenate([tones, edges]))
    return np.stack(out).astype(np.float32)


@dataclass
class ToneCheck:
    """Mean and precision of the validation statistics; ``threshold`` on the distance (set by the gate)."""

    mean: np.ndarray
    precision: np.ndarray
    threshold: float = float("inf")

    @classmethod
    def fit(cls, thumbs: np.ndarray) -> tuple[ToneCheck, np.ndarray]:
        """(the check, each validation image's out-of-fold distance) from validation thumbnails."""
        stats = tone_statistics(thumbs)
        g = gaussian(stats)
        return cls(g["mean"], g["precision"]), out_of_fold(stats)

    def score(self, thumbs: np.ndarray) -> np.ndarray:
        return mahalanobis({"mean": self.mean, "precision": self.precision}, tone_statistics(thumbs))

    def tensors(self) -> dict[str, np.ndarray]:
        return {"tones.mean": self.mean, "tones.precision": self.precision}

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], meta: dict) -> ToneCheck | None:
        if "tones.mean" not in tensors:
            return None
        return cls(tensors["tones.mean"], tensors["tones.precision"], float(meta["tones_threshold"]))
