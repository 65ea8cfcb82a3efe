"""Leakage audit of a split: shared patients, identical files across splits, class counts per split.

Works on any table with ``image_id`` (or NIH's ``Image Index``) and ``split`` columns, ours or another
tool's; patients come from the index. File hashes are cached in ``file_sha256.csv`` beside ``index.csv`` so a
second audit of a large dataset does not re-read every image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlab.data.index import Index
from cxrlab.data.split_csv import SPLIT_ALIASES, patient_ids, read_split_csv
from cxrlab.errors import CxrlabError
from cxrlab.utils import atomic_write_text, sha256_file

MIN_POSITIVES = 5  # fewer positives than this in val/test: AUROC there is mostly noise
HASH_SIDECAR = "file_sha256.csv"
MAX_LISTED = 20  # patients / duplicate groups listed in the printed report


def read_split_table(path: str | Path) -> pd.DataFrame:
    """Read any split CSV: ``image_id``/``Image Index`` + ``split`` [+ ``fold``]; names kept (aliases mapped)."""
    path = Path(path)
    frame = read_split_csv(path, "pass a CSV with image_id and split columns (--split)")
    frame["split"] = _clean_split_names(frame["split"])
    empty = frame["split"] == ""
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0])
        raise CxrlabError(f"{path}: row {row + 2} has an empty split; give every row a split name")
    return frame


def _clean_split_names(values: pd.Series) -> pd.Series:
    names = values.astype(str).str.strip().str.lower()
    return names.replace(SPLIT_ALIASES)


# ----------------------------------------------------------------------------- file hashes
def file_hashes(index: Index, image_ids: list[str] | None = None) -> dict[str, str | None]:
    """sha256 per image (None when unreadable).

    Uses the index's own ``sha256`` column where the indexer filled it, else ``file_sha256.csv`` beside the
    index when the file's size and mtime still match, else reads the file (and updates that sidecar).
    """
    frame = index.frame if image_ids is None else index.subset(image_ids).frame
    ids = frame["image_id"].astype(str).tolist()
    out: dict[str, str | None] = {}
    if "sha256" in frame.columns:
        out = {i: h for i, h in zip(ids, frame["sha256"]) if isinstance(h, str) and len(h) == 64}
    todo = [i for i in ids if i not in out]
    if todo:
        out.update(_hash_files(index, todo))
    return out


def _hash_files(index: Index, image_ids: list[str]) -> dict[str, str | None]:
    paths = dict(zip(index.frame["image_id"].astype(str), index.absolute_paths()))
    sidecar = index.path.parent / HASH_SIDECAR if index.path is not None else None
    known = _read_hash_sidecar(sidecar)
    out: dict[str, str | None] = {}
    rows = []
    for image_id in image_ids:
        path = paths[image_id]
        try:
            st = path.stat()
        except OSError:
            out[image_id] = None
            continue
        key = (str(path), st.st_size, st.st_mtime_ns)
        digest = known.get(key) or sha256_file(path)
        out[image_id] = digest
        rows.append((*key, digest))
    if sidecar is not None and any((r[0], r[1], r[2]) not in known for r in rows):
        merged = {**known, **{(r[0], r[1], r[2]): r[3] for r in rows}}
        table = pd.DataFrame([(*k, v) for k, v in merged.items()], columns=["path", "size", "mtime_ns", "sha256"])
        try:
            atomic_write_text(sidecar, table.to_csv(index=False, lineterminator="\n"))
        except OSError:
            pass  # a read-only index folder only costs re-hashing next time
    return out


def _read_hash_sidecar(path: Path | None) -> dict[tuple[str, int, int], str]:
    if path is None or not path.is_file():
        return {}
    try:
        t = pd.read_csv(path, dtype={"path": str, "sha256": str})
        return {(p, int(s), int(m)): h for p, s, m, h in zip(t["path"], t["size"], t["mtime_ns"], t["sha256"])}
    except (pd.errors.ParserError, KeyError, ValueError):
        return {}  # a damaged cache of hashes is just recomputed


# ----------------------------------------------------------------------------- the audit
def audit(
    index: Index, split_frame: pd.DataFrame, hash_files: bool = True, min_positives: int = MIN_POSITIVES
) -> dict[str, Any]:
    """Audit ``split_frame`` (image_id, split[, fold]) against ``index``.

    Returns:
        dict with ``verdict`` ("leakage" | "ok"), ``patient_leaks``, ``fold_leaks``, ``duplicate_files``,
        ``splits`` (images/patients), ``class_counts``, ``too_few_positives``, ``missing_from_index``.
    """
    split = split_frame.copy()
    split["image_id"] = split["image_id"].astype(str)
    split["split"] = _clean_split_names(split["split"])
    in_index = split["image_id"].isin(set(index.frame["image_id"].astype(str)))
    missing = split.loc[~in_index, "image_id"].tolist()
    split = split[in_index]
    patients = pd.Series(patient_ids(index).to_numpy(), index=index.frame["image_id"].astype(str))
    split["patient_id"] = patients.loc[split["image_id"]].to_numpy()
    result: dict[str, Any] = {
        "n_images": int(len(split)),
        "splits": _split_sizes(split),
        "missing_from_index": {"count": len(missing), "examples": missing[:5]},
        "not_in_split": int(len(index.frame) - len(split)),
        "patient_leaks": _patient_leaks(split, "split"),
        "fold_leaks": _fold_leaks(split),
        "duplicate_files": [],
        "hashed": False,
        "min_positives": min_positives,
    }
    if hash_files:
        hashes = file_hashes(index, split["image_id"].tolist())
        result["duplicate_files"] = _duplicate_groups(split, hashes)
        result["unreadable"] = sum(h is None for h in hashes.values())
        result["hashed"] = True
    result["class_counts"] = _class_counts(index, split)
    result["too_few_positives"] = _too_few(result["class_counts"], min_positives)
    cross = [g for g in result["duplicate_files"] if len(set(g["images"].values())) > 1]
    leaking = result["patient_leaks"] or result["fold_leaks"] or cross
    result["verdict"] = "leakage" if leaking else "ok"
    return result


def _ordered(names) -> list[str]:
    """train, train_val, val, test first, then any other split names alphabetically."""
    rank = {"train": 0, "train_val": 1, "val": 2, "test": 3}
    return sorted({str(n) for n in names}, key=lambda n: (rank.get(n, 4), n))


def _split_sizes(split: pd.DataFrame) -> dict[str, dict[str, int]]:
    groups = dict(list(split.groupby("split")))
    return {
        name: {"images": int(len(groups[name])), "patients": int(groups[name]["patient_id"].nunique())}
        for name in _ordered(groups)
    }


def _patient_leaks(split: pd.DataFrame, column: str) -> list[dict[str, Any]]:
    """Patients whose images sit in more than one value of ``column``, with per-value image counts."""
    counts = split.groupby(["patient_id", column]).size().unstack(fill_value=0)
    shared = counts[(counts > 0).sum(axis=1) > 1]
    return [
        {"patient_id": str(p), column: {str(k): int(v) for k, v in row.items() if v > 0}}
        for p, row in shared.iterrows()
    ]


def _fold_leaks(split: pd.DataFrame) -> list[dict[str, Any]]:
    if "fold" not in split.columns:
        return []
    fold = pd.to_numeric(split["fold"].replace("", None), errors="coerce")
    folded = split[fold.notna()].assign(fold=fold[fold.notna()].astype(int).astype(str))
    return _patient_leaks(folded, "fold")


def _duplicate_groups(split: pd.DataFrame, hashes: dict[str, str | None]) -> list[dict[str, Any]]:
    """Groups of byte-identical files: {sha256, images: {image_id: split}}."""
    frame = split.assign(sha256=split["image_id"].map(hashes)).dropna(subset=["sha256"])
    groups = []
    for digest, g in frame.groupby("sha256", sort=False):
        if len(g) > 1:
            groups.append({"sha256": str(digest), "images": dict(zip(g["image_id"], g["split"]))})
    return groups


def _class_counts(index: Index, split: pd.DataFrame) -> dict[str, dict[str, dict[str, float]]]:
    """Per split and class: positives, known (labelled) images and prevalence."""
    sub = index.subset(split["image_id"].tolist())
    labels = sub.labels()  # (N, C)
    names = split["split"].to_numpy()
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name in _ordered(names):
        lab = labels[names == name]
        known = (~np.isnan(lab)).sum(axis=0)
        pos = np.nansum(lab, axis=0)
        out[str(name)] = {
            c: {"positives": int(p), "known": int(k), "prevalence": round(float(p / max(k, 1)), 4)}
            for c, p, k in zip(index.classes, pos, known)
        }
    return out


def _too_few(class_counts: dict[str, Any], min_positives: int) -> list[dict[str, Any]]:
    """Classes whose val/test positives are too few for a meaningful AUROC."""
    rows = []
    for name, per_class in class_counts.items():
        if name.startswith("train"):  # train and train_val: estimation happens elsewhere
            continue
        for c, v in per_class.items():
            if v["positives"] < min_positives:
                rows.append({"split": name, "class": c, "positives": v["positives"]})
    return rows


def audit_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The short form stored in ``split.json``."""
    return {
        "verdict": result["verdict"],
        "patients_in_several_splits": len(result["patient_leaks"]),
        "patients_in_several_folds": len(result["fold_leaks"]),
        "leaking_patients": [p["patient_id"] for p in result["patient_leaks"][:MAX_LISTED]],
        "duplicate_file_groups": len(result["duplicate_files"]),
        "missing_from_index": result["missing_from_index"]["count"],
        "too_few_positives": result["too_few_positives"],
        "min_positives": result["min_positives"],
    }


