"""Array-level AUROC and THE macro AUROC: one definition, shared by training's checkpoint selection and early
stopping (``cxrlab.train``), ``cv``, ``evaluate``, ``compare``, ``study``, ensembles and selective prediction
(``cxrlab.evaluate.metrics`` re-exports it). It sits at the bottom of the package so that training does not
import evaluation.

Macro AUROC = the unweighted mean of the per-class AUROCs over the classes that are (1) not excluded by name
(``DEFAULT_EXCLUDE``: "No Finding", the absence of the others, not a finding) and (2) defined on the scored
images (both label values among the known labels). ``MacroAuroc.classes`` names the classes actually averaged;
it is written beside every macro number. When no class qualifies the value is NaN: never a stand-in from
another scale (e.g. a negative loss).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_EXCLUDE: tuple[str, ...] = ("No Finding",)
"""Classes left out of every macro average by default (multi-label tasks; multi-class averages all classes)."""


def binary_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """AUROC of one class from plain arrays: NaN labels masked; NaN when one label value remains.

    Mann-Whitney with tie-aware (average) ranks: equal to sklearn's ``roc_auc_score`` and to ``ranking.auc_ap``
    with unit weights, but cheap enough to call thousands of times (ensemble weight grids, training epochs).
    """
    from scipy.stats import rankdata

    labels, scores = np.asarray(labels, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    known = ~np.isnan(labels)
    y, s = labels[known] == 1, scores[known]
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def per_class_auroc(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(C,) ``binary_auroc`` of each column of (N, C) ``labels`` / ``probs``; NaN for single-valued classes."""
    return np.array([binary_auroc(labels[:, c], probs[:, c]) for c in range(probs.shape[1])])


def default_exclude(task: str) -> tuple[str, ...]:
    """The classes a macro average of ``task`` leaves out by default: ``DEFAULT_EXCLUDE`` for multi-label, none
    for multi-class (there "No Finding" is one of the mutually exclusive answers)."""
    return DEFAULT_EXCLUDE if task == "multilabel" else ()


@dataclass(frozen=True)
class MacroColumns:
    """Which classes a macro average uses: ``keep`` (column indices averaged), and the names ``excluded`` (by
    name) and ``undefined`` (one label value among the known labels)."""

    keep: list[int]
    excluded: list[str]
    undefined: list[str]


def macro_columns(labels: np.ndarray, classes: Sequence[str], exclude: Sequence[str] = DEFAULT_EXCLUDE
                  ) -> MacroColumns:
    """The columns of (N, C) ``labels`` (NaN unknown) that the macro average uses (see the module docstring)."""
    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim != 2 or labels.shape[1] != len(classes):
        raise ValueError(f"labels of shape {labels.shape} do not match {len(classes)} classes")
    keep, undefined = [], []
    for i, c in enumerate(classes):
        col = labels[:, i][~np.isnan(labels[:, i])]
        if len(np.unique(col)) < 2:
            undefined.append(str(c))
        elif c not in exclude:
            keep.append(i)
    return MacroColumns(keep, [str(c) for c in classes if c in exclude], undefined)


@dataclass(frozen=True)
class MacroAuroc:
    """A macro AUROC and the classes actually averaged (NaN ``value`` and empty ``classes`` when none is
    defined); ``excluded``: left out by name; ``undefined``: one label value on these images."""

    value: float
    classes: list[str]
    excluded: list[str]
    undefined: list[str]

    @property
    def defined(self) -> bool:
        return bool(np.isfinite(self.value))


def macro_auroc(labels: np.ndarray, probs: np.ndarray, classes: Sequence[str],
                exclude: Sequence[str] = DEFAULT_EXCLUDE) -> MacroAuroc:
    """THE macro AUROC: mean ``binary_auroc`` over the defined classes not in ``exclude`` (NaN labels masked).

    Args:
        labels: (N, C) 1/0/NaN (multi-class: one-hot, giving one-vs-rest AUROCs).
        probs: (N, C) scores.
        classes: the C class names, in column order.
        exclude: class names left out by name (default "No Finding"; pass ``()`` for multi-class tasks).
    """
    labels = np.asarray(labels, dtype=np.float64)
    cols = macro_columns(labels, classes, exclude)
    probs = np.asarray(probs, dtype=np.float64)
    values = [binary_auroc(labels[:, i], probs[:, i]) for i in cols.keep]
    value = float(np.mean(values)) if values else float("nan")
    return MacroAuroc(value, [str(classes[i]) for i in cols.keep], cols.excluded, cols.undefined)
