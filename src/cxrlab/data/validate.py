"""Validate a source table before it becomes an index, and write ``validation.json`` + ``validation.md``.

Checks: zero-byte files, unreadable or truncated files (PNG must end with its IEND chunk, JPEG with its EOI
marker, or the file must decode), images that are not X-ray-like (colour photos: every colour PNG/JPEG is
decoded at reduced size and its saturation measured), duplicate image ids, exact duplicate files (sha256
groups), unknown labels, rows with no label, missing patient ids (patient = image, with a warning).
Every file is hashed (``hash_files=False`` skips that: no duplicate detection, but a full 45 GB NIH
download is then checked by reading a few KB per file). A full decode of every image is opt-in
(``check_decode``) because it costs ~15 ms per 1024x1024 PNG. Failing rows are excluded from the index and
listed by reason, never dropped silently.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from cxrlab.data.headers import PNG_MAGIC, size_problem
from cxrlab.data.images import looks_like_xray, read_image
from cxrlab.data.sources import SourceTable
from cxrlab.errors import CxrlabError
from cxrlab.utils import atomic_write_text, write_json

MAX_SIDE = 16384  # pixels per side; chest X-rays are at most ~4,300 (a 40000x40000 file is a mistake or a bomb)
PNG_END = b"IEND\xaeB`\x82"
LIST_LIMIT = 100  # ids listed per problem in the report (counts are always complete)


def check_file(path: Path, check_decode: bool = False, hash_file: bool = True) -> tuple[str | None, str | None]:
    """(sha256 or None, problem) for one image file; problem is None when it passes.

    Without ``hash_file`` only the first and last bytes are read (colour images are still read in full).
    """
    try:
        data, head, tail = _read_ends(path, whole=hash_file)
    except OSError as exc:
        return None, f"unreadable: {exc.strerror}"
    if not head:
        return None, "zero-byte file"
    digest = hashlib.sha256(data).hexdigest() if data is not None else None
    problem = _header_problem(path, head, tail)
    if problem is None:
        problem = size_problem(path, head, MAX_SIDE, data)
    if problem is None and _maybe_colour(head):
        data = data if data is not None else path.read_bytes()
        try:
            rgb = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_COLOR_4)
        except cv2.error:  # OpenCV asserts on some malformed files; say it in plain words
            rgb = None
        if rgb is None:
            problem = "unreadable: does not decode"
        else:
            ok, reason = looks_like_xray(rgb)
            problem = None if ok else f"not X-ray-like: {reason}"
    if problem is None and check_decode:
        try:
            ok, reason = looks_like_xray(read_image(path))
            problem = None if ok else f"not X-ray-like: {reason}"
        except CxrlabError as exc:
            problem = f"unreadable: {str(exc).split(': ', 1)[-1]}"
        except Exception as exc:  # noqa: BLE001 - decoder internals (cv2.error, pydicom) become one plain line
            problem = f"unreadable: the image decoder could not read it ({type(exc).__name__})"
    return digest, problem


def _read_ends(path: Path, whole: bool) -> tuple[bytes | None, bytes, bytes]:
    """(whole file or None, first 132 bytes, last 4096 bytes)."""
    if whole:
        data = path.read_bytes()
        return data, data[:132], data[-4096:]
    with open(path, "rb") as f:
        head = f.read(132)
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 4096))
        return None, head, f.read()


def _header_problem(path: Path, head: bytes, tail: bytes) -> str | None:
    if head.startswith(PNG_MAGIC):
        return None if tail.rstrip(b"\x00")[-8:] == PNG_END else "truncated: PNG has no IEND chunk"
    if head.startswith(b"\xff\xd8"):
        return None if b"\xff\xd9" in tail else "truncated: JPEG has no end marker"
    if head[128:132] == b"DICM" or path.suffix.lower() in (".dcm", ".dicom"):
        return None
    if head[:4] in (b"II*\x00", b"MM\x00*") or head[:2] == b"BM":
        return None
    return "unreadable: not a PNG, JPEG, TIFF, BMP or DICOM file"


def _maybe_colour(data: bytes) -> bool:
    """Colour PNGs (colour types 2, 3, 6) and all JPEGs are decoded to check saturation."""
    if data.startswith(PNG_MAGIC):
        return len(data) > 25 and data[25] in (2, 3, 6)
    return data.startswith(b"\xff\xd8")


def _check_all(paths: list[Path], check_decode: bool, hash_files: bool, workers: int | None
               ) -> list[tuple[str | None, str | None]]:
    # Threads suffice: file reads, sha256 and cv2 decoding all release the GIL.
    if len(paths) < 64 or workers == 1:
        return [check_file(p, check_decode, hash_files) for p in paths]
    with ThreadPoolExecutor(workers or 4) as pool:
        return list(pool.map(lambda p: check_file(p, check_decode, hash_files), paths))


def validate_table(table: SourceTable, root: Path, check_decode: bool = False, hash_files: bool = True,
                   workers: int | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Return the rows that pass (with a ``sha256`` column, patients filled) and the validation report."""
    frame = table.frame.copy()
    excluded: dict[str, list[str]] = {}
    warnings = list(table.warnings)

    def exclude(reason: str, mask: pd.Series) -> None:
        nonlocal frame
        if mask.any():
            excluded.setdefault(reason, []).extend(frame["image_id"][mask].tolist())
            frame = frame[~mask].reset_index(drop=True)

    conflicting = _conflicting_duplicates(frame, table.classes)
    if conflicting:  # which labels are right is unknowable: every copy is left out, and said
        warnings.append(f"{len(conflicting)} image(s) listed twice with different labels left out (e.g. "
                        f"{conflicting[0]}); fix the label file to keep them")
    exclude("duplicate rows with conflicting labels", frame["image_id"].isin(set(conflicting)))
    exclude("duplicate image id", frame["image_id"].duplicated(keep="first"))
    exclude("no label", frame["image_id"].isin(set(table.problems.get("no_label", []))))
    for reason, ids in (table.problems.get("exclude") or {}).items():
        exclude(reason, frame["image_id"].isin(set(ids)))
    paths = [Path(p) if Path(p).is_absolute() else root / p for p in frame["path"]]
    results = _check_all(paths, check_decode, hash_files, workers)
    frame["sha256"] = [h or "" for h, _ in results]
    frame["_problem"] = [p or "" for _, p in results]
    details = dict(zip(frame["image_id"][frame["_problem"] != ""], frame["_problem"][frame["_problem"] != ""]))
    for reason in sorted({p.split(":")[0] for p in details.values()}):
        exclude(reason, frame["_problem"].str.split(":").str[0] == reason)
    frame = frame.drop(columns="_problem")
    dup_groups = _duplicate_groups(frame)
    if dup_groups:
        warnings.append(f"{len(dup_groups)} group(s) of byte-identical files under different ids "
                        f"(e.g. {', '.join(dup_groups[0][:3])}); the split audit checks they share a split")
    unknown = table.problems.get("unknown_labels") or {}
    if unknown:
        warnings.append(f"unknown label(s) ignored: {', '.join(f'{k} ({v} rows)' for k, v in unknown.items())}")
    _fill_patients(frame, warnings)
    errors = _fatal_errors(frame, table)
    report = {
        "ok": not errors, "format": table.fmt, "task": table.task, "classes": table.classes,
        "checks": ("sha256 + " if hash_files else "") + "header/trailer + colour check"
                  + (" + full decode" if check_decode else ""),
        "counts": {**table.counts, "indexed": len(frame), "excluded": {k: len(v) for k, v in excluded.items()},
                   "patients": int(frame["patient_id"].nunique()) if len(frame) else 0,
                   "duplicate_file_groups": len(dup_groups)},
        "excluded": {k: v[:LIST_LIMIT] for k, v in excluded.items()},
        "problem_details": dict(list(details.items())[:LIST_LIMIT]),
        "duplicate_file_groups": dup_groups[:LIST_LIMIT], "unknown_labels": unknown,
        "missing_images": table.problems.get("missing_images", [])[:LIST_LIMIT],
        "files_not_in_csv": table.problems.get("files_not_in_csv", []),
        "outside_root": table.problems.get("outside_root", [])[:LIST_LIMIT],
        "source": table.details,
        "warnings": warnings, "errors": errors,
    }
    return frame, report


