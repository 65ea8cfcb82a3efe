"""The predictions artifact: ``predictions.csv`` plus a ``predictions.json`` sidecar.

``predictions.csv`` columns: ``image_id``, optional ``patient_id``, one probability column per class named
exactly as the class, then optional extra columns (uncertainty: ``std:<class>``, ``entropy:<class>``,
``mi:<class>``, ...; a column name with a colon is never a class). The sidecar holds ``task``, ``classes``
(order), ``model``, ``split``, ``checkpoint_sha256``, ``run_dir`` and anything else the writer knows.

Reading is forgiving so other tools' files score without conversion: the id column may be ``image_id`` or
NIH's ``Image Index``, class columns may carry a prefix such as ``prob_``. Evaluation-side matching of
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
    """Write ``path`` (CSV) and its JSON sidecar atomically."""
    path = Path(path)
    frame = pd.DataFrame({"image_id": preds.image_ids})
    if preds.patient_ids is not None:
        frame["patient_id"] = preds.patient_ids
    probs = pd.DataFrame(np.asarray(preds.probs, dtype=np.float64), columns=list(preds.classes))
    parts = [frame, probs]
    if preds.extra is not None and len(preds.extra.columns):
        parts.append(preds.extra.reset_index(drop=True))
    out = pd.concat(parts, axis=1)
    atomic_write_text(path, out.to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    write_json(sidecar_path(path), {**preds.meta, "classes": list(preds.classes)})
    preds.path = path
    return path


def read_predictions(path: str | Path, classes: list[str] | None = None, prefix: str | None = None) -> Predictions:
    """Read our predictions format or another tool's CSV.

    Args:
        path: the CSV file.
        classes: class names to look for when there is no sidecar (e.g. the labels' classes). Columns are
            matched by exact name, or by name after stripping ``prefix`` (auto-detected when None).
        prefix: a column prefix such as ``prob_``.
    """
    path = Path(path)
    if not path.exists():
        raise CxrlabError(f"predictions file {path} does not exist")
    try:
        frame = pd.read_csv(path, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CxrlabError(f"{path} is not a readable CSV ({str(exc).splitlines()[0]})") from None
    meta = read_json(sidecar_path(path)) if sidecar_path(path).exists() else {}
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
    probs = frame[class_cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    used = {id_col, "patient_id", *class_cols}
    extra_cols = [c for c in frame.columns if c not in used]
    extra = frame[extra_cols].reset_index(drop=True) if extra_cols else None
    ids = [Path(x).name if id_col == "path" else x for x in frame[id_col].astype(str)]
    patients = frame["patient_id"].astype(str).tolist() if "patient_id" in frame.columns else None
    return Predictions(ids, probs, names, meta, patients, extra, path)


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
