"""Tiny synthetic labels and predictions for the evaluation tests (written with the real artifact writers)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrlab.data.index import Index, write_index
from cxrlab.predictions import Predictions, write_predictions

CLASSES = ["Atelectasis", "Effusion", "Nodule", "No Finding"]


def make_dataset(out: Path, task: str = "multilabel", n: int = 240, seed: int = 0, classes=None) -> dict:
    """An index of ``n`` images (3 per patient) and noisy test (first 2/3) and val (last 1/3) predictions."""
    classes = list(classes or (CLASSES if task == "multilabel" else ["normal", "bacteria", "virus"]))
    rng = np.random.default_rng(seed)
    ids = [f"img{i:04d}.png" for i in range(n)]
    if task == "multilabel":
        y = (rng.random((n, len(classes))) < 0.3).astype(float)
    else:
        y = np.eye(len(classes))[rng.integers(0, len(classes), n)]
    frame = pd.DataFrame({"image_id": ids, "path": ids, "patient_id": [f"p{i // 3}" for i in range(n)]})
    frame["sha256"] = [hashlib.sha256(i.encode()).hexdigest() for i in ids]  # what `data index` records per file
    for i, c in enumerate(classes):
        frame[c] = y[:, i]
    write_index(Index(frame, task, classes, out), out / "index")
    p = 1 / (1 + np.exp(-(1.5 * y - 0.7 + rng.normal(size=y.shape))))
    if task == "multiclass":
        p = p / p.sum(axis=1, keepdims=True)
    cut = 2 * n // 3
    test = write_predictions(out / "test.csv", Predictions(ids[:cut], p[:cut], classes, meta("test", task)))
    val = write_predictions(out / "val.csv", Predictions(ids[cut:], p[cut:], classes, meta("val", task)))
    return {"index": out / "index", "test": test, "val": val, "y": y, "p": p, "ids": ids, "classes": classes,
            "cut": cut}


def meta(split: str, task: str) -> dict:
    return {"split": split, "task": task}


@pytest.fixture
def ml_data(tmp_path) -> dict:
    return make_dataset(tmp_path / "ml", "multilabel")


@pytest.fixture
def mc_data(tmp_path) -> dict:
    return make_dataset(tmp_path / "mc", "multiclass")