def _conflicting_duplicates(frame: pd.DataFrame, classes: list[str]) -> list[str]:
    """Image ids whose rows disagree on some label (NaN equals NaN); identical repeats are not conflicts."""
    dup = frame[frame["image_id"].duplicated(keep=False)]
    cols = [c for c in classes if c in dup.columns]
    if dup.empty or not cols:
        return []
    distinct = dup[["image_id", *cols]].astype("string").fillna("<unknown>").drop_duplicates()
    counts = distinct["image_id"].value_counts()
    return sorted(counts[counts > 1].index.astype(str))


def _duplicate_groups(frame: pd.DataFrame) -> list[list[str]]:
    hashed = frame[frame["sha256"] != ""]
    groups = hashed.groupby("sha256")["image_id"].apply(list)
    return sorted((g for g in groups if len(g) > 1), key=lambda g: g[0])


def _fill_patients(frame: pd.DataFrame, warnings: list[str]) -> None:
    pid = frame["patient_id"].fillna("").astype(str).str.strip()
    missing = pid == ""
    if missing.any():
        frame["patient_id"] = pid.where(~missing, frame["image_id"])
        warnings.append(f"{int(missing.sum())} image(s) have no patient id; each is treated as its own patient, "
                        "so leakage cannot be ruled out (one patient in two splits)")
    else:
        frame["patient_id"] = pid