def index_split_column(index: Index) -> str | None:
    """The split the index came with: ``given_split`` (folder datasets) or ``official_split`` (NIH lists)."""
    for column in ("given_split", "official_split"):
        if column in index.frame.columns and index.frame[column].notna().any():
            return column
    return None


def audit_index(
    index: Index, split_path: str | Path | None = None, hash_files: bool = True, min_positives: int = MIN_POSITIVES
) -> dict[str, Any]:
    """Audit a split file, else the index's own split column, else report duplicate files only."""
    if split_path is not None:
        frame = read_split_table(split_path)
        source = str(split_path)
    elif (column := index_split_column(index)) is not None:
        known = index.frame[column].notna()
        frame = index.frame.loc[known, ["image_id", column]].rename(columns={column: "split"})
        source = f"index column {column}"
    else:
        frame = pd.DataFrame({"image_id": index.frame["image_id"].astype(str), "split": "all"})
        source = "no split (duplicate files only)"
    result = audit(index, frame, hash_files=hash_files, min_positives=min_positives)
    result["source"] = source
    return result


def format_audit(result: dict[str, Any]) -> str:
    """Markdown report of an audit result (also what the CLI prints)."""
    lines = [f"# Split audit: {result['verdict'].upper()}", "", f"Split: {result.get('source', 'given frame')}", ""]
    lines += ["| split | images | patients |", "|---|---:|---:|"]
    lines += [f"| {k} | {v['images']} | {v['patients']} |" for k, v in result["splits"].items()]
    miss = result["missing_from_index"]
    if miss["count"]:
        lines += ["", f"{miss['count']} split ids are not in the index (e.g. {', '.join(miss['examples'])})."]
    lines += ["", _leak_lines("split", result["patient_leaks"])]
    if result["fold_leaks"]:
        lines += [_leak_lines("fold", result["fold_leaks"])]
    if result["hashed"]:
        groups = result["duplicate_files"]
        lines += ["", f"Identical files: {len(groups)} group(s)."]
        for g in groups[:MAX_LISTED]:
            lines.append("- " + ", ".join(f"{i} ({s})" for i, s in g["images"].items()))
    lines += ["", *_class_table(result["class_counts"])]
    if result["too_few_positives"]:
        few = ", ".join(f"{r['class']} in {r['split']} ({r['positives']})" for r in result["too_few_positives"])
        lines += ["", f"Too few positives (< {result['min_positives']}) to estimate AUROC: {few}."]
    lines += ["", _verdict_line(result)]
    return "\n".join(lines) + "\n"


