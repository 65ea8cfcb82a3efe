"""Layout check: "is the picture laid out like this run's validation chest films?" (model-free image statistics).

Per image, from a 64x64 thumbnail of the model input: the 12x12 thumbnail z-scored (where the dark lungs, the
bright mediastinum and abdomen lie), the histogram of intensities (16 bins after min-max scaling: a film's
tonal spread, unlike a text page's two spikes) and the histogram of gradient magnitudes (8 bins: edges and
texture). The score is the Mahalanobis distance (Ledoit-Wolf shrinkage) of these statistics to the validation
images', scored out of fold for calibration, as for the feature distance. It catches what the classifier's own
features can miss (other views, documents, body parts, synthetic slices) without any model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxrlab.deploy.gaussian import gaussian, mahalanobis, out_of_fold


def layout_statistics(thumbs: np.ndarray) -> np.ndarray:
    """(N, 168) statistics of (N, 64*64) thumbnails (``cxrlab.deploy.orientation.thumbnails``)."""
    import cv2

    out = []
    for t in np.asarray(thumbs, np.float32).reshape(len(thumbs), 64, 64):
        small = cv2.resize(t, (12, 12), interpolation=cv2.INTER_AREA).ravel()
        z = (small - small.mean()) / max(float(small.std()), 1e-6)
        n = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        tones = np.histogram(n, bins=16, range=(0, 1))[0] / n.size
        gy, gx = np.gradient(n)
        edges = np.histogram(np.hypot(gx, gy), bins=8, range=(0, 0.2))[0] / n.size
        out.append(np.concatenate([z, 4 * tones, 4 * edges]))  # x4: histograms weigh like the thumbnail
    return np.stack(out).astype(np.float32)


@dataclass
class LayoutCheck:
    """Mean and precision of the validation statistics; ``threshold`` on the distance (set by the gate)."""

    mean: np.ndarray
    precision: np.ndarray
    threshold: float = float("inf")

    @classmethod
    def fit(cls, thumbs: np.ndarray) -> tuple[LayoutCheck, np.ndarray]:
        """(the check, each validation image's out-of-fold distance) from validation thumbnails."""
        stats = layout_statistics(thumbs)
        g = gaussian(stats)
        return cls(g["mean"], g["precision"]), out_of_fold(stats)

    def score(self, thumbs: np.ndarray) -> np.ndarray:
        return mahalanobis({"mean": self.mean, "precision": self.precision}, layout_statistics(thumbs))

    def tensors(self) -> dict[str, np.ndarray]:
        return {"layout.mean": self.mean, "layout.precision": self.precision}

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], meta: dict) -> LayoutCheck | None:
        if "layout.mean" not in tensors:
            return None
        return cls(tensors["layout.mean"], tensors["layout.precision"], float(meta["layout_threshold"]))