def _fatal_errors(frame: pd.DataFrame, table: SourceTable) -> list[str]:
    errors = []
    if not table.classes:
        errors.append("no classes found")
    if frame.empty:
        errors.append("no usable images (all rows missing or excluded)")
    elif table.task == "multiclass" and len(table.classes) < 2:
        errors.append(f"multi-class data needs at least 2 classes; found {table.classes}")
    return errors


def _source_lines(details: dict[str, Any]) -> list[str]:
    """What the dataset adapter decided: policies, views left out, per-class uncertain counts, unknown terms."""
    if not details:
        return []
    lines = ["", "## What the adapter did", ""]
    cells = details.get("label_cells")
    for key, value in details.items():
        if key in ("label_cells", "unknown_terms"):
            continue
        lines.append(f"- {key.replace('_', ' ')}: {value if not isinstance(value, dict) else _inline(value)}")
    if cells:
        lines += ["", "| class | positive | negative | uncertain (-1) | blank |", "|---|---|---|---|---|"]
        lines += [f"| {c} | {v['positive']} | {v['negative']} | {v['uncertain']} | {v['blank']} |"
                  for c, v in cells.items()]
        lines.append(f"\nuncertain cells became: {details.get('uncertain_policy')}; blank cells became: "
                     f"{details.get('blank_policy')}")
    unknown = details.get("unknown_terms")
    if unknown:
        lines.append(f"- unknown terms ({len(unknown)}, not classes): {_inline(unknown)}")
    return lines


def _inline(d: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in d.items()) or "none"


def write_report(report: dict[str, Any], out_dir: Path) -> Path:
    """Write ``validation.json`` and a short human-readable ``validation.md``; returns the .md path."""
    write_json(out_dir / "validation.json", report)
    c = report["counts"]
    lines = ["# Validation report", "", f"- format: {report['format']}, task: {report['task']}, "
             f"classes: {len(report['classes'])} ({', '.join(report['classes'])})",
             f"- checks: {report['checks']}"]
    lines += [f"- {k.replace('_', ' ')}: {v}" for k, v in c.items() if not isinstance(v, dict)]
    for reason, ids in report["excluded"].items():
        lines.append(f"- excluded ({reason}): {c['excluded'][reason]}, e.g. {', '.join(ids[:5])}")
    for image_id, problem in list(report["problem_details"].items())[:20]:
        lines.append(f"- {image_id}: {problem}")
    for group in report["duplicate_file_groups"][:10]:
        lines.append(f"- identical files: {', '.join(group)}")
    lines += _source_lines(report.get("source") or {})
    unlisted = report.get("files_not_in_csv") or []
    if unlisted:
        lines += ["", f"## Files not listed in the label file ({len(unlisted)}, not indexed)", ""]
        lines += [f"- {name}" for name in unlisted]
    outside = report.get("outside_root") or []
    if outside:
        lines += ["", f"## Files outside the dataset folder ({c.get('outside_root', len(outside))}, not opened, "
                  "not indexed)", ""] + [f"- {name}" for name in outside]
    lines += ["", "## Errors", ""] + [f"- {e}" for e in report["errors"] or ["none"]]
    lines += ["", "## Warnings", ""] + [f"- {w}" for w in report["warnings"] or ["none"]]
    path = out_dir / "validation.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
