"""Orientation and negative check: "is this image the right way up, unflipped and not inverted?"

A small multinomial logistic regression (scikit-learn) on 16x16 thumbnails of the model's input, fitted on the
run's validation images shown in all 8 orientations of the square (the dihedral group: identity, rotations by
90/180/270 degrees, flips left-right and upside down, the two transposes) and as photographic negatives: 9
classes. This is rotation prediction used as an out-of-distribution score (Gidaris et al., ICLR 2018, "Unsupervised
representation learning by predicting image rotations"; Hendrycks et al., NeurIPS 2019, "Using self-supervised
learning can improve model robustness and uncertainty"), with the transforms a chest film is really mishandled by.

Left-right mirroring is nearly invisible at 16x16, so a laterality check adds its own surprise
``-log p_lat(not mirrored)`` (``cxrlab.deploy.laterality_net``, a small exactly antisymmetric CNN, which alone
may also train on the run's training images: mirroring labels itself), scaled by a weight w, and the check's
score is the larger surprise: ``p = min(p9(upright), p_lat(not mirrored) ** w)`` (``combine = "max"``). Gates
saved with the earlier linear laterality check (``cxrlab.deploy.laterality``) multiplied the two instead
(``combine = "product"``, ``p = p9(upright) * p_lat(not mirrored) ** w``) and load as such; the maximum keeps
the 9-way model's catches of turned films while the laterality term catches mirrored ones (the sum let the
upright images' laterality noise raise the threshold for both). w is chosen from ``WEIGHTS`` on the validation
images: the one whose out-of-fold scores flag the most of the validation images' own 8 variants (rotations,
flips, transposes, negative) beyond the largest out-of-fold score of the upright images (ties: the smaller w;
w = 0 is the 9-way model alone, and what gates saved before any laterality check load as).

An image is flagged when that probability of being "upright" falls below a threshold set on the validation
images themselves, scored out of fold (5 folds grouped by image, so no image is scored by a fit that saw any of
its variants); the gate (``cxrlab.deploy.ood``) chooses that threshold together with its other checks.
Thresholds and w: validation images only. Nothing here sees the test split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxrlab.deploy.laterality import LateralityCheck
from cxrlab.deploy.laterality_net import LateralityNet
from cxrlab.errors import CxrlabError

TRANSFORMS = ("upright", "rotated 90 degrees", "rotated 180 degrees", "rotated 270 degrees", "flipped left-right",
              "flipped upside down", "transposed", "anti-transposed", "inverted (a negative)")
SIDE = 16
THUMB = 64
WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
COMBINE = ("max", "product")
# the laterality model and how its surprise joins the 9-way model's, with the weights w is chosen from:
# "linear" (``laterality``, the surprises added; the default) or "cnn" (``laterality_net``, the larger one)
LATERALITY_MODELS = ("linear", "cnn")
LATERALITY_RULES = {"cnn": ("max", WEIGHTS), "linear": ("product", (0.0, 0.25, 0.5, 1.0))}


def variant(img: np.ndarray, k: int) -> np.ndarray:
    """``img`` (H, W) under ``TRANSFORMS[k]``."""
    if k < 4:
        return np.rot90(img, k)
    if k == 4:
        return img[:, ::-1]
    if k == 5:
        return img[::-1]
    if k == 6:
        return img.T
    if k == 7:
        return np.rot90(img, 2).T
    return img.max() + img.min() - img  # negative, whatever the value range


def thumbnails(images) -> np.ndarray:
    """(N, 64*64) float32: each model input (H, W) or (C, H, W) averaged over channels and area-resized.

    What the gate's image checks (orientation, tones) read, in the service and at calibration alike."""
    import cv2

    out = np.empty((len(images), THUMB * THUMB), np.float32)
    for i, img in enumerate(images):
        a = np.asarray(img, dtype=np.float32)
        a = a.mean(axis=0) if a.ndim == 3 else a
        out[i] = cv2.resize(np.ascontiguousarray(a), (THUMB, THUMB), interpolation=cv2.INTER_AREA).ravel()
    return out


