"""Tiny synthetic datasets written in tmp_path for the data-index tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

DATA_ENTRY_HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
                     "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]\n")


def write_png(path: Path, seed: int = 0, size: int = 16) -> Path:
    """A small gray PNG with distinct content per seed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(path)
    return path


def write_data_entry(path: Path, rows: list[tuple[str, str, int, int]]) -> Path:
    """rows: (image, labels, follow_up, patient)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{img},{lab},{fu},{pid},{40 + fu},M,PA,2048,2048,0.14,0.14" for img, lab, fu, pid in rows]
    path.write_text(DATA_ENTRY_HEADER + "\n".join(lines) + "\n")
    return path


def make_nih(root: Path) -> Path:
    """5 rows, 4 images over two images_00N folders, one row without an image, official lists, boxes."""
    rows = [("00000001_000.png", "Cardiomegaly", 0, 1), ("00000001_001.png", "Cardiomegaly|Effusion", 1, 1),
            ("00000002_000.png", "No Finding", 0, 2), ("00000003_000.png", "Mass", 0, 3),
            ("00000004_000.png", "Hernia", 0, 4)]
    write_data_entry(root / "Data_Entry_2017_v2020.csv", rows)
    for i, (img, *_rest) in enumerate(rows[:4]):
        write_png(root / f"images_00{1 + i // 2}" / "images" / img, seed=i)
    (root / "train_val_list.txt").write_text("00000001_000.png\n00000001_001.png\n00000002_000.png\n")
    (root / "test_list.txt").write_text("00000003_000.png\n00000004_000.png\n")
    (root / "BBox_List_2017.csv").write_text(
        "Image Index,Finding Label,Bbox [x,y,w,h],Unnamed: 6,Unnamed: 7,Unnamed: 8\n"
        "00000003_000.png,Mass,100.5,200,50,60,,,\n")
    return root
