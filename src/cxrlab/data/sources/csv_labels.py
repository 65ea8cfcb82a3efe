"""Generic labels CSV: a file column plus one-hot class columns, one class column, or a ``|``-separated column.

The file column is the first of ``filename, file, path, image, image_id, Image Index, ...``; the patient column
the first of ``patient_id, patient, Patient ID, subject_id``. Class columns are the columns whose values are
mostly 0/1/empty, excluding known metadata (``follow_up``, ``age``, ``weight`` ...), unless ``classes`` names
them; any other value in a class column (``2``, ``yes``, ``-1``) is an error naming the row and the column,
never a dropped class. Rows that repeat an image with different labels are an error; identical repeats are
excluded and counted by the validation. The task is inferred (exactly one class per row = multiclass) unless
given. Images are looked up beside the CSV, under ROOT, or under ``images/``. A file in a public dataset's
own format (CheXpert's ``-1``, PadChest's list strings, patients only in the paths ...) is refused with the
name of the adapter that reads it (``cxrlab.data.sources.detect``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxrlab.data.sources import SPLIT_NAMES, SourceTable, list_images
from cxrlab.data.sources.detect import refuse_dataset_format
from cxrlab.errors import CxrlabError
from cxrlab.utils import read_json

FILE_COLUMNS = ("filename", "file", "path", "image", "image_id", "image index", "img", "file_name", "image_path",
                "imagefile", "dicom")
PATIENT_COLUMNS = ("patient_id", "patient", "patient id", "patientid", "subject_id", "subject")
LABEL_COLUMNS = ("label", "labels", "class", "finding labels", "finding", "findings", "diagnosis", "target")
METADATA = {"view": "view", "view position": "view", "age": "age", "patient age": "age", "sex": "sex",
            "gender": "sex", "patient gender": "sex", "follow_up": "follow_up", "follow-up #": "follow_up",
            "source": "source", "weight": "weight"}
NOT_CLASSES = {*METADATA, "split", "fold", "license", "id", "index", "offset"}


def find_labels_csv(root: Path, labels: str | Path | None) -> Path:
    """The labels CSV: ``labels`` (as given, or relative to ROOT), else ROOT/labels.csv, else the single CSV."""
    if labels:
        for cand in (Path(labels), root / labels):
            if cand.is_file():
                return cand
        raise CxrlabError(f"--labels {labels}: file not found (looked as given and under {root})")
    if root.is_file() and root.suffix.lower() == ".csv":
        return root
    if (root / "labels.csv").is_file():
        return root / "labels.csv"
    csvs = [p for p in sorted(root.glob("*.csv")) if not p.name.startswith("BBox_List")]
    if len(csvs) == 1:
        return csvs[0]
    found = ", ".join(p.name for p in csvs) or "none"
    raise CxrlabError(f"{root}: cannot tell which CSV holds the labels (found: {found}); pass --labels FILE")


def _pick(columns: list[str], names: tuple[str, ...]) -> str | None:
    lower = {c.lower().strip(): c for c in columns}
    return next((lower[n] for n in names if n in lower), None)


def parse_labels_csv(csv_path: Path, task: str | None = None, classes: list[str] | None = None
                     ) -> tuple[pd.DataFrame, str, list[str], dict]:
    """Labels CSV -> (frame [image_id, file, patient_id, classes..., metadata], task, classes, problems)."""
    try:
        raw = pd.read_csv(csv_path, dtype=str, encoding="utf-8-sig", keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CxrlabError(f"{csv_path}: cannot parse labels CSV ({exc}); save it as UTF-8 comma-separated") from None
    cols = list(raw.columns)
    refuse_dataset_format(csv_path, raw, classes)
    file_col = _pick(cols, FILE_COLUMNS)
    if file_col is None:
        raise CxrlabError(f"{csv_path}: no file column; name one of {', '.join(FILE_COLUMNS[:5])} (columns: {cols})")
    patient_col = _pick(cols, PATIENT_COLUMNS)
    frame = pd.DataFrame({"image_id": raw[file_col].fillna("").str.strip()})
    frame["file"] = frame["image_id"]
    frame["patient_id"] = raw[patient_col].fillna("").str.strip() if patient_col else ""
    label_col = _pick(cols, LABEL_COLUMNS)
    skip = {file_col, patient_col, label_col}
    if classes is None and label_col is None:
        classes = [c for c in cols if c not in skip and c.lower().strip() not in NOT_CLASSES and _is_binary(raw[c])]
    if label_col is not None and not (classes and all(c in cols for c in classes)):
        onehot, classes, problems = _from_label_column(raw[label_col], classes, task)
    else:
        if not classes:
            raise CxrlabError(f"{csv_path}: no class columns found (0/1 columns or a label column); "
                              "add one-hot columns or a 'label' column")
        missing = [c for c in classes if c not in cols]
        if missing:
            raise CxrlabError(f"{csv_path}: class column(s) {missing} not in the CSV (columns: {cols})")
        onehot = _strict_binary(raw, classes, csv_path)
        problems = {"unknown_labels": {}}
    for c in classes:
        frame[c] = onehot[c].to_numpy()
    _check_duplicates(frame, classes, csv_path)
    task = _infer_task(frame[classes], task, csv_path)
    empty = frame[classes].isna().all(axis=1)
    if task == "multiclass":
        empty |= frame[classes].fillna(0).sum(axis=1) == 0
    problems["no_label"] = frame["image_id"][empty].tolist()
    problems["unused_columns"] = [c for c in cols if c not in skip and c not in classes
                                  and c.lower().strip() not in NOT_CLASSES]
    _add_metadata(frame, raw, skip)
    return frame, task, list(classes), problems


BINARY = {"0": 0.0, "1": 1.0, "0.0": 0.0, "1.0": 1.0}
CLASS_SHARE = 0.5  # a column is a class column when at least this share of its cells are 0/1


def _is_binary(col: pd.Series) -> bool:
    """Mostly 0/1: a class column, whose few other cells are then errors rather than a reason to drop it."""
    values = col.dropna().str.strip()
    return bool(len(values)) and values.isin(list(BINARY)).mean() >= CLASS_SHARE


def _strict_binary(raw: pd.DataFrame, classes: list[str], csv_path: Path) -> pd.DataFrame:
    """The class columns as 1/0/NaN; any other cell is an error naming its row and column."""
    out = {}
    for c in classes:
        text = raw[c].fillna("").astype(str).str.strip()
        values = text.map(BINARY)
        bad = values.isna() & (text != "")
        if bad.any():
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            raise CxrlabError(f"{csv_path}: row {pos + 2}, column {c!r}: value {text.iloc[pos]!r} is not 0, 1 or blank "
                              f"({int(bad.sum())} such cell(s) in the column); fix them (a class is never dropped)")
        out[c] = values.to_numpy(dtype=np.float64)
    return pd.DataFrame(out, index=raw.index)


def _check_duplicates(frame: pd.DataFrame, classes: list[str], csv_path: Path) -> None:
    """Rows repeating an image id with different labels are an error (which one is right is not ours to guess)."""
    dup = frame["image_id"].duplicated(keep=False) & (frame["image_id"] != "")
    if not dup.any():
        return
    rows = frame.loc[dup, ["image_id", *classes]].fillna(-9)
    distinct = rows.drop_duplicates()
    conflict = distinct["image_id"].duplicated(keep=False)
    if conflict.any():
        image_id = distinct.loc[conflict, "image_id"].iloc[0]
        lines = (np.flatnonzero((frame["image_id"] == image_id).to_numpy()) + 2).tolist()
        raise CxrlabError(f"{csv_path}: image {image_id!r} has conflicting label rows (rows {lines}); keep one row "
                          "per image")


def _from_label_column(col: pd.Series, classes: list[str] | None, task: str | None):
    text = col.fillna("").astype(str).str.strip()
    multi = task == "multilabel" or (task is None and text.str.contains("|", regex=False).any())
    dummies = text.str.get_dummies(sep="|") if multi else pd.get_dummies(text).astype(int)
    dummies = dummies.drop(columns=[""], errors="ignore")
    found = sorted(dummies.columns)
    classes = list(classes) if classes else found
    unknown = {c: int(dummies[c].sum()) for c in found if c not in classes}
    onehot = pd.DataFrame({c: dummies[c] if c in dummies else 0 for c in classes}, index=col.index).astype(float)
    onehot[text == ""] = np.nan
    return onehot, classes, {"unknown_labels": unknown}


def _infer_task(labels: pd.DataFrame, task: str | None, csv_path: Path) -> str:
    sums = labels.fillna(0).sum(axis=1)
    labelled = sums[sums > 0]  # rows with no class set are reported as "no label", not counted here
    one_per_row = bool(len(labelled)) and bool((labelled == 1).all())
    if task is None:
        return "multiclass" if one_per_row else "multilabel"
    if task not in ("multiclass", "multilabel"):
        raise CxrlabError(f"--task {task!r} is not one of multilabel, multiclass")
    if task == "multiclass" and not one_per_row and len(labelled):
        bad = labelled.index[labelled != 1][0]
        raise CxrlabError(f"{csv_path}: row {bad + 2} has {int(labelled[bad])} classes set but "
                          "--task multiclass needs exactly one; fix the row or use --task multilabel")
    return task


def _add_metadata(frame: pd.DataFrame, raw: pd.DataFrame, skip: set) -> None:
    for c in raw.columns:
        key = c.lower().strip()
        if c in skip:
            continue
        if key in METADATA and METADATA[key] not in frame.columns:
            frame[METADATA[key]] = raw[c]
        elif key == "split":
            frame["given_split"] = raw[c].str.strip().str.lower().map(lambda s: SPLIT_NAMES.get(s, s))


def scan_csv(root: Path, labels: str | Path | None = None, task: str | None = None,
             classes: list[str] | None = None) -> SourceTable:
    """Index a labels CSV and the images it names; rows whose file is missing are counted, not errors."""
    csv_path = find_labels_csv(root, labels)
    if root.is_file():
        root = csv_path.parent
    frame, task, classes, problems = parse_labels_csv(csv_path, task, classes)
    bases = [csv_path.parent, root, root / "images", csv_path.parent / "images"]
    paths = [_locate(f, bases) for f in frame["file"]]
    present = np.array([p is not None for p in paths], dtype=bool)
    frame.insert(1, "path", [_rel(p, root) if p else None for p in paths])
    missing = frame["image_id"][~present].tolist()
    frame = frame[present].drop(columns="file").reset_index(drop=True)
    table = SourceTable(frame, task, classes, "csv", inputs=[csv_path])
    table.counts = {"rows": len(present), "images_found": int(present.sum()), "missing_images": len(missing)}
    table.problems = {**problems, "missing_images": missing[:50]}
    if problems.get("unused_columns"):
        table.warnings.append(f"column(s) not used as classes or metadata: {', '.join(problems['unused_columns'])} "
                              "(not mostly 0/1); pass --classes to choose the class columns")
    if missing:
        table.warnings.append(f"{len(missing)} of {len(present)} rows in {csv_path.name} name a file that does not "
                              f"exist (first: {missing[0]}); they are not indexed")
    _unlisted(table, [p for p in paths if p is not None], bases, root)
    _attach_boxes(table, csv_path.parent)
    return table


def _unlisted(table: SourceTable, used: list[Path], bases: list[Path], root: Path) -> None:
    """Image files beside the CSV (its folder, ROOT, ``images/``) that no row names: counted and named."""
    seen = {p.resolve() for p in used}
    found = {p.resolve() for base in dict.fromkeys(bases) for p in list_images(base).values()}
    unlisted = sorted(_rel(p, root.resolve()) for p in found - seen)
    table.counts["files_not_in_csv"] = len(unlisted)
    table.problems["files_not_in_csv"] = unlisted
    if unlisted:
        table.warnings.append(f"{len(unlisted)} image file(s) beside the labels are not listed in it (named in "
                              "validation.md); not indexed")


def _locate(name: str, bases: list[Path]) -> Path | None:
    if not name:
        return None
    p = Path(name)
    if p.is_absolute():
        return p if p.is_file() else None
    return next((b / p for b in bases if (b / p).is_file()), None)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path.resolve())


def _attach_boxes(table: SourceTable, folder: Path) -> None:
    boxes = folder / "BBox_List_2017.csv"
    if not boxes.exists():
        return
    table.boxes = boxes
    info = folder / "phantom.json"
    if info.exists():
        meta = read_json(info, kind=dict, fix="restore it, or make the phantom again with `cxrlab data phantom`")
        table.boxes_image_size = int(meta.get("boxes_image_size", meta.get("size", 0))) or None
        table.extra_meta["phantom"] = {k: meta[k] for k in ("seed", "contrast", "size", "n") if k in meta}
        table.inputs.append(info)
    else:
        table.warnings.append(f"{boxes} found but its image size is unknown; boxes_image_size left empty")
