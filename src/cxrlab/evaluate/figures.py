"""Report figures as PNG bytes (matplotlib, Agg backend; imported lazily)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cxrlab.evaluate.calibration import reliability, top_label
from cxrlab.evaluate.matching import Scored
from cxrlab.evaluate.palette import class_style
from cxrlab.utils import figure_png, pyplot

MAX_CURVES = 15  # beyond this a legend is unreadable


def _binary_columns(s: Scored) -> list[tuple[str, np.ndarray, np.ndarray, dict]]:
    """(class, labels, scores, line style) for each class with both label values, unknown labels removed."""
    out = []
    for i, c in enumerate(s.classes[:MAX_CURVES]):
        known = ~np.isnan(s.y[:, i])
        y = s.y[known, i]
        if 0 < y.sum() < len(y):
            out.append((c, y, s.p[known, i], class_style(i)))  # the style follows the class, not the plot order
    return out


def roc_figure(s: Scored, macro_classes: list[str] | None = None) -> bytes:
    """ROC curve per class and the macro average (TPR averaged over a common FPR grid)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    grid = np.linspace(0, 1, 201)
    mean_tpr = []
    for c, y, p, style in _binary_columns(s):
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, lw=1.2, alpha=0.85, label=f"{c} ({roc_auc_score(y, p):.3f})", **style)
        if macro_classes is None or c in macro_classes:
            mean_tpr.append(np.interp(grid, fpr, tpr))
    if mean_tpr:
        ax.plot(grid, np.mean(mean_tpr, axis=0), color="black", lw=2.5, label="macro average")
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    ax.set(xlabel="1 - specificity (FPR)", ylabel="sensitivity (TPR)", title="ROC curves (AUROC)")
    ax.legend(fontsize=7, loc="lower right")
    return figure_png(fig)


def pr_figure(s: Scored) -> bytes:
    """Precision-recall curve per class (dotted line at each class's prevalence is chance)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    for c, y, p, style in _binary_columns(s):
        precision, recall, _ = precision_recall_curve(y, p)
        ax.step(recall, precision, where="post", lw=1.2, label=f"{c} ({average_precision_score(y, p):.3f})",
                **style)
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curves (AP)", ylim=(0, 1.02))
    ax.legend(fontsize=7, loc="upper right")
    return figure_png(fig)


def reliability_figure(s: Scored) -> bytes:
    """Reliability diagram: observed frequency against mean predicted probability per bin."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    if s.task == "multiclass":
        correct, conf = top_label(s.y, s.p)
        series = [("top label", correct, conf, class_style(0))]
    else:
        series = _binary_columns(s)
    for name, y, p, style in series:
        r = reliability(y, p)
        ok = r["count"] > 0
        ax.plot(r["confidence"][ok], r["frequency"][ok], marker="o", ms=3, lw=1, label=name, **style)
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="perfect calibration")
    ax.set(xlabel="mean predicted probability", ylabel="observed frequency", title="Reliability diagram",
           xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=7)
    return figure_png(fig)


def confusion_figure(counts: list[list[int]], classes: list[str]) -> bytes:
    """Confusion matrix (rows true, columns predicted) with counts in the cells."""
    plt = pyplot()
    cm = np.asarray(counts)
    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 2.5, 1.0 * len(classes) + 2))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix")
    return figure_png(fig)


def training_figure(metrics_csv: Path) -> bytes | None:
    """Loss and validation metric per epoch from a run's ``metrics.csv`` (None when unusable)."""
    import pandas as pd

    try:
        frame = pd.read_csv(metrics_csv)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    if "epoch" not in frame.columns or frame.empty:
        return None
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for col in ("train_loss", "val_loss"):
        if col in frame.columns:
            a.plot(frame["epoch"], frame[col], marker="o", ms=3, label=col)
    a.set(xlabel="epoch", ylabel="loss", title="Loss")
    a.legend()
    if "val_metric" in frame.columns:
        b.plot(frame["epoch"], frame["val_metric"], marker="o", ms=3, color="tab:green")
    b.set(xlabel="epoch", ylabel="validation metric", title="Validation metric")
    return figure_png(fig)


def comparison_figure(names: list[str], values: list[float | None], cis: list, metric: str) -> bytes:
    """Horizontal bars of the headline metric per model with 95% CI whiskers."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(names) + 1.5))
    v = np.array([np.nan if x is None else x for x in values], dtype=float)
    lo = np.array([np.nan if not c or c[0] is None else c[0] for c in cis], dtype=float)
    hi = np.array([np.nan if not c or c[1] is None else c[1] for c in cis], dtype=float)
    err = np.nan_to_num(np.vstack([v - lo, hi - v]))
    ax.barh(range(len(names)), np.nan_to_num(v), xerr=err, color="tab:blue", alpha=0.8, capsize=4)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    finite = v[np.isfinite(v)]
    ax.set(xlabel=f"{metric} (95% CI)", xlim=(max(0.0, (finite.min() if len(finite) else 0.5) - 0.15), 1.0))
    return figure_png(fig)


def forest_figure(labels: list[str], values: list, cis: list, xlabel: str, ref: float | None = None) -> bytes | None:
    """Point estimates with 95% CI whiskers, one row per label (None values are skipped)."""
    rows = [(lab, v, c) for lab, v, c in zip(labels, values, cis) if v is not None]
    if not rows:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.4))
    for y, (_, v, c) in enumerate(rows):
        if c and c[0] is not None:
            ax.plot([c[0], c[1]], [y, y], color="tab:blue", lw=2)
        ax.plot([v], [y], "o", color="black", ms=4)
    if ref is not None:
        ax.axvline(ref, ls=":", color="grey")
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.invert_yaxis()
    ax.set(xlabel=xlabel)
    return figure_png(fig)


def risk_coverage_figure(curves: dict[str, dict], title: str = "Risk-coverage") -> bytes:
    """Risk (error of the kept images) against coverage, most certain first; one line per named curve
    (each a dict with ``coverage``, ``risk`` and optionally ``aurc``)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for name, rc in curves.items():
        label = f"{name} (AURC {rc['aurc']:.3f})" if rc.get("aurc") is not None else name
        ax.plot(rc["coverage"], rc["risk"], lw=1.5, label=label)
    ax.set(xlabel="coverage (most certain first)", ylabel="risk (error of kept images)", title=title, xlim=(0, 1))
    ax.legend(fontsize=8)
    return figure_png(fig)
