"""Trouble a reader must not miss, said in words: an AUROC worse than chance and a validation metric that
collapsed during training. Each function returns the sentences a report prints (empty when all is well)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from cxrlab.evaluate.formatting import fmt_ci, fmt_metric

CHANCE = 0.5
COLLAPSE_DROP = 0.1  # a validation metric ending this far below its best epoch has collapsed


def below_chance(name: str, per_class: Mapping[str, float | None], macro: float | None = None,
                 cis: Mapping[str, Sequence | None] | None = None, thin: Collection[str] = ()) -> list[str]:
    """Sentences for a macro or per-class AUROC below 0.5 (worse than a coin): usually flipped labels or a
    class order that differs between the model and the labels. ``cis``: 95% intervals by class (``"macro"``
    for the macro) shown beside the value where known, so a reader can tell noise from a flip. ``thin``: classes
    with too few positive or negative patients to call; below 0.5 they get a note, not a warning."""
    cis = cis or {}
    out = []
    if macro is not None and macro < CHANCE:
        out.append(f"WARNING {name}: macro AUROC {fmt_ci(macro, cis.get('macro'))} is worse than chance (0.5): "
                   "check label polarity or class order")
    below = {c: v for c, v in per_class.items() if v is not None and v < CHANCE}
    bad = [f"{c} {fmt_ci(v, cis.get(c))}" for c, v in below.items() if c not in thin]
    if bad:
        out.append(f"WARNING {name}: AUROC worse than chance (below 0.5) for {', '.join(bad)}: check label "
                   "polarity or class order")
    noisy = [f"{c} {fmt_ci(v, None)}" for c, v in below.items() if c in thin]
    if noisy:
        out.append(f"note {name}: AUROC below 0.5 for {', '.join(noisy)}, classes too thin to tell noise from a "
                   "label flip (fewer positive or negative patients than the test minimum)")
    return out


def validation_collapse(metrics_csv: Path, metric: str = "macro_auroc", name: str = "training") -> list[str]:
    """A sentence when the validation metric of ``metrics.csv`` fell more than ``COLLAPSE_DROP`` from its best
    epoch by the last one, or (AUROC) ended at chance or below; empty when fine or unreadable."""
    import pandas as pd

    try:
        frame = pd.read_csv(metrics_csv)
    except (OSError, ValueError, pd.errors.ParserError):
        return []
    if "val_metric" not in frame.columns or "epoch" not in frame.columns:
        return []
    frame = frame[["epoch", "val_metric"]].dropna()
    if frame.empty:
        return []
    best = frame.loc[frame["val_metric"].idxmax()]
    last = frame.iloc[-1]
    label = metric.replace("_", " ").replace("auroc", "AUROC").replace("f1", "F1")
    if "auroc" in metric and last["val_metric"] <= CHANCE:
        return [f"WARNING {name}: validation {label} ended at {fmt_metric(last['val_metric'])} in epoch "
                f"{int(last['epoch'])}, no better than chance: training collapsed or never learned (check the "
                "learning rate and the labels)"]
    if best["val_metric"] - last["val_metric"] > COLLAPSE_DROP:
        return [f"WARNING {name}: validation {label} collapsed from {fmt_metric(best['val_metric'])} (epoch "
                f"{int(best['epoch'])}) to {fmt_metric(last['val_metric'])} (epoch {int(last['epoch'])}): the last "
                "epochs diverged (lower the learning rate; check which epoch's checkpoint made the predictions)"]
    return []
