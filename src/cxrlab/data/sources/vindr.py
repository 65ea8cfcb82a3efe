"""VinDr-CXR / VinBigData (Kaggle ``train.csv``): one row per box per radiologist, DICOM images.

Columns: ``image_id`` (the DICOM file stem), ``class_name``, ``class_id`` (14 = No finding), ``rad_id``
(three readers per training image), ``x_min, y_min, x_max, y_max`` (DICOM pixel coordinates; blank for No
finding). Image labels need a reader-agreement rule (``--readers``):

- ``majority`` (default): a finding is positive when more than half of the image's readers marked it;
- ``any``: positive when at least one reader marked it.

The rule is recorded in ``index.json`` and the validation report. Every reader's box is kept in the boxes
table (``boxes.csv``), scaled from the image's pixels to a 1024x1024 reference by the width and height in
its DICOM header (``boxes_image_size`` 1024, as NIH's), which ``explain`` maps back onto each image.
Images are looked up as ``train/<id>.dicom`` (or ``.dcm``,
``.png``, ``.jpg``, also directly in ROOT). VinDr gives no patient ids: each image is its own patient.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlab.data.sources import (
    SourceTable,
    dicom_metadata,
    find_file,
    keep_inside,
    missing_report,
    read_table,
    require_columns,
)
from cxrlab.errors import CxrlabError

REQUIRED = ("image_id", "class_name", "rad_id")
BOX_COLUMNS = ("x_min", "y_min", "x_max", "y_max")
READER_RULES = ("majority", "any")
BOXES_REFERENCE = 1024  # boxes are stored in this square space, like NIH's, so explain maps them per image
NO_FINDING = "No finding"
SUFFIXES = (".dicom", ".dcm", ".png", ".jpg", ".jpeg")


def image_files(root: Path, folders: tuple[str, ...]) -> dict[str, str]:
    """File stem -> path relative to ROOT for images in ``folders`` (first folder wins)."""
    found: dict[str, str] = {}
    for folder in folders:
        base = root / folder if folder else root
        if not base.is_dir():
            continue
        with os.scandir(base) as it:
            for e in it:
                stem, suffix = os.path.splitext(e.name)
                if suffix.lower() in SUFFIXES:
                    found.setdefault(stem, f"{folder}/{e.name}" if folder else e.name)
    return found


def aggregate_readers(raw: pd.DataFrame, rule: str) -> tuple[pd.DataFrame, dict]:
    """(image x class 0/1 frame, details) from reader rows under ``rule``."""
    pairs = raw[["image_id", "class_name", "rad_id"]].drop_duplicates()
    readers = raw.groupby("image_id")["rad_id"].nunique()
    votes = pairs.groupby(["image_id", "class_name"]).size().unstack(fill_value=0)
    need = np.floor(readers.reindex(votes.index).to_numpy() / 2) + 1 if rule == "majority" else np.ones(len(votes))
    labels = (votes.to_numpy() >= need[:, None]).astype(np.float64)
    frame = pd.DataFrame(labels, index=votes.index, columns=votes.columns)
    split = ((votes > 0) & (votes.to_numpy() < readers.reindex(votes.index).to_numpy()[:, None])).sum()
    details = {"reader_rule": rule, "readers_per_image": {str(k): int(v) for k, v in
                                                          readers.value_counts().sort_index().items()},
               "images_with_reader_disagreement_per_class": {str(k): int(v) for k, v in split.items()}}
    return frame, details


def scan_vindr(root: Path, *, labels: str | Path | None = None, readers: str | None = None) -> SourceTable:
    """Index VinDr-CXR / VinBigData under ``root``; see the module docstring."""
    rule = readers or "majority"
    if rule not in READER_RULES:
        raise CxrlabError(f"--readers {rule!r} is not one of {', '.join(READER_RULES)}")
    path = find_file(root, ("train.csv", "annotations_train.csv"), labels)
    if path is None:
        raise CxrlabError(f"{root}: no train.csv found (VinBigData's reader table); pass --labels FILE")
    raw = read_table(path)
    require_columns(path, raw, REQUIRED, "VinDr-CXR/VinBigData")
    for c in ("image_id", "class_name", "rad_id"):
        raw[c] = raw[c].fillna("").str.strip()
    matrix, details = aggregate_readers(raw, rule)
    matrix = matrix.rename(columns={NO_FINDING: "No Finding"})
    order = sorted(c for c in matrix.columns if c != "No Finding") + (["No Finding"] if "No Finding" in matrix else [])
    matrix = matrix[order]
    files = image_files(root, ("train", "train_images", ""))
    ids = pd.Series(matrix.index, dtype=str)
    frame = pd.DataFrame({"image_id": ids, "path": ids.map(files), "patient_id": ids})
    frame = pd.concat([frame, matrix.reset_index(drop=True)], axis=1)
    table = SourceTable(frame, "multilabel", order, "vindr", inputs=[path])
    present = frame["path"].notna()
    missing_report(table, present, frame["image_id"], path, root)
    table.frame = frame[present.to_numpy()].reset_index(drop=True)
    keep_inside(table, root)  # never read a header outside the dataset folder
    meta = dicom_metadata(root, table.frame["path"])
    table.frame = pd.concat([table.frame, meta[["sex", "age", "view"]]], axis=1)
    sizes = meta[["width", "height"]].set_axis(table.frame["image_id"])
    table.boxes_frame, unsized = _boxes(raw, sizes)
    table.boxes_image_size = BOXES_REFERENCE
    table.counts.update({"rows": len(raw), "images_in_file": len(frame), "images_found": int(present.sum()),
                         "boxes": len(table.boxes_frame)})
    table.problems.update({"unknown_labels": {}, "no_label": []})
    table.details = {**details, "boxes_kept": len(table.boxes_frame), "boxes_without_image_size": unsized}
    table.extra_meta = {"policies": {"readers": rule},
                        "boxes_coordinates": f"{BOXES_REFERENCE}x{BOXES_REFERENCE} reference: each reader's pixel box "
                                             "scaled by its image's width and height (from the DICOM header)"}
    if unsized:
        table.warnings.append(f"{unsized} box(es) dropped: their image's size is not in its header")
    table.warnings.append("VinDr-CXR has no patient ids: each image is its own patient")
    return table


def _boxes(raw: pd.DataFrame, sizes: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Every reader's box of the indexed images as (image_id, label, x, y, w, h) in the 1024x1024 reference
    space that ``explain`` maps onto each image (x scaled by 1024 / width, y by 1024 / height); and the number
    of boxes dropped because their image's size is unknown."""
    empty = pd.DataFrame(columns=["image_id", "label", "x", "y", "w", "h"])
    if not all(c in raw.columns for c in BOX_COLUMNS):
        return empty, 0
    xy = raw[list(BOX_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    ok = xy.notna().all(axis=1) & raw["image_id"].isin(set(sizes.index))
    xy, sub = xy[ok], raw[ok]
    w = sizes["width"].reindex(sub["image_id"]).to_numpy(dtype=np.float64)
    h = sizes["height"].reindex(sub["image_id"]).to_numpy(dtype=np.float64)
    sx, sy = BOXES_REFERENCE / w, BOXES_REFERENCE / h
    boxes = pd.DataFrame({"image_id": sub["image_id"].to_numpy(), "label": sub["class_name"].to_numpy(),
                          "x": xy["x_min"].to_numpy(dtype=np.float64) * sx,
                          "y": xy["y_min"].to_numpy(dtype=np.float64) * sy,
                          "w": (xy["x_max"] - xy["x_min"]).to_numpy(dtype=np.float64) * sx,
                          "h": (xy["y_max"] - xy["y_min"]).to_numpy(dtype=np.float64) * sy})
    known = np.isfinite(boxes[["x", "y", "w", "h"]].to_numpy()).all(axis=1)
    return boxes[known].reset_index(drop=True), int((~known).sum())
