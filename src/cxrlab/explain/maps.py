"""Heat-map arithmetic shared by every method (CAMs and attention rollout): normalisation and the peak."""

from __future__ import annotations

import numpy as np


def normalise_maps(maps: np.ndarray) -> np.ndarray:
    """Min-max each map to [0, 1]; a constant map becomes all zeros (nothing highlighted)."""
    maps = np.nan_to_num(np.asarray(maps, dtype=np.float32))
    lo = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - lo
    return np.where(span > 1e-12, (maps - lo) / np.maximum(span, 1e-12), 0.0).astype(np.float32)


def peak(m: np.ndarray) -> tuple[int, int]:
    """(x, y) of the map's maximum (first one on ties)."""
    y, x = np.unravel_index(int(np.argmax(m)), m.shape)
    return int(x), int(y)
