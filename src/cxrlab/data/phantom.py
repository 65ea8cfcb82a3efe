"""Phantom chest X-rays: synthetic images with planted, localised findings and their ground-truth boxes.

Generative model (coordinates are fractions of the image side, rendering is vectorised numpy):

* **Patient anatomy** (fixed per patient, so follow-ups look alike and patient-level splits matter): a body
  outline (soft ellipse, soft tissue ~0.45 on a ~0.03 background), two lung fields (soft ellipses, dark
  ~0.18) cut from below by diaphragm domes (abdomen ~0.6 below), a bright mediastinum strip and spine, a heart
  (bright ellipse just right of the image centre, the patient's left on a PA film) and ribs (curved bright
  bands, brighter over the lungs). Per image: a small shift,
  a brightness gamma and Gaussian noise (sigma ~0.015).
* **Findings** are additive brightness fields multiplied by the lung mask, so they stay inside the lungs;
  amplitudes scale with ``contrast`` (1.0 = easy enough for a small CNN at 64-128 px):

  - multi-label (``Nodule``, ``Mass``, ``Effusion``, ``Opacity``), each present with ``prevalence``
    and kept at a follow-up with probability ``persistence``: Nodule = small bright disc (radius
    ``0.045 * finding_scale``), Mass = large dense sharp-edged disc (``0.085``), Effusion = bright fluid
    filling one lung base up to a meniscus, Opacity = diffuse textured patch (radius ~0.09).
  - multi-class (``normal``, ``bacteria``, ``virus``, ``COVID-19``), one class per patient: bacteria = one
    dense lobar consolidation in one lung; virus = bilateral perihilar reticular (striped) texture;
    COVID-19 = bilateral peripheral lower-zone ground glass; normal = nothing.

* **Boxes**: the bounding box of the pixels where the finding adds at least 2% of its amplitude, so the box
  tightly covers what was planted. Written in NIH ``BBox_List_2017.csv`` layout in the phantom's own pixel
  space (``phantom.json`` says ``boxes_image_size``).

Every image has its own seeds (``SeedSequence([seed, i, stream])``), so rendering is deterministic whether it runs in
one process or many.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cxrlab.data.build_index import build_index
from cxrlab.errors import CxrlabError
from cxrlab.utils import atomic_write_text, write_json

MULTILABEL_CLASSES = ["Nodule", "Mass", "Effusion", "Opacity"]
MULTICLASS_CLASSES = ["normal", "bacteria", "virus", "COVID-19"]
BOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],Unnamed: 6,Unnamed: 7,Unnamed: 8"
BOX_THRESHOLD = 0.02  # fraction of a finding's amplitude that counts as "in the box"


def _soft_ellipse(x, y, cx, cy, rx, ry, edge=0.08):
    """~1 inside the ellipse, ~0 outside, with a soft edge (in units of normalised radius)."""
    e = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2
    return 1.0 / (1.0 + np.exp(np.clip((e - 1.0) / edge, -30, 30)))


def _patient_anatomy(seed: int, pid: int) -> dict[str, float]:
    r = np.random.default_rng(np.random.SeedSequence([seed, 1_000_000 + pid]))
    cy, ry = r.uniform(0.44, 0.48), r.uniform(0.25, 0.29)
    return {
        "cx": 0.5 + r.normal(0, 0.01), "bw": r.uniform(0.40, 0.44), "dx": r.uniform(0.17, 0.20),
        "cy": cy, "rx": r.uniform(0.12, 0.14), "ry": ry, "dome": r.uniform(0.04, 0.07),
        "heart_r": r.uniform(0.10, 0.13), "rib_period": r.uniform(0.075, 0.09), "rib_phase": r.uniform(0, 1),
    }


def _render_anatomy(a: dict[str, float], size: int, r: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(image float32 (S, S) in ~[0, 1], lung weight float32 (S, S) in [0, 1])."""
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    x, y = coords[None, :], coords[:, None]
    x = x - np.float32(r.normal(0, 0.01))
    y = y - np.float32(r.normal(0, 0.01))
    cx = a["cx"]
    body = _soft_ellipse(x, y, cx, 0.6, a["bw"], 0.75, 0.05)
    lungs = np.zeros((size, size), np.float32)
    for side in (-1, 1):
        lcx = cx + side * a["dx"]
        dome = a["cy"] + 0.85 * a["ry"] - a["dome"] * (1 - np.clip(((x - lcx) / a["rx"]) ** 2, 0, 1))
        above = 1.0 / (1.0 + np.exp(np.clip((y - dome) / 0.006, -30, 30)))
        lungs = np.maximum(lungs, _soft_ellipse(x, y, lcx, a["cy"], a["rx"], a["ry"]) * above)
    heart = _soft_ellipse(x, y, cx + 0.05, a["cy"] + 0.14, a["heart_r"] * 1.35, a["heart_r"])
    mediastinum = _soft_ellipse(x, y, cx, 0.42, 0.07, 0.3, 0.1)
    lungs = lungs * (1 - heart) * (1 - mediastinum)
    below = 1.0 / (1.0 + np.exp(np.clip((a["cy"] + 0.8 * a["ry"] - y) / 0.01, -30, 30)))
    img = 0.03 + body * (0.42 + 0.18 * below)
    img = img - 0.3 * lungs + 0.3 * np.maximum(heart, mediastinum) * body
    img = img + 0.12 * np.exp(-(((x - cx) / 0.025) ** 2)) * body  # spine
    rib_y = y - 0.35 * (x - cx) ** 2 + a["rib_phase"] * a["rib_period"]
    ribs = (0.5 + 0.5 * np.cos(2 * np.pi * rib_y / a["rib_period"])) ** 6
    img = img + ribs * (0.03 * body + 0.09 * lungs)
    return img.astype(np.float32), lungs.astype(np.float32)


