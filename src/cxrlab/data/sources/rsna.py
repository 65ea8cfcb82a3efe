"""RSNA Pneumonia Detection Challenge (``stage_2_train_labels.csv`` + ``stage_2_train_images/*.dcm``).

One DICOM per ``patientId`` (so the patient is the image); ``Target`` (1: lung opacity suggestive of
pneumonia) is the label of class ``Pneumonia``; several rows per image when it has several boxes
(``x, y, width, height`` in the 1024x1024 pixel space; blank when ``Target`` is 0), all kept in the boxes
table. An image whose rows disagree on ``Target`` is excluded and counted (``conflicting Target``). When
``stage_2_detailed_class_info.csv`` sits beside it, its ``Normal`` class adds a ``No Finding`` column
(``No Lung Opacity / Not Normal`` images are abnormal without opacity: not ``No Finding``).
"""

from __future__ import annotations

from pathlib import Path

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
from cxrlab.data.sources.vindr import image_files
from cxrlab.errors import CxrlabError

LABEL_FILE = "stage_2_train_labels.csv"
DETAIL_FILE = "stage_2_detailed_class_info.csv"
REQUIRED = ("patientId", "x", "y", "width", "height", "Target")
BOXES_IMAGE_SIZE = 1024


def scan_rsna(root: Path, *, labels: str | Path | None = None) -> SourceTable:
    """Index the RSNA Pneumonia training set under ``root``; see the module docstring."""
    path = find_file(root, (LABEL_FILE, "stage_1_train_labels.csv"), labels)
    if path is None:
        raise CxrlabError(f"{root}: no {LABEL_FILE} found (plain or .gz); pass --labels FILE")
    raw = read_table(path)
    require_columns(path, raw, REQUIRED, "RSNA Pneumonia")
    raw["patientId"] = raw["patientId"].fillna("").str.strip()
    target = raw["Target"].fillna("").str.strip()
    bad = ~target.isin(["0", "1"])
    if bad.any():
        pos = int(bad.to_numpy().nonzero()[0][0])
        raise CxrlabError(f"{path}: row {pos + 2}, column 'Target': value {target.iloc[pos]!r} is not 0 or 1")
    raw["Target"] = target.astype(int)
    per_image = raw.groupby("patientId", sort=False)["Target"].agg(["min", "max"])
    conflicting = per_image.index[per_image["min"] != per_image["max"]].tolist()
    ids = pd.Series(per_image.index, dtype=str)
    files = image_files(root, ("stage_2_train_images", "stage_1_train_images", "train", ""))
    frame = pd.DataFrame({"image_id": ids, "path": ids.map(files), "patient_id": ids,
                          "Pneumonia": per_image["max"].to_numpy(dtype=float)})
    classes = ["Pneumonia"]
    inputs = [path]
    detail_path = find_file(path.parent, (DETAIL_FILE,))
    if detail_path is not None:
        detail = read_table(detail_path)
        require_columns(detail_path, detail, ("patientId", "class"), "RSNA detailed class info")
        normal = detail.groupby(detail["patientId"].str.strip())["class"].agg(lambda s: (s.str.strip() == "Normal")
                                                                               .all())
        frame["No Finding"] = frame["image_id"].map(normal).map({True: 1.0, False: 0.0})
        classes.append("No Finding")
        inputs.append(detail_path)
    table = SourceTable(frame, "multilabel", classes, "rsna", inputs=inputs)
    present = frame["path"].notna()
    missing_report(table, present, frame["image_id"], path, root)
    table.frame = frame[present.to_numpy()].reset_index(drop=True)
    keep_inside(table, root)  # never read a header outside the dataset folder
    meta = dicom_metadata(root, table.frame["path"])
    table.frame = pd.concat([table.frame, meta[["sex", "age", "view"]]], axis=1)
    found = set(table.frame["image_id"])
    boxes = raw[(raw["Target"] == 1) & raw["patientId"].isin(found)]
    xywh = boxes[["x", "y", "width", "height"]].apply(pd.to_numeric, errors="coerce")
    table.boxes_frame = pd.DataFrame({"image_id": boxes["patientId"], "label": "Pneumonia", "x": xywh["x"],
                                      "y": xywh["y"], "w": xywh["width"], "h": xywh["height"]}).dropna()
    table.boxes_image_size = BOXES_IMAGE_SIZE
    table.problems.update({"unknown_labels": {}, "no_label": [], "exclude": {"conflicting Target": conflicting}})
    table.counts.update({"rows": len(raw), "images_in_file": len(frame), "images_found": int(present.sum()),
                         "boxes": len(table.boxes_frame)})
    table.details = {"label": "Target -> Pneumonia", "conflicting_target_images": len(conflicting),
                     "detailed_class_info": detail_path.name if detail_path else None}
    return table
