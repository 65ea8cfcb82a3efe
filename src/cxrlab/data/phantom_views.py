"""Phantom radiographs that are NOT frontal chest films: lateral chest views and other body parts.

For testing an out-of-distribution gate (``benchmarks/bench_ood.py``): each view is drawn with the same
vocabulary as ``cxrlab.data.phantom`` (soft ellipses, bone brighter than soft tissue, air dark, a gamma and
Gaussian noise per image), so the gate must tell them apart by anatomy, not by rendering style.

- ``lateral``: a side view of the chest: a deep oval thorax, the spine as a bright column at the back, one
  superimposed lung field, the heart in front and low, the diaphragm dome and the arms raised as bright bands.
- ``hand``: a palm and five fingers of phalanges (bright rounded bars with joint gaps) in soft tissue.
- ``knee``: femur from above and tibia plus fibula from below with a joint space, patella, soft-tissue sleeve.
"""

from __future__ import annotations

import numpy as np

from cxrlab.errors import CxrlabError

VIEWS = ("lateral", "hand", "knee")


def _soft_ellipse(x, y, cx, cy, rx, ry, edge=0.08):
    e = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2
    return 1.0 / (1.0 + np.exp(np.clip((e - 1.0) / edge, -30, 30)))


def _bar(x, y, x0, y0, x1, y1, width):
    """~1 within ``width`` of the segment (x0, y0)-(x1, y1), soft edge."""
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy), 0, 1)
    d = np.hypot(x - (x0 + t * dx), y - (y0 + t * dy))
    return 1.0 / (1.0 + np.exp(np.clip((d - width) / (0.15 * width), -30, 30)))


def _lateral(x, y, r):
    j = r.normal(0, 0.02, 6)
    thorax = _soft_ellipse(x, y, 0.5 + j[0], 0.55, 0.36, 0.5, 0.05)
    lung = _soft_ellipse(x, y, 0.5 + j[1], 0.42, 0.24, 0.27) * (y < 0.66 + j[2])
    heart = _soft_ellipse(x, y, 0.38 + j[3], 0.58, 0.14, 0.12)
    spine = _bar(x, y, 0.76 + j[4], 0.1, 0.74 + j[4], 0.95, 0.045)
    arms = _bar(x, y, 0.2, 0.0, 0.45, 0.25 + j[5], 0.05) + _bar(x, y, 0.3, 0.0, 0.55, 0.22 + j[5], 0.045)
    abdomen = thorax * (y > 0.68 + j[2])
    return 0.03 + 0.45 * thorax - 0.28 * lung + 0.2 * heart + 0.35 * spine * thorax + 0.15 * abdomen + 0.3 * arms


def _hand(x, y, r):
    img = 0.03 + 0.3 * _soft_ellipse(x, y, 0.5, 0.78, 0.24, 0.2, 0.05)  # palm
    img = img + 0.25 * _bar(x, y, 0.5, 0.98, 0.5, 0.85, 0.1)  # wrist
    for k, (angle, length) in enumerate(zip(np.linspace(-0.45, 0.35, 5), (0.32, 0.5, 0.55, 0.5, 0.42))):
        angle += r.normal(0, 0.04)
        base = (0.5 + 0.22 * np.sin(angle) + (0.12 if k == 0 else 0), 0.7 - (0.0 if k else -0.05))
        tip = (base[0] + length * np.sin(angle), base[1] - length * np.cos(angle))
        img = img + 0.25 * _bar(x, y, *base, *tip, 0.045)  # soft tissue of the finger
        for s in range(3):  # phalanges with joint gaps
            a, b = s / 3 + 0.03, (s + 1) / 3 - 0.03
            img = img + 0.35 * _bar(x, y, base[0] + a * (tip[0] - base[0]), base[1] + a * (tip[1] - base[1]),
                                    base[0] + b * (tip[0] - base[0]), base[1] + b * (tip[1] - base[1]), 0.022)
        img = img + 0.3 * _bar(x, y, 0.5, 0.92, base[0], base[1], 0.02)  # metacarpal
    return img


def _knee(x, y, r):
    j = r.normal(0, 0.02, 3)
    sleeve = _bar(x, y, 0.5 + j[0], -0.1, 0.5 + j[0], 1.1, 0.3)
    femur = _bar(x, y, 0.5 + j[1], -0.1, 0.5, 0.4, 0.11) + 0.6 * _soft_ellipse(x, y, 0.5, 0.43, 0.2, 0.07)
    tibia = _bar(x, y, 0.48, 0.56, 0.47 + j[2], 1.1, 0.11) + 0.6 * _soft_ellipse(x, y, 0.48, 0.56, 0.19, 0.05)
    fibula = _bar(x, y, 0.68, 0.6, 0.66, 1.1, 0.035)
    patella = _soft_ellipse(x, y, 0.5, 0.36, 0.07, 0.06)
    bone = 0.45 * np.minimum(femur, 1) + 0.45 * np.minimum(tibia, 1) + 0.4 * fibula + 0.2 * patella
    return 0.03 + 0.3 * sleeve + bone


def render_view(view: str, size: int = 256, seed: int = 0) -> np.ndarray:
    """A ``view`` radiograph (``VIEWS``) as uint8 (size, size), deterministic in ``seed``."""
    if view not in VIEWS:
        raise CxrlabError(f"phantom view {view!r} is not one of {', '.join(VIEWS)}")
    r = np.random.default_rng(np.random.SeedSequence([seed, 3_000_000, VIEWS.index(view)]))
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    x, y = coords[None, :] - np.float32(r.normal(0, 0.01)), coords[:, None] - np.float32(r.normal(0, 0.01))
    img = {"lateral": _lateral, "hand": _hand, "knee": _knee}[view](x, y, r)
    img = np.clip(img, 0, None) ** r.uniform(0.9, 1.1) + r.normal(0, 0.015, (size, size))
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
