"""NIH ChestX-ray14 release layout: ``Data_Entry_2017*.csv`` + ``images/`` or ``images_001/images`` ...

Optional beside them: ``train_val_list.txt`` / ``test_list.txt`` (kept as an ``official_split`` column) and
``BBox_List_2017.csv`` (kept as the boxes table, 1024x1024 coordinates). Rows whose image is not on disk
(a partial download) are counted and reported, not errors.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlab.data.sources import SourceTable, list_images
from cxrlab.data.sources.google2019 import apply_google2019
from cxrlab.errors import CxrlabError

NIH_FINDINGS = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
                "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"]
NO_FINDING = "No Finding"
NIH_CLASSES = [*NIH_FINDINGS, NO_FINDING]
NIH_BOXES_IMAGE_SIZE = 1024
REQUIRED = ("Image Index", "Finding Labels", "Patient ID")


def find_data_entry(root: Path) -> Path:
    """The ``Data_Entry_2017*.csv`` in ``root`` (``_v2020`` preferred when both exist), else the one CSV with NIH's
    columns under another name (the Kaggle random sample's ``sample_labels.csv``, a renamed copy)."""
    found = sorted(root.glob("Data_Entry_2017*.csv"))
    if not found:
        relabels = ("google2019", "four_findings")  # Google's relabel files carry NIH's columns too
        found = [p for p in sorted(root.glob("*.csv")) if is_data_entry(p) and not p.name.startswith(relabels)]
        if len(found) > 1:
            raise CxrlabError(f"{root}: several CSVs have NIH's columns ({', '.join(p.name for p in found)}); "
                              "pass --labels FILE")
    if not found:
        raise CxrlabError(f"{root}: no Data_Entry_2017*.csv (or other CSV with NIH's 'Image Index' and 'Finding "
                          "Labels' columns) found; for --format nih, ROOT must be the NIH download folder")
    v2020 = [p for p in found if "v2020" in p.name]
    return (v2020 or found)[0]


def is_data_entry(path: Path) -> bool:
    """True when ``path`` is a CSV whose header has NIH's ``Image Index`` and ``Finding Labels``."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            header = f.readline()
    except (OSError, UnicodeDecodeError):  # missing, or not text (an image passed as --labels)
        return False
    return "Image Index" in header and "Finding Labels" in header


def parse_data_entry(csv_path: Path, drop_no_finding: bool = False) -> tuple[pd.DataFrame, list[str], dict]:
    """NIH metadata -> (frame [image_id, patient_id, classes..., follow_up, age, sex, view], classes, problems).

    ``problems``: ``unknown_labels`` {label: rows}. Reads 112,120 rows in about a second (vectorised).
    """
    try:
        raw = pd.read_csv(csv_path, dtype=str, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CxrlabError(f"{csv_path}: cannot parse NIH metadata ({exc}); is it Data_Entry_2017.csv?") from None
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise CxrlabError(f"{csv_path}: column(s) {', '.join(missing)} missing; expected NIH Data_Entry_2017 columns")
    classes = NIH_FINDINGS if drop_no_finding else NIH_CLASSES
    findings = raw["Finding Labels"].fillna("").str.replace(" ", "", regex=False)
    dummies = findings.str.get_dummies(sep="|")
    dummies.columns = [_canonical(c) for c in dummies.columns]
    dummies = dummies.T.groupby(level=0).max().T if dummies.columns.duplicated().any() else dummies
    unknown = {c: int(dummies[c].sum()) for c in dummies.columns if c not in NIH_CLASSES}
    frame = pd.DataFrame({"image_id": raw["Image Index"].str.strip(), "patient_id": _patient_ids(raw["Patient ID"])})
    for c in classes:
        frame[c] = dummies[c].to_numpy(dtype=np.int64) if c in dummies.columns else 0
    optional = {"Follow-up #": "follow_up", "Patient Age": "age", "Patient Gender": "sex", "View Position": "view"}
    for src, dst in optional.items():
        if src in raw.columns:
            frame[dst] = raw[src]
    if "age" in frame.columns:  # 2017 release writes ages like "058Y"
        frame["age"] = pd.to_numeric(frame["age"].str.extract(r"(\d+)", expand=False), errors="coerce").astype("Int64")
    if "follow_up" in frame.columns:
        frame["follow_up"] = pd.to_numeric(frame["follow_up"], errors="coerce").astype("Int64")
    no_label = frame["image_id"][findings == ""].tolist()
    return frame, list(classes), {"unknown_labels": unknown, "no_label": no_label}


_ALIASES = {"NoFinding": NO_FINDING, "Pleural_thickening": "Pleural_Thickening",
            "PleuralThickening": "Pleural_Thickening"}


def _canonical(label: str) -> str:
    return _ALIASES.get(label, label)


def _patient_ids(col: pd.Series) -> pd.Series:
    """NIH patient numbers as the 8-digit form used in file names (``00000001``)."""
    num = pd.to_numeric(col, errors="coerce")
    out = col.fillna("").astype(str).str.strip()
    ok = num.notna()
    out[ok] = num[ok].astype(np.int64).map(lambda v: f"{v:08d}")
    return out


def find_nih_images(root: Path) -> dict[str, str]:
    """Image file name -> path relative to ``root``, over ``images/``, ``images_*/images/``, ``images_*/``,
    ``sample/images/`` (Kaggle's random sample) and ROOT itself (a flattened download)."""
    folders = [root / "images", root / "sample" / "images", root / "sample"]
    with os.scandir(root) as it:
        for e in sorted(it, key=lambda e: e.name):
            if e.is_dir() and e.name.startswith("images_"):
                folders += [Path(e.path) / "images", Path(e.path)]
    found: dict[str, str] = {}
    for folder in [*folders, root]:
        rel = folder.relative_to(root).as_posix()
        for name in list_images(folder):
            found.setdefault(name, name if rel == "." else f"{rel}/{name}")
    return found


def read_official_lists(root: Path) -> dict[str, str] | None:
    """Image name -> ``train_val`` / ``test`` from NIH's list files, or None when absent."""
    mapping: dict[str, str] = {}
    for fname, split in (("train_val_list.txt", "train_val"), ("test_list.txt", "test")):
        path = root / fname
        if path.exists():
            for line in path.read_text(encoding="utf-8").split():
                mapping[line.strip()] = split
    return mapping or None


def scan_nih(root: Path, drop_no_finding: bool = False, labels: str | Path | None = None,
             labels_from: str | None = None, relabels: str | Path | None = None) -> SourceTable:
    """Index an NIH download folder; rows without an image are counted in ``counts['missing_images']``.

    ``labels_from="google2019"`` applies Google's adjudicated labels (``cxrlab.data.sources.google2019``).
    """
    csv_path = Path(labels) if labels else find_data_entry(root)
    if labels and not csv_path.is_absolute() and not csv_path.exists():
        csv_path = root / labels
    if not csv_path.exists():
        raise CxrlabError(f"{csv_path}: NIH metadata file not found; pass --labels Data_Entry_2017.csv")
    frame, classes, problems = parse_data_entry(csv_path, drop_no_finding)
    images = find_nih_images(root)
    if not images:
        raise CxrlabError(f"{root}: no images found in images/ or images_001/images ...; "
                          "unpack the NIH image archives into ROOT")
    paths = frame["image_id"].map(images)
    present = paths.notna()
    missing_rows = int((~present).sum())
    frame.insert(1, "path", paths)
    frame = frame[present].reset_index(drop=True)
    unlisted = sorted(set(images) - set(frame["image_id"]))
    extra = len(unlisted)
    table = SourceTable(frame, "multilabel", classes, "nih", inputs=[csv_path])
    official = read_official_lists(root)
    if official is not None:
        frame["official_split"] = frame["image_id"].map(official)
        table.inputs += [p for p in (root / "train_val_list.txt", root / "test_list.txt") if p.exists()]
    if (root / "BBox_List_2017.csv").exists():
        table.boxes, table.boxes_image_size = root / "BBox_List_2017.csv", NIH_BOXES_IMAGE_SIZE
    table.counts = {"rows": len(present), "images_found": int(present.sum()), "missing_images": missing_rows,
                    "files_not_in_csv": extra}
    present_ids = set(frame["image_id"])
    table.problems = {"unknown_labels": problems["unknown_labels"],
                      "no_label": [i for i in problems["no_label"] if i in present_ids],
                      "files_not_in_csv": [images[n] for n in unlisted]}
    if missing_rows:
        table.warnings.append(f"{missing_rows} of {len(present)} rows in {csv_path.name} have no image under {root} "
                              "(partial download?); they are not indexed")
    if extra:
        table.warnings.append(f"{extra} image file(s) under {root} are not listed in {csv_path.name} (named in "
                              "validation.md); not indexed")
    if labels_from:
        apply_google2019(table, root, labels_from, relabels)
    return table
