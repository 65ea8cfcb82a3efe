"""The out-of-distribution gate: "does this image look like the images this model was validated on?"

A k-nearest-neighbour distance on the model's own penultimate features (Sun et al., ICML 2022, "Out-of-distribution
detection with deep nearest neighbors"): features are L2-normalised, an image's score is the cosine distance
to its k-th nearest validation image, and the threshold is a high percentile (99th by default) of the same
leave-one-out distance among the validation images themselves. No density model and no covariance to invert, so
it works with a few dozen validation images and thousands of feature dimensions alike.

The reference features and the threshold are stored in a safetensors file (no pickle) beside the exported or
served model. A second, model-free check flags colour photographs and blank images before any distance
(``cxrlab.data.images.looks_like_xray`` on the decoded pixels).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxrlab.errors import CxrlabError

METHOD = "knn-cosine"


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _kth_distance(query: np.ndarray, reference: np.ndarray, k: int, exclude_self: bool = False) -> np.ndarray:
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


@dataclass
class OodGate:
    """Reference features (N, D), normalised; ``threshold`` on the k-th neighbour cosine distance."""

    reference: np.ndarray
    k: int
    threshold: float
    percentile: float
    weights_sha256: str | None = None

    @classmethod
    def fit(cls, features: np.ndarray, percentile: float = 99.0, k: int | None = None,
            weights_sha256: str | None = None) -> OodGate:
        """Calibrate on validation features: threshold = ``percentile`` of their leave-one-out distances."""
        ref = _normalise(features)
        if len(ref) < 2:
            raise CxrlabError(f"the OOD gate needs at least 2 validation images, got {len(ref)}")
        k = k or min(5, max(1, len(ref) // 20))
        k = min(k, len(ref) - 1)
        own = _kth_distance(ref, ref, k, exclude_self=True)
        return cls(ref, k, float(np.percentile(own, percentile)), float(percentile), weights_sha256)

    def score(self, features: np.ndarray) -> np.ndarray:
        """(B,) distances; larger means less like the validation images."""
        return _kth_distance(_normalise(features), self.reference, self.k)

    def summary(self) -> dict[str, Any]:
        return {"method": METHOD, "k": self.k, "threshold": self.threshold, "percentile": self.percentile,
                "n_reference": int(len(self.reference)), "feature_dim": int(self.reference.shape[1])}

    def save(self, path: str | Path) -> Path:
        from safetensors.numpy import save_file

        path = Path(path)
        meta = {"cxrlab": json.dumps({**self.summary(), "weights_sha256": self.weights_sha256})}
        save_file({"reference": np.ascontiguousarray(self.reference)}, str(path), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | Path) -> OodGate:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = json.loads((f.metadata() or {})["cxrlab"])
                ref = f.get_tensor("reference")
        except Exception as exc:  # a truncated or foreign file
            raise CxrlabError(f"{path}: not an OOD gate file ({type(exc).__name__}); re-run `cxrlab export`") from None
        return cls(ref, int(meta["k"]), float(meta["threshold"]), float(meta["percentile"]), meta.get("weights_sha256"))


def assess(gate: OodGate | None, features: np.ndarray, raw_images: list[np.ndarray] | None = None
           ) -> list[dict[str, Any]]:
    """Per image: ``score``, ``threshold``, ``flagged`` and the ``reasons`` (distance, not an X-ray)."""
    from cxrlab.data.images import looks_like_xray

    scores = gate.score(features) if gate is not None else np.full(len(features), np.nan)
    out = []
    for i, s in enumerate(scores):
        reasons = []
        if gate is not None and s > gate.threshold:
            reasons.append(f"unlike the validation images (distance {s:.3f} > {gate.threshold:.3f}, "
                           f"their {gate.percentile:g}th percentile)")
        if raw_images is not None:
            ok, why = looks_like_xray(raw_images[i])
            if not ok:
                reasons.append(why)
        out.append({"score": None if np.isnan(s) else float(s),
                    "threshold": None if gate is None else gate.threshold,
                    "flagged": bool(reasons), "reasons": reasons})
    return out
