"""Dataset sources: each turns a dataset on disk into a ``SourceTable`` that ``build_index`` validates.

``nih`` (NIH ChestX-ray14 release layout), ``csv`` (a labels CSV beside the images), ``folder`` (one
sub-folder per class, optionally under split folders) and ``phantom`` (the synthetic generator, indexed as
``csv``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".tif", ".tiff", ".bmp")
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "dev": "val", "test": "test", "testing": "test"}


@dataclass
class SourceTable:
    """What a source found: one row per image that exists, plus what it could not use."""

    frame: pd.DataFrame  # image_id, path, patient_id, <classes>, optional metadata
    task: str
    classes: list[str]
    fmt: str
    inputs: list[Path] = field(default_factory=list)  # label/metadata files (hashed into inputs_sha256)
    boxes: Path | None = None  # a BBox_List_2017.csv-style table, if any
    boxes_image_size: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    problems: dict[str, Any] = field(default_factory=dict)  # e.g. unknown_labels, no_label, missing_images
    extra_meta: dict[str, Any] = field(default_factory=dict)


def list_images(folder: Path) -> dict[str, Path]:
    """File name -> path for the image files directly in ``folder`` (one scandir, no per-file stat)."""
    if not folder.is_dir():
        return {}
    with os.scandir(folder) as it:
        return {e.name: Path(e.path) for e in it if e.name.lower().endswith(IMAGE_SUFFIXES) and e.is_file()}


def relative_to_root(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when inside it (portable index), else absolute."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())
