"""Dataset sources: each turns a dataset on disk into a ``SourceTable`` that ``build_index`` validates.

``nih`` (NIH ChestX-ray14 release layout), ``csv`` (a labels CSV beside the images), ``folder`` (one
sub-folder per class, optionally under split folders), ``phantom`` (the synthetic generator, indexed as
``csv``), and one adapter per public dataset: ``chexpert``, ``mimic``, ``padchest``, ``vindr``, ``rsna``.
Every adapter returns the same ``SourceTable``; what it decided (policies, views left out, uncertain counts,
unknown terms) goes into ``details`` and from there into ``index.json`` and the validation report.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cxrlab.data.headers import image_size
from cxrlab.errors import CxrlabError

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
    boxes_frame: pd.DataFrame | None = None  # boxes built by the adapter: image_id, label, x, y, w, h
    details: dict[str, Any] = field(default_factory=dict)  # what the adapter did (policies, views, terms)


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


def read_table(path: Path, **kwargs: Any) -> pd.DataFrame:
    """Read a CSV (plain or ``.gz``) as strings, with a one-line error when it is not a CSV."""
    try:
        return pd.read_csv(path, dtype=str, encoding="utf-8-sig", keep_default_na=False, na_values=[""], **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise CxrlabError(f"{path}: cannot parse as CSV ({str(exc).splitlines()[0]}); "
                          "pass the dataset's own label file, UTF-8, comma-separated") from None


def find_file(root: Path, names: tuple[str, ...], labels: str | Path | None = None) -> Path | None:
    """``labels`` when given (as is or under ROOT), else the first of ``names`` (or ``name.gz``) in ROOT."""
    if labels:
        for cand in (Path(labels), root / labels):
            if cand.is_file():
                return cand
        raise CxrlabError(f"--labels {labels}: file not found (looked as given and under {root})")
    for name in names:
        for cand in (root / name, root / f"{name}.gz"):
            if cand.is_file():
                return cand
    return None


def require_columns(path: Path, raw: pd.DataFrame, expected: tuple[str, ...] | list[str], fmt: str) -> None:
    """A label file of the wrong dataset is a one-line error listing expected and found columns."""
    missing = [c for c in expected if c not in raw.columns]
    if missing:
        found = ", ".join(list(raw.columns)[:12]) + (" ..." if raw.shape[1] > 12 else "")
        raise CxrlabError(f"{path}: not a {fmt} label file: expected column(s) {', '.join(expected)}; "
                          f"missing {', '.join(missing)}; found {found}. Check --format (or pass --labels FILE)")


def filter_views(table_frame: pd.DataFrame, views: list[str] | None, default: tuple[str, ...]
                 ) -> tuple[pd.DataFrame, dict[str, int], list[str]]:
    """Keep rows whose ``view`` is in ``views`` (default: ``default``, the frontal views).

    Returns (kept frame, {view: rows left out}, the views kept). Comparison is case-insensitive.
    """
    wanted = [v.strip().upper() for v in (views or default)]
    view = table_frame["view"].fillna("").astype(str).str.strip().str.upper()
    keep = view.isin(wanted)
    left_out = view[~keep].replace("", "(blank)").value_counts().to_dict()
    if len(view) and not keep.any():
        present = ", ".join(f"{k} ({v})" for k, v in list(left_out.items())[:6])
        raise CxrlabError(f"--views {','.join(wanted)} keeps none of the {len(view)} images; the views present are "
                          f"{present}: pass some of them to --views")
    return table_frame[keep].reset_index(drop=True), {str(k): int(v) for k, v in left_out.items()}, wanted


def keep_inside(table: SourceTable, root: Path) -> SourceTable:
    """Containment, for every adapter: drop the rows whose file resolves outside the dataset folder ``root``
    (``..``, an absolute path elsewhere, a symlink out), without opening them: counted (``outside_root``),
    listed in the validation report and named in a warning. Resolving follows links but reads no file."""
    base = root.resolve()

    def outside(rel: Any) -> bool:
        if not isinstance(rel, str) or not rel:
            return False  # no file: the missing-image report covers it
        try:
            return not Path(os.path.join(str(root), rel)).resolve().is_relative_to(base)
        except (OSError, RuntimeError):  # a link loop
            return True

    bad = table.frame["path"].map(outside).astype(bool).to_numpy()
    names = table.frame.loc[bad, "path"].astype(str).tolist()
    table.counts["outside_root"] = table.counts.get("outside_root", 0) + len(names)
    if names:
        table.problems["outside_root"] = [*table.problems.get("outside_root", []), *names]
        table.warnings.append(f"{len(names)} listed file(s) resolve outside the dataset folder {root} (.., absolute "
                              f"paths or symlinks; first: {names[0]}); they were not opened and are not indexed")
        table.frame = table.frame[~bad].reset_index(drop=True)
    return table


def locate_existing(root: Path, rel_paths: pd.Series) -> pd.Series:
    """Boolean Series: which relative paths exist under ``root`` (one stat per row, no decoding)."""
    base = str(root)
    return rel_paths.map(lambda p: isinstance(p, str) and os.path.isfile(os.path.join(base, p)))


def missing_report(table: SourceTable, present: pd.Series, ids: pd.Series, label_file: Path, root: Path) -> None:
    """Counts and one warning for rows whose image is not on disk (a partial download is not an error)."""
    missing = ids[~present.to_numpy()].tolist()
    table.problems["missing_images"] = missing[:50]
    table.counts["missing_images"] = len(missing)
    if missing:
        table.warnings.append(f"{len(missing)} of {len(present)} rows in {label_file.name} have no image under "
                              f"{root} (partial download?; first: {missing[0]}); they are not indexed")


def dicom_metadata(root: Path, rel_paths: pd.Series, workers: int = 4) -> pd.DataFrame:
    """``sex``, ``age``, ``view``, ``width``, ``height`` from the image headers (pixels not read).

    RSNA and VinDr keep sex, age and view only in their DICOMs; without them ``evaluate --by sex,age,view`` has
    nothing to group by, and VinDr's pixel boxes need each image's size. PNG/JPEG files give their size only.
    Files that cannot be read or lack a tag give empty cells (the validation reports unreadable files).
    """
    tags = ["PatientSex", "PatientAge", "ViewPosition", "Rows", "Columns"]
    nan = float("nan")

    def one(rel: str) -> tuple[str, float, str, float, float]:
        path = os.path.join(str(root), rel)
        try:
            with open(path, "rb") as f:
                head = f.read(132)
            if head[128:132] != b"DICM" and not rel.lower().endswith((".dcm", ".dicom")):
                size = image_size(Path(path), head)
                return "", nan, "", *(map(float, size) if size else (nan, nan))
            import pydicom

            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=tags)
        except Exception:  # noqa: BLE001 - unreadable / damaged / pydicom missing: metadata stays empty
            return "", nan, "", nan, nan
        age = "".join(ch for ch in str(getattr(ds, "PatientAge", "")) if ch.isdigit())
        return (str(getattr(ds, "PatientSex", "")).strip().upper(), float(age) if age else nan,
                str(getattr(ds, "ViewPosition", "")).strip().upper(), float(getattr(ds, "Columns", nan) or nan),
                float(getattr(ds, "Rows", nan) or nan))

    with ThreadPoolExecutor(workers) as pool:
        rows = list(pool.map(one, rel_paths.astype(str)))
    frame = pd.DataFrame(rows, columns=["sex", "age", "view", "width", "height"], index=rel_paths.index)
    frame["sex"] = frame["sex"].where(frame["sex"].isin(["M", "F"]), "")
    frame["age"] = frame["age"].round().astype("Int64")
    return frame
