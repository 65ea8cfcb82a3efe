"""Study figures: every arm's training curves on shared axes, and the metric against each swept value."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cxrlab.evaluate.palette import class_style
from cxrlab.utils import figure_png, pyplot


def curves_figure(curves: dict[str, pd.DataFrame], metric: str) -> bytes | None:
    """Train and val loss (one shared y axis), val metric (solid) and train metric (dashed), and lr per epoch;
    one colour per arm, seeds averaged."""
    if not curves:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(17, 4), sharex=True)
    loss_t, loss_v, met, lr = axes
    loss_v.sharey(loss_t)
    for k, (arm, frame) in enumerate(curves.items()):
        c = class_style(k)["color"]  # the report's palette: 15 arms stay apart
        x = frame["epoch"]
        for ax, col, style in ((loss_t, "train_loss", "-"), (loss_v, "val_loss", "-"), (met, "val_metric", "-"),
                               (met, "train_metric", "--"), (lr, "lr", "-")):
            if col in frame and frame[col].notna().any():
                ax.plot(x, frame[col], style, color=c, marker="o", ms=2, label=arm if ax is loss_t else None)
    loss_t.set(title="train loss", xlabel="epoch", ylabel="loss")
    loss_v.set(title="val loss", xlabel="epoch")
    met.set(title=f"{metric}: val (solid), train (dashed)", xlabel="epoch")
    lr.set(title="learning rate", xlabel="epoch")
    if any(frame["lr"].gt(0).all() for frame in curves.values() if "lr" in frame):
        lr.set_yscale("log")
    loss_t.legend(fontsize=7)
    from matplotlib.ticker import MaxNLocator

    loss_t.xaxis.set_major_locator(MaxNLocator(integer=True))  # shared by every panel
    fig.tight_layout()
    return figure_png(fig)


def _numeric(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def sweep_figure(key: str, points: list[dict[str, Any]], metric: str) -> bytes | None:
    """``metric`` (seed mean, sd error bars) against the swept value of ``key``; one line per other setting.

    ``points``: ``{"value", "series", "mean", "sd"}`` rows.
    """
    if not points:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    values = list(dict.fromkeys(p["value"] for p in points))
    numeric = _numeric(values)
    pos = {v: (v if numeric else i) for i, v in enumerate(values)}
    for k, series in enumerate(dict.fromkeys(p["series"] for p in points)):
        rows = sorted((p for p in points if p["series"] == series), key=lambda p: pos[p["value"]])
        x = [pos[p["value"]] for p in rows]
        y = np.array([np.nan if p["mean"] is None else p["mean"] for p in rows], dtype=float)
        err = np.array([0.0 if p["sd"] is None else p["sd"] for p in rows], dtype=float)
        ax.errorbar(x, y, yerr=err, marker="o", capsize=4, label=series or None, **class_style(k))
    if not numeric:
        ax.set_xticks(range(len(values)), [str(v) for v in values])
    ax.set(xlabel=key, ylabel=f"{metric} (mean ± sd over seeds)", title=f"{metric} against {key}")
    if any(p["series"] for p in points):
        ax.legend(fontsize=7)
    return figure_png(fig)
