"""``cxrlab data report``: what a dataset holds, drawn: prevalence, co-occurrence, labels per image, images per
patient, age / sex / view, and the same per split with the split audit's verdict.

The report is filled into a document object (``heading``, ``text``, ``bullets``, ``table``, ``figure``:
``cxrlab.evaluate.document.Document`` renders it as self-contained HTML and Markdown). It is passed in rather
than imported so that the data layer imports nothing above it. Figures are PNG bytes (matplotlib, Agg).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from cxrlab.data.audit import audit_index, index_split_column, read_split_table
from cxrlab.data.index import Index
from cxrlab.utils import figure_png, pyplot

MAX_BARS = 40  # classes drawn in the prevalence chart (PadChest has ~190 terms: the most frequent are shown)
MAX_HEATMAP = 25


class Doc(Protocol):
    def heading(self, text: str, level: int = 2) -> None: ...
    def text(self, text: str) -> None: ...
    def bullets(self, items: list[str]) -> None: ...
    def table(self, headers: list[str], rows: list[list]) -> None: ...
    def figure(self, name: str, png: bytes | None, caption: str) -> None: ...


def class_stats(index: Index, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per class: positives, negatives, unknown, prevalence among known labels."""
    frame = index.frame if frame is None else frame
    y = frame[index.classes].to_numpy(dtype=np.float64, na_value=np.nan)
    pos, known = np.nansum(y == 1, axis=0), (~np.isnan(y)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        prevalence = np.where(known > 0, pos / known, np.nan)
    return pd.DataFrame({"positives": pos.astype(int), "negatives": (known - pos).astype(int),
                         "unknown": (len(y) - known).astype(int), "prevalence": prevalence}, index=index.classes)


def prevalence_figure(stats: pd.DataFrame, title: str) -> bytes:
    shown = stats.sort_values("positives", ascending=False).head(MAX_BARS)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.25 * len(shown) + 1.2))
    ax.barh(range(len(shown)), 100 * shown["prevalence"].fillna(0), color="tab:blue")
    known = shown["positives"] + shown["negatives"]
    names = [c if r.unknown == 0 else f"{c} (known on {k})" for (c, r), k in zip(shown.iterrows(), known)]
    ax.set_yticks(range(len(shown)), names)
    ax.invert_yaxis()
    ax.set(xlabel="prevalence among known labels (%)", title=title)
    return figure_png(fig)


def cooccurrence(index: Index) -> pd.DataFrame:
    """P(column positive | row positive) over images where both are known, for the most frequent classes."""
    stats = class_stats(index)
    top = stats.sort_values("positives", ascending=False).head(MAX_HEATMAP)
    top = top[top["positives"] > 0].index.tolist()
    y = index.frame[top].to_numpy(dtype=np.float64, na_value=np.nan)
    pos = np.nan_to_num(y) == 1
    both = pos.T.astype(float) @ pos.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        cond = both / np.diag(both)[:, None]
    return pd.DataFrame(cond, index=top, columns=top)


def heatmap_figure(matrix: pd.DataFrame) -> bytes:
    plt = pyplot()
    n = len(matrix)
    fig, ax = plt.subplots(figsize=(0.35 * n + 3, 0.35 * n + 2.5))
    im = ax.imshow(matrix.to_numpy(), cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(n), matrix.columns, rotation=90, fontsize=7)
    ax.set_yticks(range(n), matrix.index, fontsize=7)
    ax.set(xlabel="finding B", ylabel="finding A", title="P(B | A): share of images with A that also have B")
    fig.colorbar(im, ax=ax, fraction=0.04)
    return figure_png(fig)


def bar_figure(counts: pd.Series, xlabel: str, title: str) -> bytes:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar([str(k) for k in counts.index], counts.to_numpy(), color="tab:gray")
    ax.set(xlabel=xlabel, ylabel="count", title=title)
    if len(counts) > 8:
        ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    return figure_png(fig)


def age_figure(ages: pd.Series) -> bytes | None:
    values = pd.to_numeric(ages, errors="coerce").dropna()
    if values.empty:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(values, bins=np.arange(0, max(100, values.max()) + 5, 5), color="tab:gray")
    ax.set(xlabel="age (years)", ylabel="images", title=f"Age ({len(values)} images with an age)")
    return figure_png(fig)


def _capped(counts: pd.Series, cap: int = 10) -> pd.Series:
    """Counts of counts with the tail folded into ``>=cap``."""
    values = counts.clip(upper=cap)
    out = values.value_counts().sort_index()
    out.index = [f">={cap}" if k == cap else str(k) for k in out.index]
    return out


