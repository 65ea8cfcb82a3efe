"""The predictions artifact: ``predictions.csv`` plus a ``predictions.json`` sidecar.

``predictions.csv`` columns: ``image_id``, optional ``patient_id``, one probability column per class named
exactly as the class, then optional extra columns (uncertainty: ``std:<class>``, ``entropy:<class>``,
``mi:<class>``, ...; a column name with a colon is never a class). The sidecar holds ``task``, ``classes``
(order), ``model``, ``split``, ``checkpoint_sha256``, ``run_dir`` and anything else the writer knows.

Reading is forgiving about layout so other tools' files score without conversion: the id column may be
``image_id`` or NIH's ``Image Index``, class columns may carry a prefix such as ``prob_``. It is strict about
values, once, for every verb: probabilities must be finite numbers in [0, 1] (unless ``logits=True``), image
ids must not repeat, every class the sidecar lists must have a column, the sidecar's ``task`` must be one of
``multilabel``/``multiclass``, and uncertainty columns (``std:``, ``entropy:``, ``mi:``) must be finite numbers.
Each problem is a one-line ``CxrlabError`` naming the file, row and column. Evaluation-side matching of
classes to labels lives in ``cxrlab.evaluate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlab.errors import CxrlabError
from cxrlab.utils import atomic_write_text, read_json, write_json

ID_COLUMNS = ("image_id", "Image Index", "filename", "file", "image", "id", "path")
TASKS = ("multilabel", "multiclass")
UNCERTAINTY_PREFIXES = ("std:", "entropy:", "mi:")
TOLERANCE = 1e-6  # float noise allowed outside [0, 1] before a value counts as out of range


@dataclass
class Predictions:
    """Probabilities for a set of images."""

    image_ids: list[str]
    probs: np.ndarray  # (N, C) float, probabilities in [0, 1]
    classes: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    patient_ids: list[str] | None = None
    extra: pd.DataFrame | None = None  # uncertainty and other non-class columns, row-aligned
    path: Path | None = None

    @property
    def task(self) -> str | None:
        return self.meta.get("task")

    @property
    def split(self) -> str | None:
        return self.meta.get("split")


def run_predictions_path(run_dir: str | Path, split: str) -> Path:
    """``RUN_DIR/predictions/<split>.csv``, where training writes the best model's predictions; an error when absent."""
    csv = Path(run_dir) / "predictions" / f"{split}.csv"
    if not csv.exists():
        raise CxrlabError(f"run directory {run_dir} has no predictions/{split}.csv; run `cxrlab predict` on it first")
    return csv


def sidecar_path(csv_path: str | Path) -> Path:
    return Path(csv_path).with_suffix(".json")


def write_predictions(path: str | Path, preds: Predictions) -> Path:
    """Write ``path`` (CSV) and its JSON sidecar atomically; refuses probabilities that are not finite numbers in
    [0, 1] (a writer bug must never become a valid-looking file that later verbs trust)."""
    path = Path(path)
    probs_out = check_probabilities(np.asarray(preds.probs, dtype=np.float64), list(preds.classes), f"output {path}")
    frame = pd.DataFrame({"image_id": preds.image_ids})
    if preds.patient_ids is not None:
        frame["patient_id"] = preds.patient_ids
    probs = pd.DataFrame(probs_out, columns=list(preds.classes))
    parts = [frame, probs]
    if preds.extra is not None and len(preds.extra.columns):
        parts.append(preds.extra.reset_index(drop=True))
    out = pd.concat(parts, axis=1)
    atomic_write_text(path, out.to_csv(index=False, float_format="%.9g", lineterminator="\n"))  # float32 round trip
    write_json(sidecar_path(path), {**preds.meta, "classes": list(preds.classes)})
    preds.path = path
    return path


