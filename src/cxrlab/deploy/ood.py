"""The out-of-distribution gate: "does this image look like the images this model was validated on?"

Up to three checks, each scored against the run's validation images:

- **distance** on the model's own penultimate features: ``mahalanobis`` (default; Lee et al., NeurIPS 2018, with
  Ledoit-Wolf shrinkage so a few dozen images suffice for thousands of feature dimensions), scored out of fold
  (5 folds: each validation image scored by a fit that did not see it); or ``knn`` (Sun et al., ICML 2022):
  cosine distance of L2-normalised features to the k-th nearest validation image, scored leave-one-out.
- **orientation** (``cxrlab.deploy.orientation``): rotation/flip/negative prediction on thumbnails, with a
  left-right mirroring (laterality) term (``cxrlab.deploy.laterality_net``, a small CNN that also trains on
  the run's training images, never its test images: mirroring labels itself). Penultimate features miss what matters
  most on a reading-room upload: a film turned 90 degrees, upside down or as a negative is still "a chest X-ray"
  to them.
- **tones** (``cxrlab.deploy.tones``): model-free intensity and edge histograms against the validation images',
  for other views, body parts, documents.

Without validation thumbnails (``thumbnails=None``) only the distance runs, thresholded at ``percentile`` of its
held-out validation scores. With them, the three thresholds are chosen together: each check's threshold is its
m-th largest held-out validation score (the same rank m for all, so no check is favoured). A new image from the
validation distribution exceeds one check's m-th largest of n scores with probability m / (n + 1)
(exchangeability, as in split-conformal prediction), so m is the largest rank at which the images in the union
of the checks' top m, counted over n + 1, are at most ``alpha``. The false-flag budget is spent on the union,
which is what a user sees. Every threshold and weight is fitted on validation images only; nothing here reads
the test split.

The gate is stored in a safetensors file (no pickle) beside the exported model. A model-free check flags colour
photographs and blank images on the decoded pixels (``cxrlab.data.images.looks_like_xray``).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrlab.deploy.gaussian import gaussian, kth_distance, mahalanobis, normalise, out_of_fold
from cxrlab.deploy.orientation import OrientationCheck
from cxrlab.deploy.tones import ToneCheck
from cxrlab.errors import CxrlabError

METHODS = ("mahalanobis", "knn")
MIN_IMAGE_CHECK_IMAGES = 10  # the orientation classifier's 5 folds need two images each


def joint_rank(held_out: list[np.ndarray], alpha: float) -> int:
    """The largest m such that the union of the checks' top m images, over n + 1, is at most ``alpha``.

    ``held_out``: one (n,) array per check, larger = less typical. m = 1 (flag only beyond each maximum) when
    even that is more."""
    n = len(held_out[0])
    ranks = [np.argsort(np.argsort(-h, kind="stable"), kind="stable") for h in held_out]  # 0 = largest
    best = 1
    for m in range(1, n + 1):
        flagged = np.zeros(n, bool)
        for r in ranks:
            flagged |= r < m
        if flagged.sum() / (n + 1) > alpha:
            break
        best = m
    return best


def _mth_largest(scores: np.ndarray, m: int) -> float:
    return float(np.sort(scores)[::-1][m - 1])


@dataclass
class OodGate:
    """A fitted gate: ``method``, its arrays, ``threshold`` on its distance, and the optional image checks."""

    method: str
    tensors: dict[str, np.ndarray]
    threshold: float
    percentile: float
    k: int | None = None
    weights_sha256: str | None = None
    n_reference: int = field(default=0)
    orientation: OrientationCheck | None = None
    tones: ToneCheck | None = None
    alpha: float | None = None

    @classmethod
    def fit(cls, features: np.ndarray, percentile: float = 99.0, method: str = "mahalanobis", k: int | None = None,
            weights_sha256: str | None = None, thumbnails: np.ndarray | None = None, alpha: float = 0.03,
            laterality_thumbnails: np.ndarray | None = None, laterality: str = "linear") -> OodGate:
        """Calibrate on validation features (and ``thumbnails`` of the same inputs, for the image checks).

        ``laterality``: the orientation check's left-right model (``linear``, the default, or ``cnn``; see
        ``cxrlab.deploy.orientation``). ``laterality_thumbnails``: the run's training images' thumbnails (never
        test), added to the ``cnn``'s training only: its labels come from mirroring, and every threshold and
        weight stays fitted on validation.

        Without thumbnails: threshold = ``percentile`` of the held-out distances. With them: all thresholds
        chosen jointly so that at most ``alpha`` of the validation images are flagged (module docstring)."""
        if method not in METHODS:
            raise CxrlabError(f"OOD method {method!r} is not one of {', '.join(METHODS)}")
        features = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
        if len(features) < 4:
            raise CxrlabError(f"the OOD gate needs at least 4 validation images, got {len(features)}")
        if method == "knn":
            ref = normalise(features)
            k = min(k or min(5, max(1, len(ref) // 20)), len(ref) - 1)
            held_out = kth_distance(ref, ref, k, exclude_self=True)
            tensors = {"reference": ref}
        else:
            held_out, tensors, k = out_of_fold(features), gaussian(features), None
        gate = cls(method, tensors, float(np.percentile(held_out, percentile)), float(percentile), k,
                   weights_sha256, len(features))
        if thumbnails is not None and len(thumbnails) >= MIN_IMAGE_CHECK_IMAGES:
            gate._fit_image_checks(held_out, thumbnails, alpha, laterality_thumbnails, laterality)
        elif thumbnails is not None:  # too few to fit the orientation classifier's folds: distance only, said so
            warnings.warn(f"OOD gate: only {len(thumbnails)} validation images (the orientation and tone checks need "
                          f"{MIN_IMAGE_CHECK_IMAGES}); the gate checks the feature distance alone", stacklevel=2)
        return gate

    def _fit_image_checks(self, held_out: np.ndarray, thumbnails: np.ndarray, alpha: float,
                          extra: np.ndarray | None, laterality: str = "linear") -> None:
        self.orientation, upright = OrientationCheck.fit(thumbnails, extra=extra, laterality=laterality)
        self.tones, tones = ToneCheck.fit(thumbnails)
        m = joint_rank([held_out, -upright, tones], alpha)
        self.threshold = _mth_largest(held_out, m)
        self.orientation.threshold = -_mth_largest(-upright, m)
        self.tones.threshold = _mth_largest(tones, m)
        self.percentile, self.alpha = 100.0 * (1 - (m - 1) / len(held_out)), float(alpha)

    def score(self, features: np.ndarray) -> np.ndarray:
        """(B,) distances; larger means less like the validation images."""
        if self.method == "knn":
            return kth_distance(normalise(features), self.tensors["reference"], self.k)
        return mahalanobis(self.tensors, features)

    def summary(self) -> dict[str, Any]:
        feature_dim = next(iter(self.tensors.values())).shape[-1]
        o, t = self.orientation, self.tones
        return {"method": self.method, "k": self.k, "threshold": self.threshold, "percentile": self.percentile,
                "n_reference": int(self.n_reference), "feature_dim": int(feature_dim), "alpha": self.alpha,
                "orientation_threshold": None if o is None else o.threshold,
                "laterality_weight": None if o is None else o.weight,
                **(o.laterality_summary() if o is not None else
                   dict.fromkeys(("laterality_model", "laterality_images", "laterality_combine"))),
                "tones_threshold": None if t is None else t.threshold,
                "tones_bins": None if t is None else [int(b) for b in t.bins]}

    def save(self, path: str | Path) -> Path:
        from safetensors.numpy import save_file

        path = Path(path)
        meta = {"cxrlab": json.dumps({**self.summary(), "weights_sha256": self.weights_sha256})}
        tensors = dict(self.tensors)
        for check in (self.orientation, self.tones):
            tensors.update(check.tensors() if check is not None else {})
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
            checks = OrientationCheck.from_tensors(tensors, meta), ToneCheck.from_tensors(tensors, meta)
        except Exception as exc:  # a truncated or foreign file
            raise CxrlabError(f"{path}: not an OOD gate file ({type(exc).__name__}); re-run `cxrlab export`") from None
        tensors = {k: v for k, v in tensors.items() if "." not in k}
        return cls(meta["method"], tensors, float(meta["threshold"]), float(meta["percentile"]), meta.get("k"),
                   meta.get("weights_sha256"), int(meta.get("n_reference", 0)), *checks, meta.get("alpha"))


def assess(gate: OodGate | None, features: np.ndarray, raw_images: list[np.ndarray] | None = None,
           thumbnails: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Per image: ``score``, ``threshold``, ``flagged`` and the ``reasons`` (each check that fired)."""
    from cxrlab.data.images import looks_like_xray

    scores = gate.score(features) if gate is not None else np.full(len(features), np.nan)
    image_checks = gate is not None and thumbnails is not None
    turned = gate.orientation.reasons(thumbnails) if image_checks and gate.orientation else [None] * len(scores)
    tones = gate.tones.score(thumbnails) if image_checks and gate.tones else np.full(len(scores), np.nan)
    out = []
    for i, s in enumerate(scores):
        reasons = []
        if gate is not None and s > gate.threshold:
            reasons.append(f"unlike the validation images ({gate.method} distance {s:.3g} > {gate.threshold:.3g}, "
                           f"their {gate.percentile:.3g}th percentile)")
        if turned[i]:
            reasons.append(turned[i])
        if tones[i] > (gate.tones.threshold if gate is not None and gate.tones else np.inf):
            reasons.append(f"tones and edges unlike the validation chest films (distance {tones[i]:.3g} > "
                           f"{gate.tones.threshold:.3g}): another view, body part or kind of picture?")
        if raw_images is not None:
            ok, why = looks_like_xray(raw_images[i])
            if not ok:
                reasons.append(why)
        out.append({"score": None if np.isnan(s) else float(s),
                    "threshold": None if gate is None else gate.threshold,
                    "flagged": bool(reasons), "reasons": reasons})
    return out
