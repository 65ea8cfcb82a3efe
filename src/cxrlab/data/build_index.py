"""Build a validated index from a dataset on disk, and read labels without touching images.

``build_index`` runs a source (``nih``, ``csv``, ``folder``), validates it (``cxrlab.data.validate``) and
writes ``index.csv``, ``index.json``, ``validation.json`` and ``validation.md`` (plus ``boxes.csv`` when the
source has a boxes table). ``read_labels`` is what evaluation uses to read ground truth from an index, an
NIH ``Data_Entry_2017*.csv`` or a labels CSV.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from cxrlab.data.index import Index, load_index, write_index
from cxrlab.data.sources import SourceTable, keep_inside
from cxrlab.errors import CxrlabError

FORMATS = ("nih", "csv", "folder", "chexpert", "mimic", "padchest", "vindr", "rsna")
BOXES_FILE = "boxes.csv"
# Options each format accepts (besides ``labels``); anything else given is an error, not silently ignored.
OPTIONS = {"nih": ("drop_no_finding", "labels_from", "relabels"), "csv": ("task", "classes"),
           "folder": ("keep_split", "patients_from"), "chexpert": ("views", "uncertain", "blank"),
           "mimic": ("views", "uncertain", "blank"), "padchest": ("views", "terms"), "vindr": ("readers",),
           "rsna": ()}


def _adapter(fmt: str):
    """The scan function of a format (imported lazily: each adapter is its own module)."""
    from importlib import import_module

    module = {"nih": "nih", "csv": "csv_labels", "folder": "folder"}.get(fmt, fmt)
    name = {"csv": "scan_csv"}.get(fmt, f"scan_{fmt}")
    return getattr(import_module(f"cxrlab.data.sources.{module}"), name)


def scan_source(root: str | Path, fmt: str, labels: str | Path | None = None, **opts: Any) -> SourceTable:
    """Run one source over ``root`` (no validation, nothing written). Options left at None/False are dropped;
    an option the format does not take is a one-line error."""
    root = Path(root)
    if fmt not in FORMATS:
        raise CxrlabError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if not root.exists():
        raise CxrlabError(f"{root}: dataset folder does not exist; check the ROOT path")
    given = {k: v for k, v in opts.items() if v not in (None, False)}
    wrong = [k for k in given if k not in OPTIONS[fmt]]
    if wrong:
        names = ", ".join("--" + k.replace("_", "-") for k in wrong)
        takes = ", ".join("--" + k.replace("_", "-") for k in OPTIONS[fmt]) or "no extra options"
        raise CxrlabError(f"{names} does not apply to --format {fmt} (it takes {takes}); drop it or change --format")
    if fmt != "csv" and not root.is_dir():
        raise CxrlabError(f"{root}: --format {fmt} needs the dataset folder, not a file")
    if fmt == "folder":
        if labels:
            raise CxrlabError("--labels does not apply to --format folder (classes are the folder names)")
        table = _adapter(fmt)(root, **given)
    else:
        table = _adapter(fmt)(root, labels=labels, **given)
    # every adapter's rows pass containment before anything opens or hashes a file
    return keep_inside(table, table.inputs[0].parent if root.is_file() and table.inputs else root)


def build_index(root: str | Path, fmt: str, out_dir: str | Path, labels: str | Path | None = None,
                check_decode: bool = False, hash_files: bool = True, workers: int | None = None, **source_opts: Any
                ) -> tuple[Index, dict[str, Any]]:
    """Build, validate and write an index; returns ``(index, validation report)``.

    Args:
        root: dataset folder (or, for ``csv``, the labels CSV itself).
        fmt: one of ``FORMATS`` (``nih``, ``csv``, ``folder`` or a dataset adapter).
        out_dir: where ``index.csv``, ``index.json`` and the validation report go.
        labels: labels/metadata CSV (``csv``: default ROOT/labels.csv or the single CSV; ``nih``: default
            the ``Data_Entry_2017*.csv`` in ROOT).
        check_decode: fully decode every image (slow) besides the header + hash + colour checks.
        hash_files: sha256 every file (finds exact duplicates; reads every byte).
        **source_opts: per format, see ``OPTIONS`` (e.g. ``views``, ``uncertain``, ``blank`` for chexpert).
    Raises:
        CxrlabError: on unusable input (after writing the validation report when it got that far).
    """
    from cxrlab.data.validate import validate_table, write_report

    root, out_dir = Path(root), Path(out_dir)
    table = scan_source(root, fmt, labels=labels, **source_opts)
    data_root = table.inputs[0].parent if root.is_file() else root
    frame, report = validate_table(table, data_root, check_decode=check_decode, hash_files=hash_files,
                                   workers=workers)
    out_dir.mkdir(parents=True, exist_ok=True)
    report_path = write_report(report, out_dir)
    report["report_path"] = str(report_path)
    if report["errors"]:
        raise CxrlabError(f"{root}: index unusable ({'; '.join(report['errors'])}); see {report_path}")
    meta = {
        "format": table.fmt, "counts": report["counts"], "boxes": None, "boxes_image_size": None,
        "inputs_sha256": _inputs_sha256(table.inputs), "warnings": report["warnings"],
        "source_files": [str(p.resolve()) for p in [*table.inputs, *([table.boxes] if table.boxes else [])]],
        "validation": "validation.json", **table.extra_meta,
    }
    if table.boxes is not None:
        meta["boxes"], meta["boxes_image_size"] = _copy_boxes(table.boxes, out_dir), table.boxes_image_size
    elif table.boxes_frame is not None and len(table.boxes_frame):
        from cxrlab.data.boxes import write_boxes

        boxes = table.boxes_frame[table.boxes_frame["image_id"].isin(set(frame["image_id"]))]  # excluded: no boxes
        write_boxes(boxes, out_dir / BOXES_FILE)
        meta["boxes"], meta["boxes_image_size"] = BOXES_FILE, table.boxes_image_size
    index = Index(frame, table.task, table.classes, data_root.resolve(), meta)
    write_index(index, out_dir)
    return index, report


def _inputs_sha256(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _copy_boxes(src: Path, out_dir: Path) -> str:
    """Normalise the source boxes table into ``out_dir/boxes.csv`` (NIH layout, all rows kept)."""
    from cxrlab.data.boxes import read_boxes, write_boxes

    write_boxes(read_boxes(src), out_dir / BOXES_FILE)
    return BOXES_FILE


def read_labels(path: str | Path, drop_no_finding: bool = False, task: str | None = None) -> Index:
    """Labels alone, without touching images: an index (folder or ``index.csv``), an NIH ``Data_Entry`` CSV
    or a generic labels CSV. Paths in the result are not checked.

    ``task`` (e.g. from the predictions' sidecar) is used for a labels CSV instead of inferring it; an inferred
    task is marked ``task_inferred`` in the meta so that evaluation can defer to the predictions'."""
    from cxrlab.data.sources.csv_labels import parse_labels_csv
    from cxrlab.data.sources.nih import is_data_entry, parse_data_entry

    path = Path(path)
    if path.is_dir() or path.name == "index.csv" or (path.with_suffix(".json").exists() and path.suffix == ".csv"
                                                     and _is_index_csv(path)):
        index = load_index(path)
        if drop_no_finding and "No Finding" in index.classes:
            index.classes = [c for c in index.classes if c != "No Finding"]
        return index
    if not path.is_file():
        raise CxrlabError(f"{path}: labels file not found; pass an index folder, index.csv, "
                          "NIH Data_Entry CSV or labels CSV")
    if is_data_entry(path):
        frame, classes, _ = parse_data_entry(path, drop_no_finding)
        frame.insert(1, "path", frame["image_id"])
        return Index(frame, "multilabel", classes, path.parent.resolve(), {"format": "nih", "labels": str(path)})
    frame, found_task, classes, _ = parse_labels_csv(path, task=task)
    frame = frame.rename(columns={"file": "path"})
    frame["patient_id"] = frame["patient_id"].where(frame["patient_id"] != "", frame["image_id"])
    return Index(frame, found_task, classes, path.parent.resolve(),
                 {"format": "csv", "labels": str(path), "task_inferred": task is None})


def _is_index_csv(path: Path) -> bool:
    with open(path, encoding="utf-8") as f:
        return f.readline().startswith("image_id,path,patient_id")