def _pick_center(lung_mask: np.ndarray, radius_px: float, r: np.random.Generator) -> tuple[float, float]:
    dist = cv2.distanceTransform(lung_mask.astype(np.uint8), cv2.DIST_L2, 3)
    ys, xs = np.nonzero(dist > max(1.0, 0.7 * radius_px))
    if len(ys) == 0:
        ys, xs = np.nonzero(lung_mask)
    k = r.integers(len(ys))
    return float(xs[k]), float(ys[k])


def _disc(size: int, cx: float, cy: float, radius: float) -> np.ndarray:
    """Compact bump: (1 - (d/R)^2)^1.5 inside radius R pixels, exactly 0 outside."""
    yy, xx = np.ogrid[:size, :size]
    d2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / radius**2
    return (np.clip(1 - d2, 0, 1) ** 1.5).astype(np.float32)


ZONES = ("any", "upper", "lower", "left", "right")


def _zone_mask(mask: np.ndarray, zone: str) -> np.ndarray:
    """The part of the lung mask where focal findings may be centred (image left/right, lung upper/lower)."""
    if zone == "any":
        return mask
    zoned = np.zeros_like(mask)
    half = mask.shape[1] // 2
    if zone in ("left", "right"):
        cols = slice(0, half) if zone == "left" else slice(half, None)
        zoned[:, cols] = mask[:, cols]
    else:
        middle = int(np.median(np.nonzero(mask)[0]))
        rows = slice(0, middle) if zone == "upper" else slice(middle, None)
        zoned[rows] = mask[rows]
    return zoned if zoned.any() else mask


