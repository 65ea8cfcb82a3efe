"""The out-of-distribution gate: "does this image look like the images this model was validated on?"

A distance on the model's own penultimate features, thresholded at a high percentile (99th by default) of the
same distance among the run's validation images. Two methods:

- ``mahalanobis`` (default; Lee et al., NeurIPS 2018, with Ledoit-Wolf shrinkage so a few dozen images suffice
  for thousands of feature dimensions): distance to the validation features' mean under their covariance.
  The threshold comes from out-of-fold distances (5 folds: each validation image scored by a fit that did not
  see it), so it is not biased low by in-sample distances.
- ``knn`` (Sun et al., ICML 2022): cosine distance of L2-normalised features to the k-th nearest validation
  image; threshold from leave-one-out distances.

A feature distance alone misses what matters most on a reading-room upload: a chest film turned 90 degrees,
upside down or as a negative is still "a chest X-ray" to penultimate features. So the gate also carries an
orientation check (``cxrlab.deploy.orientation``: rotation/flip/negative prediction on thumbnails, fitted and
thresholded on the same validation images) when it is fitted with the validation thumbnails.

The gate (mean and precision, or the reference features, and the orientation classifier) is stored in a
safetensors file (no pickle) beside the exported model. A model-free check flags colour photographs and blank
images before any distance (``cxrlab.data.images.looks_like_xray`` on the decoded pixels).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrlab.deploy.orientation import OrientationCheck
from cxrlab.errors import CxrlabError

METHODS = ("mahalanobis", "knn")


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


def _gaussian(features: np.ndarray) -> dict[str, np.ndarray]:
    from sklearn.covariance import LedoitWolf

    lw = LedoitWolf().fit(np.asarray(features, dtype=np.float64))
    return {"mean": lw.location_.astype(np.float32), "precision": lw.precision_.astype(np.float32)}


def _mahalanobis(tensors: dict[str, np.ndarray], features: np.ndarray) -> np.ndarray:
    d = np.asarray(features, dtype=np.float32).reshape(len(features), -1) - tensors["mean"]
    return np.sqrt(np.maximum(np.einsum("nd,de,ne->n", d, tensors["precision"], d), 0.0)).astype(np.float32)


def _out_of_fold(features: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Each image's Mahalanobis distance under a fit on the other folds."""
    order = np.random.default_rng(seed).permutation(len(features))
    out = np.empty(len(features), dtype=np.float32)
    for held in np.array_split(order, min(folds, len(features))):
        rest = np.setdiff1d(order, held)
        out[held] = _mahalanobis(_gaussian(features[rest]), features[held])
    return out


@dataclass
class OodGate:
    """A fitted gate: ``method``, its arrays, and ``threshold`` on its distance."""

    method: str
    tensors: dict[str, np.ndarray]
    threshold: float
    percentile: float
    k: int | None = None
    weights_sha256: str | None = None
    n_reference: int = field(default=0)
    orientation: OrientationCheck | None = None

    @classmethod
    def fit(cls, features: np.ndarray, percentile: float = 99.0, method: str = "mahalanobis", k: int | None = None,
            weights_sha256: str | None = None, thumbnails: np.ndarray | None = None,
            orientation_alpha: float = 0.02) -> OodGate:
        """Calibrate on validation features: threshold = ``percentile`` of their held-out distances.

        With ``thumbnails`` (``cxrlab.deploy.orientation.thumbnails`` of the same validation inputs), also fit the
        orientation check, flagging about ``orientation_alpha`` of in-distribution images by design."""
        if method not in METHODS:
            raise CxrlabError(f"OOD method {method!r} is not one of {', '.join(METHODS)}")
        features = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
        if len(features) < 4:
            raise CxrlabError(f"the OOD gate needs at least 4 validation images, got {len(features)}")
        if method == "knn":
            ref = _normalise(features)
            k = min(k or min(5, max(1, len(ref) // 20)), len(ref) - 1)
            held_out = _kth_distance(ref, ref, k, exclude_self=True)
            tensors = {"reference": ref}
        else:
            held_out, tensors, k = _out_of_fold(features), _gaussian(features), None
        orientation = None if thumbnails is None else OrientationCheck.fit(thumbnails, orientation_alpha)
        return cls(method, tensors, float(np.percentile(held_out, percentile)), float(percentile), k,
                   weights_sha256, len(features), orientation)

    def score(self, features: np.ndarray) -> np.ndarray:
        """(B,) distances; larger means less like the validation images."""
        if self.method == "knn":
            return _kth_distance(_normalise(features), self.tensors["reference"], self.k)
        return _mahalanobis(self.tensors, features)

    def summary(self) -> dict[str, Any]:
        feature_dim = next(iter(self.tensors.values())).shape[-1]
        o = self.orientation
        return {"method": self.method, "k": self.k, "threshold": self.threshold, "percentile": self.percentile,
                "n_reference": int(self.n_reference), "feature_dim": int(feature_dim),
                "orientation_threshold": None if o is None else o.threshold,
                "orientation_alpha": None if o is None else o.alpha}

    def save(self, path: str | Path) -> Path:
        from safetensors.numpy import save_file

        path = Path(path)
        meta = {"cxrlab": json.dumps({**self.summary(), "weights_sha256": self.weights_sha256})}
        tensors = {**self.tensors, **(self.orientation.tensors() if self.orientation else {})}
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | Path) -> OodGate:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = json.loads((f.metadata() or {})["cxrlab"])
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
            if meta["method"] not in METHODS:
                raise ValueError(meta["method"])
        except Exception as exc:  # a truncated or foreign file
            raise CxrlabError(f"{path}: not an OOD gate file ({type(exc).__name__}); re-run `cxrlab export`") from None
        orientation = OrientationCheck.from_tensors(tensors, meta)
        tensors = {k: v for k, v in tensors.items() if not k.startswith("orientation.")}
        return cls(meta["method"], tensors, float(meta["threshold"]), float(meta["percentile"]), meta.get("k"),
                   meta.get("weights_sha256"), int(meta.get("n_reference", 0)), orientation)


def assess(gate: OodGate | None, features: np.ndarray, raw_images: list[np.ndarray] | None = None,
           thumbnails: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Per image: ``score``, ``threshold``, ``flagged`` and the ``reasons`` (distance, orientation, not an X-ray)."""
    from cxrlab.data.images import looks_like_xray

    scores = gate.score(features) if gate is not None else np.full(len(features), np.nan)
    check = gate.orientation if gate is not None and thumbnails is not None else None
    turned = check.reasons(thumbnails) if check is not None else [None] * len(scores)
    out = []
    for i, s in enumerate(scores):
        reasons = []
        if gate is not None and s > gate.threshold:
            reasons.append(f"unlike the validation images ({gate.method} distance {s:.3g} > {gate.threshold:.3g}, "
                           f"their {gate.percentile:g}th percentile)")
        if turned[i]:
            reasons.append(turned[i])
        if raw_images is not None:
            ok, why = looks_like_xray(raw_images[i])
            if not ok:
                reasons.append(why)
        out.append({"score": None if np.isnan(s) else float(s),
                    "threshold": None if gate is None else gate.threshold,
                    "flagged": bool(reasons), "reasons": reasons})
    return out