def _section(doc: Doc, index: Index, frame: pd.DataFrame, name: str, figure_prefix: str) -> dict[str, Any]:
    """Counts, prevalence and distributions of ``frame`` (one split or the whole index)."""
    sub = Index(frame.reset_index(drop=True), index.task, index.classes, index.root, index.meta)
    stats = class_stats(sub)
    n_patients = int(frame["patient_id"].nunique())
    doc.bullets([f"images: {len(frame)}; patients: {n_patients}; classes: {len(index.classes)} ({index.task})"])
    doc.figure(f"{figure_prefix}prevalence", prevalence_figure(stats, f"Prevalence ({name})"),
               f"Prevalence per class ({name}; the {min(MAX_BARS, len(stats))} most frequent)")
    doc.table(["class", "positives", "negatives", "unknown", "prevalence"],
              [[c, int(r.positives), int(r.negatives), int(r.unknown),
                f"{100 * r.prevalence:.1f}%" if np.isfinite(r.prevalence) else "n/a"] for c, r in stats.iterrows()])
    per_patient = frame.groupby("patient_id").size()
    doc.figure(f"{figure_prefix}images_per_patient", bar_figure(_capped(per_patient), "images per patient",
                                                                "Images per patient"),
               f"Images per patient ({name})")
    out = {"images": len(frame), "patients": n_patients,
           "prevalence": {c: (None if not np.isfinite(v) else float(v)) for c, v in stats["prevalence"].items()}}
    if index.task == "multilabel":
        per_image = (frame[index.classes].fillna(0) == 1).sum(axis=1)
        doc.figure(f"{figure_prefix}labels_per_image", bar_figure(_capped(per_image), "positive labels per image",
                                                                  "Labels per image"), f"Labels per image ({name})")
        out["labels_per_image_mean"] = float(per_image.mean()) if len(per_image) else 0.0
    for column in ("sex", "view"):
        if column in frame.columns and frame[column].notna().any():
            counts = frame[column].fillna("missing").astype(str).value_counts()
            doc.figure(f"{figure_prefix}{column}", bar_figure(counts, column, f"{column.title()} ({name})"),
                       f"{column.title()} distribution ({name})")
            out[column] = {str(k): int(v) for k, v in counts.items()}
    if "age" in frame.columns:
        doc.figure(f"{figure_prefix}age", age_figure(frame["age"]), f"Age distribution ({name})")
        ages = pd.to_numeric(frame["age"], errors="coerce")
        median = None if ages.dropna().empty else float(ages.median())
        out["age"] = {"median": median, "missing": int(ages.isna().sum())}
    return out


def data_report(index: Index, doc: Doc, *, split: str | Path | None = None, hash_files: bool = False) -> dict[str, Any]:
    """Fill ``doc`` with the dataset's report; returns the numbers drawn (``data_report.json``)."""
    meta = index.meta
    doc.heading("Dataset")
    facts = [f"index: {index.path or '(in memory)'}; format: {meta.get('format', 'unknown')}; task: {index.task}",
             f"root: {index.root}"]
    if meta.get("policies"):
        facts.append("policies: " + ", ".join(f"{k} {v}" for k, v in meta["policies"].items()))
    facts += [f"index warning: {w}" for w in (meta.get("warnings") or [])[:10]]
    doc.bullets(facts)
    summary: dict[str, Any] = {"index": str(index.path) if index.path else None, "format": meta.get("format"),
                               "task": index.task, "classes": list(index.classes)}
    summary["all"] = _section(doc, index, index.frame, "all images", "")
    if index.task == "multilabel" and len(index.classes) > 1:
        matrix = cooccurrence(index)
        if len(matrix) > 1:
            doc.heading("Label co-occurrence")
            doc.figure("cooccurrence", heatmap_figure(matrix), "Co-occurrence: P(B | A) for the most frequent findings")
    _splits(doc, index, split, hash_files, summary)
    return summary


def _splits(doc: Doc, index: Index, split: str | Path | None, hash_files: bool, summary: dict) -> None:
    """Per-split sections and the audit verdict (a split file, else the index's own split column)."""
    if split is None and index_split_column(index) is None:
        return
    result = audit_index(index, split, hash_files=hash_files)
    verdict = result["verdict"]
    doc.heading(f"Splits ({result['source']}): audit verdict {verdict.upper()}")
    leaks = len(result["patient_leaks"])
    doc.bullets([f"patients in more than one split: {leaks}",
                 f"identical files across splits: {len(result['duplicate_files'])}"
                 + ("" if result["hashed"] else " (files not hashed; --hash to check)"),
                 f"classes with fewer than {result['min_positives']} positives in a split: "
                 + (", ".join(f"{r['class']} ({r['split']})" for r in result["too_few_positives"]) or "none")])
    summary["audit"] = {"verdict": verdict, "patients_in_several_splits": leaks, "source": result["source"]}
    if split is not None:
        table = read_split_table(split)
    else:
        column = index_split_column(index)
        table = index.frame[["image_id", column]].rename(columns={column: "split"}).dropna()
    by_id = index.frame.set_index("image_id", drop=False)
    summary["splits"] = {}
    for name in sorted(table["split"].unique(), key=lambda s: ("train", "val", "test").index(s)
                       if s in ("train", "val", "test") else 9):
        ids = [i for i in table.loc[table["split"] == name, "image_id"] if i in by_id.index]
        doc.heading(f"Split: {name}", level=3)
        summary["splits"][str(name)] = _section(doc, index, by_id.loc[ids], str(name), f"split_{name}_")