def _finding_field(name: str, lungs: np.ndarray, size: int, r: np.random.Generator, scale: float,
                   zone: str = "any") -> list[np.ndarray]:
    """One or more (S, S) fields in [0, 1] for a finding (one per box), already clipped to the lungs."""
    mask = lungs > 0.5
    if name in ("Nodule", "Mass", "bacteria", "Opacity"):
        frac = {"Nodule": 0.045, "Mass": 0.085, "bacteria": 0.12, "Opacity": 0.09}[name]
        radius = frac * scale * size * r.uniform(0.85, 1.15)
        cx, cy = _pick_center(_zone_mask(mask, zone), radius, r)
        field = _disc(size, cx, cy, radius)
        if name == "Opacity":  # patchy: modulate with a low-frequency random texture
            tex = cv2.resize(r.random((6, 6), dtype=np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
            field = field * np.clip(0.5 + tex, 0, 1.2) / 1.2
        elif name in ("bacteria", "Mass"):
            field = np.minimum(1.0, field * 2.5)  # dense and sharp-edged, unlike a soft opacity
        return [field * lungs]
    if name == "Effusion":
        return [_effusion(lungs, mask, size, r, zone)]
    if name in ("virus", "COVID-19"):
        return _bilateral(name, lungs, mask, size, r, scale)
    raise CxrlabError(f"phantom: unknown finding {name!r}")


def _lung_halves(mask: np.ndarray, size: int) -> list[np.ndarray]:
    left = np.zeros_like(mask)
    left[:, : size // 2] = True
    return [mask & left, mask & ~left]


def _effusion(lungs: np.ndarray, mask: np.ndarray, size: int, r: np.random.Generator, zone: str) -> np.ndarray:
    side = {"left": 0, "right": 1}.get(zone, int(r.integers(2)))
    half = _lung_halves(mask, size)[side]
    ys, xs = np.nonzero(half)
    top, bottom, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    level = bottom - r.uniform(0.22, 0.32) * (bottom - top)
    yy, xx = np.ogrid[:size, :size]
    lateral = np.abs(xx - size / 2) / max(1.0, (x1 - x0) + abs(size / 2 - (x0 + x1) / 2))
    meniscus = level - 0.08 * size * lateral  # fluid climbs the lateral wall
    fluid = np.clip((yy - meniscus) / (0.02 * size), 0, 1)
    return (fluid * half * lungs).astype(np.float32)


def _bilateral(name: str, lungs, mask, size: int, r: np.random.Generator, scale: float) -> list[np.ndarray]:
    fields = []
    yy, xx = np.ogrid[:size, :size]
    for half in _lung_halves(mask, size):
        ys, xs = np.nonzero(half)
        if name == "virus":  # perihilar: the medial middle of each lung, striped texture
            cx = xs.max() if xs.mean() < size / 2 else xs.min()
            cy = ys.mean()
            radius = 0.13 * scale * size
            angle = r.uniform(0, np.pi)
            stripes = (0.5 + 0.5 * np.cos(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / (0.03 * size))) ** 2
            field = _disc(size, cx, cy, radius) * (0.3 + 0.7 * stripes)
        else:  # COVID-19: peripheral, lower zone, smooth ground glass
            cx = xs.min() if xs.mean() < size / 2 else xs.max()
            cy = ys.min() + 0.7 * (ys.max() - ys.min())
            field = _disc(size, cx, cy, 0.11 * scale * size)
        fields.append((field * lungs).astype(np.float32))
    return fields


# Brightness added at a finding's peak (image range ~0-1) at contrast 1.0: chosen so that a 4-layer CNN
# reaches validation macro AUROC > 0.9 within 6 epochs on 900 images at 64 px (see the README, phantom section).
AMPLITUDE = {"Nodule": 0.5, "Mass": 0.4, "Effusion": 0.35, "Opacity": 0.45,
             "bacteria": 0.3, "virus": 0.35, "COVID-19": 0.3}


def _box(field: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(field >= BOX_THRESHOLD)
    if len(ys) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def render_image(item: dict[str, Any]) -> list[tuple[str, str, int, int, int, int]]:
    """Render one planned image to ``item['path']``; returns its boxes (image_id, label, x, y, w, h)."""
    size, contrast = item["size"], item["contrast"]
    # Separate streams: the anatomy and noise of an image do not depend on which findings it carries.
    r = np.random.default_rng(np.random.SeedSequence([item["seed"], item["index"], 0]))
    rf = np.random.default_rng(np.random.SeedSequence([item["seed"], item["index"], 1]))
    img, lungs = _render_anatomy(_patient_anatomy(item["seed"], item["patient"]), size, r)
    boxes = []
    for name in item["findings"]:
        for field in _finding_field(name, lungs, size, rf, item["finding_scale"], item.get("zone", "any")):
            box = _box(field)
            if box is None:
                continue
            img += contrast * AMPLITUDE[name] * field
            boxes.append((item["image_id"], name, *box))
    img = img ** r.uniform(0.9, 1.1) + r.normal(0, 0.015, img.shape).astype(np.float32)
    out = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    if not cv2.imwrite(str(item["path"]), out, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise CxrlabError(f"phantom: cannot write {item['path']}; check the output folder is writable")
    return boxes


def _plan(n: int, task: str, seed: int, prevalence: float, persistence: float) -> list[dict[str, Any]]:
    """Patients, follow-ups and labels (cheap, sequential, deterministic from the seed)."""
    r = np.random.default_rng(np.random.SeedSequence([seed, 2_000_000]))
    classes = MULTILABEL_CLASSES if task == "multilabel" else MULTICLASS_CLASSES
    plan: list[dict[str, Any]] = []
    pid = 0
    while len(plan) < n:
        follow_ups = min(int(r.integers(1, 5)), n - len(plan))
        patient_class = classes[r.integers(len(classes))]
        previous: set[str] = set()
        for fu in range(follow_ups):
            if task == "multiclass":
                findings = [] if patient_class == "normal" else [patient_class]
                labels = [patient_class]
            else:
                # Walk classes in their fixed order: iterating the set would follow the per-process string
                # hash seed and make the labels differ from run to run.
                keep = {c for c in classes if c in previous and r.random() < persistence}
                labels = [c for c in classes if c in keep or r.random() < prevalence]
                previous = set(labels)
                findings = labels
            image_id = f"{pid:05d}_{fu:03d}.png"
            plan.append({"index": len(plan), "patient": pid, "follow_up": fu, "image_id": image_id,
                         "labels": labels, "findings": findings})
        pid += 1
    return plan


def make_phantom(out_dir: str | Path, n: int = 200, task: str = "multilabel", size: int = 256, seed: int = 0,
                 contrast: float = 1.0, finding_scale: float = 1.0, prevalence: float = 0.3,
                 persistence: float = 0.7, zone: str = "any", workers: int | None = None) -> Path:
    """Write ``n`` phantom images, ``labels.csv``, ``BBox_List_2017.csv`` and ``phantom.json`` into ``out_dir``.

    Args:
        task: ``multilabel`` (Nodule/Mass/Effusion/Opacity) or ``multiclass`` (normal/bacteria/virus/COVID-19).
        contrast: finding brightness multiplier (1.0 is easy; 0.3 is hard).
        finding_scale: finding size multiplier.
        prevalence: per-finding probability of a new finding (multi-label).
        persistence: probability a finding is still there at the next follow-up (multi-label).
        zone: where focal findings are centred: ``any``, ``upper``/``lower`` half of the lungs, or the image
            ``left``/``right`` lung (effusions follow left/right; bilateral patterns ignore it).
        workers: processes (default: all cores, 1 for small sets).
    Returns:
        ``out_dir``.
    """
    _check_args(n, task, size, contrast, finding_scale, prevalence, persistence)
    if zone not in ZONES:
        raise CxrlabError(f"phantom zone {zone!r} is not one of {', '.join(ZONES)}")
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    plan = _plan(n, task, seed, prevalence, persistence)
    for item in plan:
        item.update(size=size, seed=seed, contrast=contrast, finding_scale=finding_scale, zone=zone,
                    path=str(out_dir / "images" / item["image_id"]))
    workers = workers or (1 if n < 256 else min(os.cpu_count() or 1, 8))
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(render_image, plan, chunksize=max(1, n // (workers * 8))))
    else:
        results = [render_image(item) for item in plan]
    classes = MULTILABEL_CLASSES if task == "multilabel" else MULTICLASS_CLASSES
    _write_tables(out_dir, plan, results, classes)
    write_json(out_dir / "phantom.json", {
        "generator": "cxrlab.data.phantom", "n": n, "task": task, "classes": classes, "size": size,
        "seed": seed, "contrast": contrast, "finding_scale": finding_scale, "prevalence": prevalence,
        "persistence": persistence, "zone": zone, "boxes_image_size": size, "labels": "labels.csv",
        "boxes": "BBox_List_2017.csv",
    })
    return out_dir


def _check_args(n, task, size, contrast, finding_scale, prevalence, persistence) -> None:
    if task not in ("multilabel", "multiclass"):
        raise CxrlabError(f"phantom task {task!r} is not one of multilabel, multiclass")
    if n < 1:
        raise CxrlabError(f"phantom --n {n} must be at least 1")
    if size < 32:
        raise CxrlabError(f"phantom --size {size} is too small; use 32 or more (256 is typical)")
    if contrast <= 0 or finding_scale <= 0:
        raise CxrlabError("phantom --contrast and --finding-scale must be positive")
    if not (0 <= prevalence <= 1 and 0 <= persistence <= 1):
        raise CxrlabError("phantom --prevalence and --persistence must lie in [0, 1]")


def _write_tables(out_dir: Path, plan, results, classes: list[str]) -> None:
    rows = ["filename,patient_id,follow_up," + ",".join(classes)]
    for item in plan:
        onehot = ",".join("1" if c in item["labels"] else "0" for c in classes)
        rows.append(f"{item['image_id']},P{item['patient']:05d},{item['follow_up']},{onehot}")
    atomic_write_text(out_dir / "labels.csv", "\n".join(rows) + "\n")
    box_rows = [BOX_HEADER] + [f"{i},{lab},{x},{y},{w},{h}" for boxes in results for (i, lab, x, y, w, h) in boxes]
    atomic_write_text(out_dir / "BBox_List_2017.csv", "\n".join(box_rows) + "\n")


def make_phantom_index(out_dir: str | Path, n: int = 200, task: str = "multilabel", size: int = 256,
                       seed: int = 0, **kwargs: Any):
    """Phantom + its index in ``out_dir/index`` (for tests and demos); returns the ``Index``."""
    make_phantom(out_dir, n=n, task=task, size=size, seed=seed, **kwargs)
    index, _ = build_index(out_dir, "csv", Path(out_dir) / "index")
    return index
