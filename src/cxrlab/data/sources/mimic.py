"""MIMIC-CXR-JPG (PhysioNet): study labels joined to image metadata and the official split.

ROOT holds ``mimic-cxr-2.0.0-chexpert.csv`` (or ``-negbio.csv``; ``--labels`` picks one; ``.gz`` accepted):
``subject_id, study_id`` and the 14 CheXpert observations (1 / 0 / -1 / blank, mapped by the same
``--uncertain`` / ``--blank`` policies as CheXpert); ``mimic-cxr-2.0.0-metadata.csv`` (``dicom_id,
subject_id, study_id, ViewPosition``, ...); ``mimic-cxr-2.0.0-split.csv`` (``dicom_id, study_id,
subject_id, split`` with train / validate / test), and the images at
``files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg`` (XX = the first two digits of the subject id). Labels are per
study, so every image of a study gets the study's labels; the subject is the patient.
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
from cxrlab.data.sources.chexpert import CHEXPERT_CLASSES
from cxrlab.data.sources.policies import check_policies, map_uncertain_labels
from cxrlab.errors import CxrlabError

LABEL_FILES = ("mimic-cxr-2.0.0-chexpert.csv", "mimic-cxr-2.0.0-negbio.csv")
METADATA_FILE = "mimic-cxr-2.0.0-metadata.csv"
SPLIT_FILE = "mimic-cxr-2.0.0-split.csv"
FRONTAL = ("PA", "AP")
OFFICIAL = {"train": "train_val", "validate": "train_val", "test": "test"}


def _ids(col: pd.Series) -> pd.Series:
    """Subject/study ids as plain digit strings (the CSVs sometimes carry ``.0`` after a float round trip)."""
    return col.fillna("").astype(str).str.strip().str.replace(r"\.0$", "", regex=True)


def scan_mimic(root: Path, *, labels: str | Path | None = None, views: list[str] | None = None,
               uncertain: str | None = None, blank: str | None = None) -> SourceTable:
    """Index MIMIC-CXR-JPG under ``root``; see the module docstring for the files it needs."""
    uncertain, blank = check_policies(uncertain, blank)
    label_path = find_file(root, LABEL_FILES, labels)
    meta_path = find_file(root, (METADATA_FILE,))
    if label_path is None or meta_path is None:
        raise CxrlabError(f"{root}: MIMIC-CXR-JPG needs {LABEL_FILES[0]} (or -negbio) and {METADATA_FILE} in ROOT "
                          "(plain or .gz), as PhysioNet ships them")
    lab = read_table(label_path)
    require_columns(label_path, lab, ("subject_id", "study_id"), "MIMIC-CXR chexpert/negbio")
    classes = [c for c in CHEXPERT_CLASSES if c in lab.columns]
    if not classes:
        require_columns(label_path, lab, ("subject_id", "study_id", *CHEXPERT_CLASSES), "MIMIC-CXR chexpert/negbio")
    meta = read_table(meta_path)
    require_columns(meta_path, meta, ("dicom_id", "subject_id", "study_id", "ViewPosition"), "MIMIC-CXR metadata")
    lab["subject_id"], lab["study_id"] = _ids(lab["subject_id"]), _ids(lab["study_id"])
    dup = lab["study_id"].duplicated(keep=False)
    if dup.any():
        first = lab["study_id"][dup].iloc[0]
        raise CxrlabError(f"{label_path}: study {first} has {int((lab['study_id'] == first).sum())} label rows; "
                          "one row per study expected (a merged or edited file?)")
    lab["_line"] = lab.index + 2
    values, details = map_uncertain_labels(lab, classes, lambda i: f"{label_path.name}: row {lab['_line'].iloc[i]}",
                                           uncertain, blank)
    studies = pd.concat([lab[["study_id"]], values], axis=1).set_index("study_id")
    meta["subject_id"], meta["study_id"] = _ids(meta["subject_id"]), _ids(meta["study_id"])
    meta["dicom_id"] = meta["dicom_id"].fillna("").str.strip()
    meta["view"] = meta["ViewPosition"].fillna("").str.strip().str.upper()
    n_images = len(meta)
    meta, left_out, kept_views = filter_views(meta, views, FRONTAL)
    unlabelled = ~meta["study_id"].isin(studies.index)
    frame = pd.DataFrame({
        "image_id": meta["dicom_id"],
        "path": "files/p" + meta["subject_id"].str[:2] + "/p" + meta["subject_id"] + "/s" + meta["study_id"] + "/"
                + meta["dicom_id"] + ".jpg",
        "patient_id": meta["subject_id"], "study_id": meta["study_id"], "view": meta["view"]})
    frame = pd.concat([frame, studies.reindex(meta["study_id"]).reset_index(drop=True)], axis=1)
    inputs = [label_path, meta_path]
    split_path = find_file(root, (SPLIT_FILE,))
    if split_path is not None:
        split = read_table(split_path)
        require_columns(split_path, split, ("dicom_id", "split"), "MIMIC-CXR split")
        names = split["split"].fillna("").str.strip().str.lower()
        unknown = ~names.isin(list(OFFICIAL))
        if unknown.any():  # a typo would otherwise make an empty split, silently
            row = int(unknown.to_numpy().argmax())
            raise CxrlabError(f"{split_path} row {row + 2}: split {split['split'].iloc[row]!r} is not one of "
                              f"{', '.join(OFFICIAL)} ({int(unknown.sum())} such rows); fix the file, or remove it "
                              "and split with `cxrlab data split`")
        official = names.set_axis(split["dicom_id"].str.strip()).map(OFFICIAL)
        frame["official_split"] = frame["image_id"].map(official)
        inputs.append(split_path)
    table = SourceTable(frame, "multilabel", classes, "mimic", inputs=inputs)
    present = locate_existing(root, frame["path"])
    missing_report(table, present, frame["image_id"], meta_path, root)
    table.frame = frame[present.to_numpy()].reset_index(drop=True)
    unlabelled = unlabelled[present.to_numpy()].reset_index(drop=True)
    no_label = table.frame[classes].isna().all(axis=1) | unlabelled
    table.problems.update({"unknown_labels": {}, "no_label": table.frame["image_id"][no_label].tolist()})
    table.counts.update({"rows": n_images, "label_rows": len(lab), "views_left_out": sum(left_out.values()),
                         "images_found": int(present.sum()), "images_of_unlabelled_studies": int(unlabelled.sum())})
    table.details = {"views": kept_views, "views_left_out": left_out, "label_file": label_path.name, **details}
    table.extra_meta = {"policies": {"uncertain": uncertain, "blank": blank, "views": kept_views,
                                     "label_file": label_path.name}}
    if left_out:
        table.warnings.append(f"{sum(left_out.values())} image(s) of other views left out ("
                              + ", ".join(f"{k}: {v}" for k, v in left_out.items()) + "); pass --views to keep them")
    return table