def _class_table(class_counts: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """One row per class, one column per split: positives (prevalence)."""
    splits = list(class_counts)
    classes = list(next(iter(class_counts.values()), {}))
    lines = ["| class | " + " | ".join(splits) + " |", "|---|" + "---:|" * len(splits)]
    for c in classes:
        cells = [f"{class_counts[s][c]['positives']} ({100 * class_counts[s][c]['prevalence']:.1f}%)" for s in splits]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return lines


def _leak_lines(kind: str, leaks: list[dict[str, Any]]) -> str:
    if not leaks:
        return f"Patients in more than one {kind}: none."
    lines = [f"Patients in more than one {kind}: {len(leaks)} (patient: images per {kind})"]
    for p in leaks[:MAX_LISTED]:
        lines.append(f"- {p['patient_id']}: " + ", ".join(f"{k} {v}" for k, v in p[kind].items()))
    if len(leaks) > MAX_LISTED:
        lines.append(f"- ... and {len(leaks) - MAX_LISTED} more (all listed with --json)")
    return "\n".join(lines)


def _verdict_line(result: dict[str, Any]) -> str:
    if result["verdict"] == "ok":
        return "Verdict: no leakage found (no shared patients, no identical files across splits)."
    reasons = []
    if result["patient_leaks"]:
        reasons.append(f"{len(result['patient_leaks'])} patients in several splits")
    if result["fold_leaks"]:
        reasons.append(f"{len(result['fold_leaks'])} patients in several folds")
    cross = [g for g in result["duplicate_files"] if len(set(g["images"].values())) > 1]
    if cross:
        reasons.append(f"{len(cross)} identical files across splits")
    return "Verdict: LEAKAGE: " + "; ".join(reasons) + ". Re-split by patient with `cxrlab data split`."