def read_predictions(
    path: str | Path, classes: list[str] | None = None, prefix: str | None = None, logits: bool = False
) -> Predictions:
    """Read our predictions format or another tool's CSV, validated once (see the module docstring).

    Args:
        path: the CSV file.
        classes: class names to look for when there is no sidecar (e.g. the labels' classes). Columns are
            matched by exact name, or by name after stripping ``prefix`` (auto-detected when None).
        prefix: a column prefix such as ``prob_``.
        logits: the columns hold logits (any finite number), not probabilities.
    """
    path = Path(path)
    if not path.exists():
        raise CxrlabError(f"predictions file {path} does not exist")
    try:
        frame = pd.read_csv(path, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CxrlabError(f"{path} is not a readable CSV ({str(exc).splitlines()[0]})") from None
    _check_header(path)
    if frame.empty:
        raise CxrlabError(f"{path} has a header but no rows: no predictions to read; predict again with "
                          "`cxrlab predict`")
    meta = _read_sidecar(path)
    id_col = next((c for c in ID_COLUMNS if c in frame.columns), None)
    if id_col is None:
        raise CxrlabError(f"{path} has no id column; name one of: {', '.join(ID_COLUMNS[:2])}")
    class_cols, names = _class_columns(frame, meta.get("classes") or classes, prefix, id_col)
    if not class_cols:
        raise CxrlabError(
            f"{path}: no probability columns found; expected class names"
            + (f" such as {', '.join((classes or [])[:3])}" if classes else "")
            + " (optionally with a prefix like prob_, see --prefix)"
        )
    _check_sidecar_classes(path, meta, names)
    probs = _numbers(frame, class_cols, names, path)
    if not logits:
        probs = check_probabilities(probs, names, str(path))
    used = {id_col, "patient_id", *class_cols}
    extra_cols = [c for c in frame.columns if c not in used]
    extra = frame[extra_cols].reset_index(drop=True) if extra_cols else None
    if extra is not None:
        _check_uncertainty(extra, path)
    ids = [Path(x).name if id_col == "path" else x for x in frame[id_col].fillna("").astype(str)]
    check_ids(ids, str(path))
    patients = frame["patient_id"].astype(str).tolist() if "patient_id" in frame.columns else None
    return Predictions(ids, probs, names, meta, patients, extra, path)


def _check_header(path: Path) -> None:
    """A column name given twice is an error (pandas would rename the second ``Mass.1`` and drop it silently)."""
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        header = next(csv.reader(f), [])
    seen = set()
    for name in header:
        if name in seen:
            raise CxrlabError(f"{path}: column {name!r} appears twice in the header; keep one column per class")
        seen.add(name)


def read_predictions_meta(path: str | Path) -> dict[str, Any]:
    """The validated sidecar of a predictions CSV (empty without one)."""
    return _read_sidecar(Path(path))


def _read_sidecar(path: Path) -> dict[str, Any]:
    side = sidecar_path(path)
    if not side.exists():
        return {}
    fix = f"restore it, or delete {side.name} to read {path.name} as a plain CSV"
    meta = read_json(side, kind=dict, fix=fix)
    kind = "an index" if "root" in meta and "index_sha256" in meta else "a split" if "fractions" in meta else None
    if kind:  # labels or a split read as probabilities would score perfectly, silently
        raise CxrlabError(f"{path} is {kind} ({side.name} beside it says so), not a predictions file; make "
                          "predictions with `cxrlab predict RUN` and pass those")
    if meta.get("task") is not None and meta["task"] not in TASKS:
        raise CxrlabError(f"{side}: task {meta['task']!r} is not one of {', '.join(TASKS)}; {fix}")
    if meta.get("classes") is not None and not (isinstance(meta["classes"], list)
                                                and all(isinstance(c, str) for c in meta["classes"])):
        raise CxrlabError(f"{side}: 'classes' must be a list of class names; {fix}")
    return meta


def _check_sidecar_classes(path: Path, meta: dict[str, Any], found: list[str]) -> None:
    """Every class the sidecar lists has a column: a missing one is named, never dropped silently."""
    listed = meta.get("classes") or []
    missing = [c for c in listed if c not in found]
    if missing:
        raise CxrlabError(f"{path}: its sidecar lists class(es) {', '.join(map(repr, missing))} but the CSV has no "
                          "such column; restore the column or fix the sidecar's classes")


def _numbers(frame: pd.DataFrame, cols: list[str], names: list[str], path: Path) -> np.ndarray:
    """(N, C) float64 of ``cols``; a cell that is not a number is named by row and column."""
    values = _plain_numbers(frame[cols])
    if values is None:  # some cell is missing or not a plain number: the careful path finds and names it
        values = frame[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.argwhere(np.isnan(values))
    if len(bad):
        r, c = bad[0]
        cell = frame[cols[c]].iloc[r]
        what = ("value is missing or not a number" if pd.isna(cell) or not str(cell).strip()
                else f"{str(cell)[:30]!r} is not a number")
        raise CxrlabError(f"{path} row {r + 2}, column {names[c]!r}: {what}; every class needs a probability"
                          + (f" ({len(bad)} such cells)" if len(bad) > 1 else ""))
    return values


def _plain_numbers(cells: pd.DataFrame) -> np.ndarray | None:
    """Every cell through ``float`` (C speed, 2-3x faster than ``pd.to_numeric`` per column); None when a cell is
    missing, is not a number, or holds an underscore (``float`` reads "0_5" as 5, ``to_numeric`` refuses it)."""
    raw = cells.to_numpy(dtype=object)
    try:
        if "_" in "".join(raw.ravel()):  # TypeError when a cell is missing (NaN, not a string)
            return None
        return raw.astype(np.float64)
    except (TypeError, ValueError):
        return None


def check_probabilities(probs: np.ndarray, classes: list[str], where: str) -> np.ndarray:
    """Finite and within [0, 1] (up to float noise, clipped away in the returned copy); else a one-line error
    naming the first bad cell."""
    bad = np.argwhere(~np.isfinite(probs) | (probs < -TOLERANCE) | (probs > 1 + TOLERANCE))
    if len(bad):
        r, c = bad[0]
        v = probs[r, c]
        hint = ("looks like logits: apply sigmoid/softmax first or pass --logits" if np.isfinite(v)
                else "a probability must be a finite number")
        raise CxrlabError(f"{where} row {r + 2}, column {classes[c]!r}: {v:g} is not a probability in [0, 1]; {hint}"
                          + (f" ({len(bad)} such cells)" if len(bad) > 1 else ""))
    return np.clip(probs, 0.0, 1.0)  # float noise only (checked above)


def check_ids(ids: list[str], where: str) -> None:
    """Image ids must be non-empty and unique; a repeat is named with both rows."""
    seen: dict[str, int] = {}
    for row, image_id in enumerate(ids, start=2):  # row 1 is the header
        if not image_id.strip():
            raise CxrlabError(f"{where} row {row}: the image id is empty; every row needs an image id")
        if image_id in seen:
            raise CxrlabError(f"{where} row {row}: image id {image_id!r} repeats row {seen[image_id]}; keep one "
                              "prediction per image (average test-time augmentations first)")
        seen[image_id] = row


def _check_uncertainty(extra: pd.DataFrame, path: Path) -> None:
    """``std:``/``entropy:``/``mi:`` columns hold finite numbers (selective prediction ranks by them)."""
    for col in [c for c in extra.columns if str(c).startswith(UNCERTAINTY_PREFIXES)]:
        values = pd.to_numeric(extra[col], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise CxrlabError(f"{path} row {bad[0] + 2}, column {col!r}: {extra[col].iloc[bad[0]]!r} is not a finite "
                              "number; recompute the uncertainty columns with `cxrlab uncertainty`")


def _class_columns(
    frame: pd.DataFrame, wanted: list[str] | None, prefix: str | None, id_col: str
) -> tuple[list[str], list[str]]:
    """Return (csv column names, class names) for the probability columns."""
    candidates = [c for c in frame.columns if c not in (id_col, "patient_id") and ":" not in c]
    if prefix is None and wanted:
        prefix = _detect_prefix(candidates, wanted)
    prefix = prefix or ""
    cols, names = [], []
    for c in candidates:
        if not c.startswith(prefix):
            continue
        name = c[len(prefix):]
        if wanted is not None and name not in wanted:
            continue
        if wanted is None and pd.to_numeric(frame[c], errors="coerce").isna().all():
            continue  # a text column, not probabilities
        cols.append(c)
        names.append(name)
    return cols, names


def _detect_prefix(columns: list[str], classes: list[str]) -> str:
    """The prefix (possibly empty) under which the most class names appear."""
    best, best_hits = "", sum(c in classes for c in columns)
    for c in columns:
        for cls in classes:
            if c.endswith(cls) and c != cls:
                p = c[: -len(cls)]
                hits = sum(f"{p}{k}" in columns for k in classes)
                if hits > best_hits:
                    best, best_hits = p, hits
    return best
