"""CheXpert (``CheXpert-v1.0`` or ``CheXpert-v1.0-small``): ``train.csv`` / ``valid.csv`` beside ``train/``, ``valid/``.

``Path`` is ``CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg``: the patient and the study are
only in the path. ``Sex``, ``Age``, ``Frontal/Lateral`` and ``AP/PA`` are kept (``view`` is ``AP``/``PA``
for frontal images, ``LATERAL`` for lateral ones). The 14 observations follow the CheXpert convention
(``policies``). Frontal views are kept by default and the laterals left out are counted. ROOT may be the
dataset folder (holding ``train.csv``) or the folder above it. ``train.csv`` rows get ``official_split``
``train_val``, ``valid.csv`` rows ``test`` (the radiologist-labelled validation set is the public test set).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cxrlab.data.sources import (
    SourceTable,
    filter_views,
    find_file,
    locate_existing,
    missing_report,
    read_table,
    require_columns,
)
from cxrlab.data.sources.policies import check_policies, map_uncertain_labels
from cxrlab.errors import CxrlabError

CHEXPERT_CLASSES = ["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
                    "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
                    "Pleural Other", "Fracture", "Support Devices"]
REQUIRED = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA")
FRONTAL = ("AP", "PA")
PATH_PATTERN = r"(?P<patient>patient\d+)/(?P<study>study\d+)/"


def find_chexpert_files(root: Path, labels: str | Path | None) -> list[tuple[Path, str]]:
    """(label file, official split) pairs: ``--labels`` alone, else train.csv and valid.csv in ROOT or below."""
    if labels:
        return [(find_file(root, (), labels), "train_val")]
    for folder in [root, *sorted(p for p in root.glob("CheXpert-v1.0*") if p.is_dir())]:
        train, valid = find_file(folder, ("train.csv",)), find_file(folder, ("valid.csv",))
        if train or valid:
            return [(p, s) for p, s in ((train, "train_val"), (valid, "test")) if p is not None]
    raise CxrlabError(f"{root}: no train.csv or valid.csv found (looked in ROOT and CheXpert-v1.0*/); pass the "
                      "CheXpert folder as ROOT or --labels train.csv")


def _relative_paths(paths: pd.Series, root: Path) -> tuple[pd.Series, pd.Series]:
    """(path relative to ROOT, image id). The id drops the ``CheXpert-v1.0[-small]/`` prefix so that both
    downloads give the same ids; the path keeps it when ROOT is the folder above the dataset."""
    image_id = paths.str.replace(r"^CheXpert-v1\.0[^/]*/", "", regex=True)
    first = paths.iloc[0].split("/", 1)[0] if len(paths) else ""
    inside = not (root / first).is_dir() and first.startswith("CheXpert")
    return (image_id if inside else paths), image_id


def scan_chexpert(root: Path, *, labels: str | Path | None = None, views: list[str] | None = None,
                  uncertain: str | None = None, blank: str | None = None) -> SourceTable:
    """Index CheXpert under ``root``; see the module docstring for layout and policies."""
    uncertain, blank = check_policies(uncertain, blank)
    files = find_chexpert_files(root, labels)
    parts = []
    for path, split in files:
        raw = read_table(path)
        require_columns(path, raw, REQUIRED, "CheXpert")
        raw["_split"], raw["_line"], raw["_file"] = split, raw.index + 2, path.name
        parts.append(raw)
    raw = pd.concat(parts, ignore_index=True)
    classes = [c for c in CHEXPERT_CLASSES if c in raw.columns]
    if not classes:
        raise CxrlabError(f"{files[0][0]}: none of CheXpert's 14 observation columns found; check --format")
    frontal = raw["Frontal/Lateral"].fillna("").str.strip().str.lower() == "frontal"
    ap_pa = raw["AP/PA"].fillna("").str.strip().str.upper()
    raw["view"] = ap_pa.where(frontal, "LATERAL").replace("", "FRONTAL_UNKNOWN")
    n_rows = len(raw)
    raw, left_out, kept_views = filter_views(raw, views, FRONTAL)
    labels_frame, details = map_uncertain_labels(
        raw, classes, lambda i: f"{raw['_file'].iloc[i]}: row {raw['_line'].iloc[i]}", uncertain, blank)
    rel, image_id = _relative_paths(raw["Path"].fillna("").str.strip(), root)
    ids = image_id.str.extract(PATH_PATTERN)
    frame = pd.DataFrame({"image_id": image_id, "path": rel, "patient_id": ids["patient"].fillna(""),
                          "study_id": (ids["patient"] + "/" + ids["study"]).fillna("")})
    frame = pd.concat([frame, labels_frame], axis=1)
    frame["view"] = raw["view"]
    frame["sex"] = raw["Sex"].fillna("").str.strip().replace({"Male": "M", "Female": "F", "Unknown": ""})
    frame["age"] = pd.to_numeric(raw["Age"], errors="coerce").astype("Int64")
    frame["official_split"] = raw["_split"]
    table = SourceTable(frame, "multilabel", classes, "chexpert", inputs=[p for p, _ in files])
    present = locate_existing(root, frame["path"])
    missing_report(table, present, frame["image_id"], files[0][0], root)
    table.frame = frame[present.to_numpy()].reset_index(drop=True)
    no_label = table.frame[classes].isna().all(axis=1)
    table.problems.update({"unknown_labels": {}, "no_label": table.frame["image_id"][no_label].tolist()})
    table.counts.update({"rows": n_rows, "views_left_out": sum(left_out.values()),
                         "images_found": int(present.sum())})
    table.details = {"views": kept_views, "views_left_out": left_out, **details}
    table.extra_meta = {"policies": {"uncertain": uncertain, "blank": blank, "views": kept_views}}
    if left_out:
        table.warnings.append(f"{sum(left_out.values())} image(s) of other views left out ("
                              + ", ".join(f"{k}: {v}" for k, v in left_out.items()) + "); pass --views to keep them")
    return table
