"""PadChest (``PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv`` + the numbered image folders).

Each row is one image: ``ImageID`` (a 16-bit PNG) in folder ``ImageDir`` (0..54, one per zip; a flat folder
of all PNGs, or ``images/``, works too), ``PatientID``, ``StudyID``, ``PatientSex_DICOM``, ``PatientBirth``
(year; age = study year - birth year), ``Projection`` (PA, AP, AP_horizontal, L, COSTAL ...), ``Labels`` (a
Python-list string of terms: ``['pneumonia', 'infiltrates']``; ``['normal']``; empty or ``nan`` when the
report gave none) and ``MethodLabel`` (``Physician`` or ``RNN_model``: kept as ``label_method``, counted).

``--terms all`` (default) keeps every term as a class (``normal`` becomes ``No Finding``); ``--terms
findings`` keeps the terms of the shared findings table under their canonical names and counts the rest
as unknown terms. A term absent from an image's list is a negative (PadChest's reports list what is seen).
Frontal projections (PA, AP, AP_horizontal) are kept by default.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlab.data.findings import FINDINGS, canonical, normalise
from cxrlab.data.sources import SourceTable, filter_views, find_file, missing_report, read_table, require_columns
from cxrlab.errors import CxrlabError

LABEL_FILE = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"
REQUIRED = ("ImageID", "ImageDir", "PatientID", "StudyID", "Projection", "Labels")
FRONTAL = ("PA", "AP", "AP_HORIZONTAL")
TERMS = ("all", "findings")
_TERM = re.compile(r"'([^']*)'")
_TERM_LIST = re.compile(r"^\[\s*('[^']*'\s*(,\s*'[^']*'\s*)*,?\s*)?\]$")  # ['a', 'b']: PadChest's Python list


def malformed_cells(labels: pd.Series) -> pd.Series:
    """True where a ``Labels`` cell is neither blank/``nan`` nor a list of quoted terms (a truncated or edited
    cell such as ``['pneumonia', 'infil`` would otherwise turn its debris into a class)."""
    text = labels.fillna("").astype(str).str.strip()
    return ~(text.isin(["", "nan"]) | text.str.match(_TERM_LIST))


def find_padchest_file(root: Path, labels: str | Path | None) -> Path:
    """``--labels`` or the PADCHEST_*.csv[.gz] in ROOT."""
    path = find_file(root, (LABEL_FILE,), labels)
    if path is None:
        found = sorted(root.glob("PADCHEST*.csv*"))
        if len(found) != 1:
            raise CxrlabError(f"{root}: no {LABEL_FILE} found (plain or .gz); pass --labels FILE")
        path = found[0]
    return path


def parse_terms(labels: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(list of stripped terms per row, True where the row has no usable list: blank, ``nan``, ``[]``)."""
    text = labels.fillna("").astype(str).str.strip()
    terms = text.map(lambda s: [t.strip() for t in _TERM.findall(s) if t.strip()])
    return terms, terms.map(len) == 0


def _term_matrix(terms: pd.Series, mode: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """(0/1 frame, one column per class, {unknown term: rows}) for ``mode`` all | findings."""
    exploded = terms.explode().dropna()
    if mode == "all":
        names = exploded.replace({"normal": "No Finding"})
        unknown: dict[str, int] = {}
    else:
        canon = exploded.map(lambda t: canonical(t) if canonical(t) and _is_padchest_spelling(t) else None)
        unknown = exploded[canon.isna()].value_counts().to_dict()
        names = canon.dropna()
    matrix = pd.crosstab(names.index, names).clip(upper=1) if len(names) else pd.DataFrame(index=[])
    matrix = matrix.reindex(terms.index, fill_value=0)
    counts = matrix.sum().sort_values(ascending=False, kind="stable")
    return matrix[counts.index.tolist()].astype(np.float64), {str(k): int(v) for k, v in unknown.items()}


def _is_padchest_spelling(term: str) -> bool:
    canon = canonical(term)
    return any(normalise(term) == normalise(n) for n in FINDINGS.get(canon, {}).get("padchest", ()))


def _locate(root: Path, image_dir: pd.Series, image_id: pd.Series) -> pd.Series:
    """Path of each image relative to ROOT (``ImageDir/ImageID``, else flat, else ``images/``), or NaN."""
    flat = {}
    for folder in ("", "images"):
        base = root / folder
        if base.is_dir():
            with os.scandir(base) as it:
                flat.update({e.name: f"{folder}/{e.name}".lstrip("/") for e in it if e.name.endswith(".png")})
    nested = image_dir.str.replace(r"\.0$", "", regex=True) + "/" + image_id
    base = str(root)
    found = nested.map(lambda p: p if os.path.isfile(os.path.join(base, p)) else None)
    return found.fillna(image_id.map(flat))


def scan_padchest(root: Path, *, labels: str | Path | None = None, views: list[str] | None = None,
                  terms: str | None = None) -> SourceTable:
    """Index PadChest under ``root``; see the module docstring."""
    mode = terms or "all"
    if mode not in TERMS:
        raise CxrlabError(f"--terms {mode!r} is not one of {', '.join(TERMS)}")
    path = find_padchest_file(root, labels)
    raw = read_table(path)
    require_columns(path, raw, REQUIRED, "PadChest")
    raw["view"] = raw["Projection"].fillna("").str.strip().str.upper()
    n_rows = len(raw)
    raw["_line"] = raw.index + 2  # the file's line, for messages (after the header)
    raw, left_out, kept_views = filter_views(raw, views, FRONTAL)
    term_lists, empty = parse_terms(raw["Labels"])
    bad = malformed_cells(raw["Labels"]).to_numpy()  # left out and counted, never parsed into classes
    term_lists = pd.Series([[] if b else t for t, b in zip(term_lists, bad)], index=term_lists.index, dtype=object)
    matrix, unknown = _term_matrix(term_lists, mode)
    classes = list(matrix.columns)
    image_id = raw["ImageID"].fillna("").str.strip()
    sex = raw.get("PatientSex_DICOM", pd.Series("", index=raw.index)).fillna("").str.strip()
    year = pd.to_numeric(raw.get("StudyDate_DICOM", pd.Series(dtype=str)).str[:4], errors="coerce")
    age = (year - pd.to_numeric(raw.get("PatientBirth"), errors="coerce")).round().astype("Int64")
    method = raw.get("MethodLabel", pd.Series("", index=raw.index)).fillna("").str.strip()
    labels = matrix.reset_index(drop=True)
    labels.loc[empty.to_numpy() | bad, classes] = np.nan  # no list: nothing known, reported as "no label"
    base = pd.DataFrame({"image_id": image_id, "path": _locate(root, raw["ImageDir"].fillna(""), image_id),
                         "patient_id": raw["PatientID"].fillna("").str.strip(),
                         "study_id": raw["StudyID"].fillna("").str.strip(), "view": raw["view"]})
    meta = pd.DataFrame({"sex": sex.where(sex.isin(["M", "F"]), ""), "age": age, "label_method": method})
    frame = pd.concat([base, labels, meta], axis=1)  # one concat: ~190 term columns
    table = SourceTable(frame, "multilabel", classes, "padchest", inputs=[path])
    present = frame["path"].notna()
    missing_report(table, present, frame["image_id"], path, root)
    table.frame = frame[present.to_numpy()].reset_index(drop=True)
    no_label = table.frame[classes].isna().all(axis=1) if classes else pd.Series(True, index=table.frame.index)
    bad_ids = set(image_id[bad])
    no_label &= ~table.frame["image_id"].isin(bad_ids)
    rnn = int((table.frame["label_method"] == "RNN_model").sum())
    table.problems.update({"unknown_labels": unknown, "no_label": table.frame["image_id"][no_label].tolist()})
    if bad.any():
        row = int(bad.argmax())
        table.problems.setdefault("exclude", {})["malformed Labels cell"] = sorted(bad_ids)
        table.warnings.append(f"{int(bad.sum())} row(s) with a malformed Labels cell left out (e.g. {path.name} "
                              f"row {raw['_line'].iloc[row]}, image {image_id.iloc[row]}: {raw['Labels'].iloc[row]!r})")
    table.counts.update({"rows": n_rows, "views_left_out": sum(left_out.values()), "images_found": int(present.sum()),
                         "rows_without_terms": int(empty.sum()), "labelled_by_rnn_model": rnn})
    table.details = {"views": kept_views, "views_left_out": left_out, "terms": mode, "n_terms": len(classes),
                     "unknown_terms": unknown, "labelled_by_rnn_model": rnn}
    table.extra_meta = {"policies": {"views": kept_views, "terms": mode, "absent_term": "negative"}}
    if left_out:
        table.warnings.append(f"{sum(left_out.values())} image(s) of other projections left out ("
                              + ", ".join(f"{k}: {v}" for k, v in left_out.items()) + "); pass --views to keep them")
    if rnn:
        table.warnings.append(f"{rnn} indexed image(s) were labelled by PadChest's RNN model, not a physician "
                              "(label_method column)")
    return table
