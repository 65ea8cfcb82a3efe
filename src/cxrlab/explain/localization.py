"""Scoring heat maps against ground-truth boxes: pointing game, IoU and intersection-over-box.

Boxes arrive in a reference coordinate space (NIH: 1024x1024, the original image; the phantom: its own size,
``boxes_image_size`` in ``index.json``) and are mapped onto the model input in three steps: reference ->
the actual original image (which may be a downsampled copy), -> the resized image (letterbox: scale the long
side and pad; center crop: scale the short side and crop), -> the eval transform (resize to ``base``, center
crop to ``image_size``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

Box = tuple[float, float, float, float]  # x, y, w, h


def scale_box(box: Box, ref_size: float | tuple[float, float], orig_hw: tuple[int, int], cache_size: int,
              policy: str = "letterbox", base: int | None = None, image_size: int | None = None) -> Box:
    """Map a box from reference coordinates onto the model input (see module docstring).

    Args:
        box: (x, y, w, h) in the reference space.
        ref_size: side of the reference space (1024 for NIH), or (width, height).
        orig_hw: (height, width) of the image file actually read.
        cache_size: side after ``resize_image``.
        policy: ``letterbox`` or ``center_crop`` (``resize_image``'s policy).
        base, image_size: the eval transform's resize side and crop side (default: no further change).
    """
    ref_w, ref_h = (ref_size, ref_size) if np.isscalar(ref_size) else ref_size
    h, w = orig_hw
    x, y, bw, bh = box[0] * w / ref_w, box[1] * h / ref_h, box[2] * w / ref_w, box[3] * h / ref_h
    s, off_x, off_y = _resize_params(orig_hw, cache_size, policy)  # center_crop: scale short side, crop long
    x, y, bw, bh = x * s + off_x, y * s + off_y, bw * s, bh * s
    base = base or cache_size
    image_size = image_size or base
    t = base / cache_size
    crop = (base - image_size) / 2
    return x * t - crop, y * t - crop, bw * t, bh * t


def _resize_params(orig_hw: tuple[int, int], cache_size: int, policy: str) -> tuple[float, float, float]:
    h, w = orig_hw
    if policy == "letterbox":
        s = cache_size / max(h, w)
        return s, (cache_size - w * s) / 2, (cache_size - h * s) / 2
    s = cache_size / min(h, w)
    return s, -(w * s - cache_size) / 2, -(h * s - cache_size) / 2


def input_to_original(point: tuple[float, float], orig_hw: tuple[int, int], cache_size: int,
                      policy: str = "letterbox", base: int | None = None,
                      image_size: int | None = None) -> tuple[float, float]:
    """Map an (x, y) on the model input back to pixels of the original image (inverse of ``scale_box``)."""
    s, off_x, off_y = _resize_params(orig_hw, cache_size, policy)
    base = base or cache_size
    t, crop = base / cache_size, (base - (image_size or base)) / 2
    return ((point[0] + crop) / t - off_x) / s, ((point[1] + crop) / t - off_y) / s


def box_mask(box: Box, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask (H, W) of the pixels whose centres fall inside the box (clipped to the image)."""
    x, y, w, h = box
    ys, xs = np.arange(shape[0]) + 0.5, np.arange(shape[1]) + 0.5
    return ((ys >= y) & (ys <= y + h))[:, None] & ((xs >= x) & (xs <= x + w))[None, :]


def pointing_hit(heat: np.ndarray, box: Box, tolerance: float = 0.0) -> bool:
    """Does the map's peak fall inside the box (grown by ``tolerance`` pixels on every side)?"""
    py, px = np.unravel_index(int(np.argmax(heat)), heat.shape)
    x, y, w, h = box
    cx, cy = px + 0.5, py + 0.5
    return bool(x - tolerance <= cx <= x + w + tolerance and y - tolerance <= cy <= y + h + tolerance)


def overlap_scores(heat: np.ndarray, box: Box, threshold: float = 0.5) -> dict[str, float]:
    """IoU and intersection-over-box of the map thresholded at ``threshold`` (of its [0, 1] range)."""
    on = heat >= threshold
    gt = box_mask(box, heat.shape)
    inter = float((on & gt).sum())
    union = float((on | gt).sum())
    return {"iou": inter / union if union else 0.0, "iob": inter / gt.sum() if gt.sum() else 0.0}


def score_map(heat: np.ndarray, box: Box, threshold: float = 0.5) -> dict[str, float]:
    """All three scores of one map against one box."""
    return {"pointing": float(pointing_hit(heat, box)), **overlap_scores(heat, box, threshold)}


def bootstrap_ci(values: np.ndarray, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> list[float]:
    """Percentile interval of the mean over images (resampling images)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2 or n_boot <= 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(axis=1)
    return [float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))]


def chance_pointing(boxes: list[Box], size: int) -> float:
    """Expected pointing-game hit rate of a peak placed uniformly at random: mean box area fraction."""
    if not boxes:
        return float("nan")
    return float(np.mean([box_mask(b, (size, size)).mean() for b in boxes]))


def summarise(records: pd.DataFrame, n_boot: int = 1000) -> dict[str, Any]:
    """Per method and finding (and 'all'): n, mean pointing/IoU/IoB with bootstrap 95% intervals.

    ``records`` columns: method, label, pointing, iou, iob (one row per image-box pair).
    """
    out: dict[str, Any] = {}
    for method, rows in records.groupby("method", sort=False):
        groups = {"all": rows, **{str(k): g for k, g in rows.groupby("label", sort=True)}}
        out[str(method)] = {
            name: {"n": int(len(g)),
                   **{m: {"mean": float(g[m].mean()), "ci95": bootstrap_ci(g[m].to_numpy(), n_boot)}
                      for m in ("pointing", "iou", "iob")}}
            for name, g in groups.items()
        }
    return out
