"""Recognise a public dataset's own label file, so that ``--format csv`` names the adapter instead of guessing.

A generic labels CSV means one 0/1 cell per image and class. CheXpert's ``-1`` (uncertain), PadChest's
Python-list strings, VinDr's one row per reader and box, or patients that exist only inside the image paths
would all be read wrong by it (classes dropped, rows excluded, every image its own patient), so they are
refused with the ``--format`` that reads them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cxrlab.errors import CxrlabError

SIGNATURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("chexpert", ("Path", "Frontal/Lateral", "AP/PA")),
    ("mimic", ("subject_id", "study_id", "No Finding")),
    ("mimic", ("dicom_id", "subject_id", "study_id", "ViewPosition")),
    ("padchest", ("ImageID", "ImageDir", "Labels")),
    ("vindr", ("image_id", "class_name", "rad_id")),
    ("rsna", ("patientId", "Target")),
)
PATH_PATIENT = r"(?:^|/)(?:patient\d+|p\d{8})/"  # CheXpert patientNNNNN/, MIMIC pSUBJECT/


def detect_format(columns: list[str]) -> str | None:
    """The dataset adapter whose label file has these columns, or None."""
    have = set(columns)
    return next((fmt for fmt, needed in SIGNATURES if set(needed) <= have), None)


def refuse_dataset_format(csv_path: Path, raw: pd.DataFrame, classes: list[str] | None) -> None:
    """Raise when ``raw`` is a public dataset's label file or holds cells a generic CSV cannot mean."""
    fmt = detect_format(list(raw.columns))
    if fmt is not None:
        raise CxrlabError(f"{csv_path} is a {fmt} label file; index it with --format {fmt} (it reads "
                          f"{_what(fmt)}); --format csv would read it wrong")
    cols = classes or list(raw.columns)
    for c in cols:
        if c not in raw.columns:
            continue
        text = raw[c].dropna().astype(str).str.strip()
        if text.isin(["-1", "-1.0"]).any() and text.isin(["0", "1", "0.0", "1.0"]).any():
            raise CxrlabError(f"{csv_path}: column {c!r} holds -1 (CheXpert's 'uncertain'); use --format chexpert or "
                              "--format mimic (with --uncertain ignore|ones|zeros), or recode -1 as 0, 1 or blank")
        if len(text) and text.str.match(r"^\[\s*'").mean() > 0.5:
            raise CxrlabError(f"{csv_path}: column {c!r} holds Python-list strings like {text.iloc[0][:40]!r} "
                              "(PadChest's terms); use --format padchest, or write one 0/1 column per class")
    lower = {c.lower(): c for c in raw.columns}
    has_patient = any(k in lower for k in ("patient_id", "patient", "patient id", "patientid", "subject_id"))
    file_col = next((lower[k] for k in ("path", "filename", "file", "image", "image_path") if k in lower), None)
    if not has_patient and file_col is not None:
        paths = raw[file_col].dropna().astype(str)
        if len(paths) and paths.str.contains(PATH_PATIENT, regex=True).mean() > 0.5:
            raise CxrlabError(f"{csv_path}: the patient is in the image paths ({paths.iloc[0]}) and there is no "
                              "patient column; use --format chexpert or --format mimic, or add a patient_id column "
                              "(else every image counts as its own patient and splits leak)")


def _what(fmt: str) -> str:
    return {"chexpert": "-1 as uncertain, patients from paths, frontal views",
            "mimic": "study labels joined to images and views",
            "padchest": "the list of terms per image, projections",
            "vindr": "one row per reader, aggregated by a stated rule, and the boxes",
            "rsna": "Target per patientId and the boxes"}[fmt]
