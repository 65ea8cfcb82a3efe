"""Tiny synthetic indexes for the split/audit/cache tests (no dependency on the phantom or the sources).

A uniquely named module (not conftest) so test files can import it without clashing with other folders."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from cxrlab.data.index import Index, load_index, write_index


def make_index(
    out: Path,
    n_patients: int = 40,
    per_patient: int = 3,
    task: str = "multilabel",
    classes: tuple[str, ...] = ("A", "B", "Rare"),
    size: int = 0,
    seed: int = 0,
    extra: dict | None = None,
) -> Index:
    """Write an index (and, when ``size`` > 0, tiny PNGs) under ``out``; returns the loaded index."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        for j in range(per_patient):
            image_id = f"{p:05d}_{j:03d}.png"
            row = {"image_id": image_id, "path": f"images/{image_id}", "patient_id": f"P{p:04d}"}
            if task == "multilabel":
                row.update({c: int(rng.random() < (0.04 if c == "Rare" else 0.3)) for c in classes})
            else:
                k = rng.choice(len(classes), p=_class_probs(len(classes)))
                row.update({c: int(i == k) for i, c in enumerate(classes)})
            rows.append(row)
    frame = pd.DataFrame(rows)
    for name, values in (extra or {}).items():
        frame[name] = values
    if size:
        (out / "images").mkdir(parents=True, exist_ok=True)
        for i, image_id in enumerate(frame["image_id"]):
            img = ((np.arange(size * (size + 3)).reshape(size, size + 3) * (i + 1)) % 251).astype(np.uint8)
            cv2.imwrite(str(out / "images" / image_id), img)
    write_index(Index(frame, task, list(classes), out), out / "index")
    return load_index(out / "index")


def _class_probs(n: int) -> np.ndarray:
    p = np.array([0.6, 0.3] + [0.1 / max(n - 2, 1)] * (n - 2))[:n]
    return p / p.sum()
