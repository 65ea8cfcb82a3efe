"""Image folders: ``ROOT/<class>/<image>`` (ImageFolder style) or ``ROOT/<split>/<class>/<image>``.

Class folder names become the classes (multi-class). Split folders (``train``, ``valid``/``val``, ``test``)
are recognised; with ``keep_split`` the folder split is written as a ``given_split`` column. Folders carry no
patient ids: ``patients_from`` (an NIH ``Data_Entry`` CSV) joins them by file name, else each image is its own
patient and a warning says leakage cannot be ruled out.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from cxrlab.data.sources import SPLIT_NAMES, SourceTable, list_images
from cxrlab.errors import CxrlabError


def _subdirs(folder: Path) -> list[Path]:
    with os.scandir(folder) as it:
        return sorted(Path(e.path) for e in it if e.is_dir() and not e.name.startswith("."))


def _walk(root: Path) -> list[tuple[str | None, str, Path]]:
    """(split or None, class, file) for every image under the layout."""
    top = _subdirs(root)
    if not top:
        raise CxrlabError(f"{root}: no sub-folders; --format folder expects ROOT/<class>/<images> "
                          "or ROOT/<split>/<class>/<images>")
    nested = all(d.name.lower() in SPLIT_NAMES for d in top)
    items = []
    for d in top:
        split = SPLIT_NAMES[d.name.lower()] if nested else None
        for class_dir in _subdirs(d) if nested else [d]:
            items += [(split, class_dir.name, p) for p in sorted(list_images(class_dir).values())]
    if not items:
        raise CxrlabError(f"{root}: no image files found in its class folders (looked for .png/.jpg/.dcm ...)")
    return items


def scan_folder(root: Path, keep_split: bool = False, patients_from: str | Path | None = None) -> SourceTable:
    """Index a class-folder tree; see the module docstring for the layouts."""
    items = _walk(root)
    classes = sorted({c for _, c, _ in items})
    names = [p.name for _, _, p in items]
    rel = [p.relative_to(root).as_posix() for _, _, p in items]
    # File names are the natural ids (they join with NIH metadata); fall back to paths when they collide.
    unique_names = len(set(names)) == len(names)
    frame = pd.DataFrame({"image_id": names if unique_names else rel, "path": rel, "patient_id": ""})
    for c in classes:
        frame[c] = [int(cls == c) for _, cls, _ in items]
    table = SourceTable(frame, "multiclass", classes, "folder")
    if not unique_names:
        table.warnings.append("some file names repeat across folders; image ids are relative paths instead")
    if keep_split:
        if items[0][0] is None:
            raise CxrlabError(f"{root}: --keep-split given but there are no split folders (train/valid/test)")
        frame["given_split"] = [s for s, _, _ in items]
    if patients_from:
        _join_patients(table, Path(patients_from), names)
    table.counts = {"rows": len(frame), "images_found": len(frame), "missing_images": 0,
                    "class_folders": len(classes)}
    return table


def _join_patients(table: SourceTable, csv_path: Path, names: list[str]) -> None:
    """Fill patient ids (and NIH metadata) from a Data_Entry CSV, matching on file name."""
    from cxrlab.data.sources.nih import is_data_entry, parse_data_entry

    if not csv_path.is_file():
        raise CxrlabError(f"--patients-from {csv_path}: file not found; pass NIH's Data_Entry_2017*.csv")
    if not is_data_entry(csv_path):
        raise CxrlabError(f"--patients-from {csv_path}: not an NIH Data_Entry CSV (needs 'Image Index' and "
                          "'Finding Labels' columns)")
    meta, _, _ = parse_data_entry(csv_path)
    meta = meta.drop_duplicates("image_id").set_index("image_id")
    frame = table.frame
    key = pd.Series(names, index=frame.index)
    frame["patient_id"] = key.map(meta["patient_id"]).fillna("")
    for col in ("follow_up", "age", "sex", "view"):
        if col in meta.columns:
            frame[col] = key.map(meta[col])
    unmatched = int((frame["patient_id"] == "").sum())
    table.inputs.append(csv_path)
    if unmatched:
        table.warnings.append(f"{unmatched} image(s) not found in {csv_path.name}; their patient is unknown")
