"""Tiny synthetic fixtures for the explain/uncertainty/ensemble tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlab.data.index import Index, write_index
from cxrlab.predictions import Predictions, write_predictions


def make_labels_index(out_dir: Path, ids: list[str], y: np.ndarray, classes: list[str],
                      task: str = "multilabel") -> Path:
    """An index with only labels (paths are dummies) for ensemble/selective tests."""
    frame = pd.DataFrame({"image_id": ids, "path": [f"{i}.png" for i in ids], "patient_id": ids})
    frame["sha256"] = [hashlib.sha256(str(i).encode()).hexdigest() for i in ids]  # as `data index` records them
    for k, c in enumerate(classes):
        frame[c] = y[:, k]
    write_index(Index(frame, task, classes, out_dir), out_dir)
    return out_dir


def write_preds(path: Path, ids: list[str], probs: np.ndarray, classes: list[str], split: str,
                task: str = "multilabel", extra: pd.DataFrame | None = None) -> Path:
    meta = {"task": task, "split": split, "model": path.stem}
    return write_predictions(path, Predictions(ids, probs, classes, meta, None, extra))