def _small(thumbs: np.ndarray) -> np.ndarray:
    """(N, SIDE*SIDE) z-scored SIDE x SIDE versions of 64x64 thumbnails."""
    t = np.asarray(thumbs, np.float32).reshape(len(thumbs), SIDE, THUMB // SIDE, SIDE, THUMB // SIDE)
    t = t.mean(axis=(2, 4)).reshape(len(thumbs), -1)  # block means: 64x64 -> 16x16
    return (t - t.mean(axis=1, keepdims=True)) / np.maximum(t.std(axis=1, keepdims=True), 1e-6)


def _all_variants(thumbs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N * 9, D) small thumbnails of every variant (they commute with these transforms) and their labels."""
    squares = thumbs.reshape(-1, SIDE, SIDE)
    # the negative of a z-scored thumbnail is its sign flip (z-scoring undoes max + min - x)
    x = np.stack([np.stack([variant(s, k) for k in range(8)] + [-s]) for s in squares])  # (N, 9, S, S)
    return x.reshape(len(squares) * len(TRANSFORMS), -1), np.tile(np.arange(len(TRANSFORMS)), len(squares))


def _model(seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=0.1, max_iter=3000, random_state=seed)


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)


def combined(surprise: np.ndarray, lat_surprise: np.ndarray, weight: float, combine: str = "max") -> np.ndarray:
    """The orientation check's surprise ``-log p``: the larger of the two (``max``) or their sum (``product``)."""
    scaled = weight * lat_surprise
    return np.maximum(surprise, scaled) if combine == "max" else surprise + scaled


def _choose_weight(surprise: np.ndarray, lat_surprise: np.ndarray, combine: str = "max",
                   weights: tuple[float, ...] = WEIGHTS) -> float:
    """The w in ``weights`` flagging most validation variants (rows 1..) beyond the upright images' (row 0) maximum
    of the ``combined`` surprise (both (9, N), out of fold); ties go to the smaller w."""
    best, chosen = -1.0, 0.0
    for w in weights:
        s = combined(surprise, lat_surprise, w, combine)
        caught = float((s[1:] > s[0].max()).mean())
        if caught > best + 1e-12:
            best, chosen = caught, w
    return chosen


@dataclass
class OutOfFold:
    """Out-of-fold scores of the validation images' 9 variants (rows in ``TRANSFORMS`` order, row 0 the images):
    ``surprise`` -log p9(upright), ``lat_surprise`` -log p_lat(not mirrored), both (9, N); the laterality check
    fitted on all images and the ``weight`` chosen from them."""

    surprise: np.ndarray
    lat_surprise: np.ndarray
    laterality: LateralityNet | LateralityCheck
    weight: float
    combine: str = "max"


def out_of_fold(thumbs: np.ndarray, folds: int = 5, seed: int = 0, extra: np.ndarray | None = None,
                laterality: str = "linear") -> OutOfFold:
    """Score every validation image and its variants by fits (5 folds grouped by image) that saw none of them.

    ``laterality``: the model in ``LATERALITY_MODELS``; ``extra``: thumbnails of the run's training images (never
    test), added to every fit of the ``cnn`` (mirroring labels itself; the linear model reads validation only)."""
    if laterality not in LATERALITY_RULES:
        raise CxrlabError(f"laterality model {laterality!r} is not one of {', '.join(LATERALITY_MODELS)}")
    thumbs = np.asarray(thumbs, np.float32)
    small = _small(thumbs)
    if len(small) < 2 * folds:
        raise CxrlabError(f"the orientation check needs at least {2 * folds} validation images, got {len(small)}")
    order = np.random.default_rng(seed).permutation(len(small))
    split = np.array_split(order, folds)
    surprise = np.empty((len(TRANSFORMS), len(small)), np.float64)
    for held in split:
        clf = _model(seed).fit(*_all_variants(small[np.setdiff1d(order, held)]))
        p = clf.predict_proba(_all_variants(small[held])[0])[:, 0].reshape(len(held), len(TRANSFORMS))
        surprise[:, held] = -np.log(np.maximum(p.T, 1e-12))
    squares = thumbs.reshape(-1, THUMB, THUMB)
    variants = np.stack([np.stack([variant(t, k) for t in squares]) for k in range(len(TRANSFORMS))])
    variants = variants.reshape(len(TRANSFORMS), len(squares), -1)
    if laterality == "linear":  # validation images only
        check, lat = LateralityCheck.fit(thumbs, split, variants)
    else:
        check, lat = LateralityNet.fit(thumbs, split, variants, extra, seed)
    combine, weights = LATERALITY_RULES[laterality]
    lat_surprise = _softplus(lat)
    return OutOfFold(surprise, lat_surprise, check, _choose_weight(surprise, lat_surprise, combine, weights), combine)


@dataclass
class OrientationCheck:
    """A fitted check: ``coef`` (9, D), ``intercept`` (9,), ``threshold`` on p(upright) (set by the gate), and the
    optional ``laterality`` check with its ``weight``."""

    coef: np.ndarray
    intercept: np.ndarray
    threshold: float = 0.0
    laterality: LateralityNet | LateralityCheck | None = None
    weight: float = 0.0
    combine: str = "max"

    @classmethod
    def fit(cls, thumbs: np.ndarray, folds: int = 5, seed: int = 0, extra: np.ndarray | None = None,
            laterality: str = "linear") -> tuple[OrientationCheck, np.ndarray]:
        """(the check, each validation image's out-of-fold p(upright)) from validation ``thumbnails`` (and the
        training images' ``extra`` thumbnails, for the laterality network only)."""
        oof = out_of_fold(thumbs, folds, seed, extra, laterality)
        clf = _model(seed).fit(*_all_variants(_small(thumbs)))
        check = cls(clf.coef_.astype(np.float32), clf.intercept_.astype(np.float32), 0.0, oof.laterality, oof.weight,
                    oof.combine)
        return check, np.exp(-combined(oof.surprise[0], oof.lat_surprise[0], oof.weight, oof.combine)
                             ).astype(np.float32)

    def probabilities(self, thumbs: np.ndarray) -> np.ndarray:
        """(B, 9) probabilities of each transform in ``TRANSFORMS`` for (B, 64*64) ``thumbnails``."""
        z = _small(thumbs) @ self.coef.T + self.intercept
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def mirrored_logit(self, thumbs: np.ndarray) -> np.ndarray:
        """(B,) the laterality check's log-odds of "mirrored left-right" (0 without one)."""
        return np.zeros(len(thumbs)) if self.laterality is None else self.laterality.logit(thumbs)

    def upright(self, thumbs: np.ndarray) -> np.ndarray:
        """(B,) p(upright): the smaller of the 9-way model's and the laterality check's p(not mirrored) ** weight
        (``combine = "max"`` of the surprises), or their product (gates saved with the linear check)."""
        lat = self.weight * _softplus(self.mirrored_logit(thumbs)) if self.weight else np.zeros(len(thumbs))
        p9 = self.probabilities(thumbs)[:, 0]
        return np.minimum(p9, np.exp(-lat)) if self.combine == "max" else p9 * np.exp(-lat)

    def reasons(self, thumbs: np.ndarray) -> list[str | None]:
        """Per image: why it looks mis-oriented or inverted, or None."""
        out: list[str | None] = []
        z = self.mirrored_logit(thumbs)
        for p, up, zi in zip(self.probabilities(thumbs), self.upright(thumbs), z, strict=True):
            if up >= self.threshold:
                out.append(None)
            elif self.weight * _softplus(zi) > -np.log(max(p[0], 1e-12)):  # laterality is the larger surprise
                out.append(f"looks flipped left-right (laterality check: p(mirrored) {1 / (1 + np.exp(-zi)):.2f}; "
                           f"p(upright) {up:.2g} < {self.threshold:.2g})")
            else:
                k = int(np.argmax(p[1:])) + 1
                out.append(f"looks {TRANSFORMS[k]} (orientation check: p(upright) {up:.2g} < {self.threshold:.2g}; "
                           f"p({TRANSFORMS[k].split(' (')[0]}) {p[k]:.2f})")
        return out

    def tensors(self) -> dict[str, np.ndarray]:
        out = {"orientation.coef": self.coef, "orientation.intercept": self.intercept}
        if isinstance(self.laterality, LateralityNet):
            out.update(self.laterality.tensors())
        elif self.laterality is not None:  # a linear check loaded from an older gate file
            out["orientation.laterality"] = self.laterality.coef
        if self.laterality is not None:
            out["orientation.laterality_weight"] = np.array([self.weight], np.float32)
        return out

    def laterality_summary(self) -> dict:
        """What the gate's summary says about the laterality term: model kind and images it was trained on."""
        lat = self.laterality
        return {"laterality_model": None if lat is None else "cnn" if isinstance(lat, LateralityNet) else "linear",
                "laterality_images": lat.n_images if isinstance(lat, LateralityNet) else None,
                "laterality_combine": None if lat is None else self.combine}

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], meta: dict) -> OrientationCheck | None:
        """The stored check: with the laterality network, or the linear laterality check of gates saved before it
        (their surprises added: ``combine = "product"``), or (saved before either) weight 0, the 9-way model alone."""
        if "orientation.coef" not in tensors:
            return None
        lat = LateralityNet.from_tensors(tensors, int(meta.get("laterality_images") or 0))
        if lat is None and "orientation.laterality" in tensors:
            lat = LateralityCheck(tensors["orientation.laterality"])
        weight = float(tensors["orientation.laterality_weight"][0]) if lat is not None else 0.0
        combine = meta.get("laterality_combine") or "product"
        if combine not in COMBINE:
            raise ValueError(combine)
        return cls(tensors["orientation.coef"], tensors["orientation.intercept"], float(meta["orientation_threshold"]),
                   lat, weight, combine)
