"""Ensembles of predictions files: mean, weighted, class-specific weights, rank averaging, stacking.

Everything fitted (weights, stacking models) is fitted on *validation* predictions and their labels only;
test predictions are combined with the fitted parameters and their labels are never read. A validation file
whose sidecar says ``split: test`` (or that shares image ids with the test members) is refused unless the
caller passes ``allow_test_fitting=True``, which is logged loudly and recorded in the output sidecar.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from cxrlab.auroc import default_exclude
from cxrlab.errors import CxrlabError
from cxrlab.evaluate.labels import labels_for
from cxrlab.evaluate.metrics import binary_auroc, macro_auroc
from cxrlab.guards import Reach, check_fitting
from cxrlab.predictions import Predictions, read_predictions, run_predictions_path, write_predictions
from cxrlab.rundir import MANIFEST, RunDir
from cxrlab.tasks import probabilities

log = logging.getLogger(__name__)

METHODS = ("mean", "weighted", "class", "rank", "stack")
FITTED = ("weighted", "class", "stack")


# ----------------------------------------------------------------------------- inputs
def resolve_member(path: str | Path, split: str) -> Path:
    """A predictions CSV, or a run directory -> its ``predictions/<split>.csv``."""
    path = Path(path)
    if path.is_dir():
        run = RunDir(path)  # a missing or garbled run file: the one error every verb gives
        run.check(need=(MANIFEST,) if run.is_training_run else ())
    return run_predictions_path(path, split) if path.is_dir() else path


def align_members(members: list[Predictions], what: str) -> list[Predictions]:
    """Check that all members cover the same images and classes; reorder rows and columns to the first's."""
    ref = members[0]
    ref_ids = set(ref.image_ids)
    for m in members[1:]:
        if set(m.classes) != set(ref.classes):
            miss = sorted(set(ref.classes) - set(m.classes))
            extra = sorted(set(m.classes) - set(ref.classes))
            raise CxrlabError(
                f"{what}: {m.path} has different classes from {ref.path}: missing {miss or 'none'}, "
                f"extra {extra or 'none'}; ensemble members must predict the same classes"
            )
        ids = set(m.image_ids)
        if ids != ref_ids:
            miss, extra = sorted(ref_ids - ids), sorted(ids - ref_ids)
            raise CxrlabError(
                f"{what}: {m.path} covers different images from {ref.path}: {len(miss)} missing "
                f"(e.g. {miss[:3]}), {len(extra)} extra (e.g. {extra[:3]}); predict all members on the same set"
            )
        if len(ids) != len(m.image_ids):
            raise CxrlabError(f"{m.path} repeats image ids; each image must appear once")
    out = [ref]
    for m in members[1:]:
        row = pd.Series(range(len(m.image_ids)), index=m.image_ids)[ref.image_ids].to_numpy()
        col = [m.classes.index(c) for c in ref.classes]
        out.append(Predictions(list(ref.image_ids), m.probs[row][:, col], list(ref.classes), m.meta,
                               ref.patient_ids, None, m.path))
    return out


# ----------------------------------------------------------------------------- fitting
def simplex_grid(m: int, step: float) -> np.ndarray:
    """All weight vectors of ``m`` non-negative multiples of ``step`` summing to 1: (K, m)."""
    n = int(round(1 / step))
    rows = [c for c in itertools.product(range(n + 1), repeat=m - 1) if sum(c) <= n]
    return np.array([[*c, n - sum(c)] for c in rows], dtype=np.float64) / n


def _grid_step(m: int) -> float:
    # keep the grid under ~2,000 points: 0.05 for 2-3 members, 0.1 for 4-5, 0.25 beyond
    return 0.05 if m <= 3 else 0.1 if m <= 5 else 0.25


def fit_weights(stack: np.ndarray, y: np.ndarray, classes: list[str] | None = None,
                task: str = "multilabel") -> np.ndarray:
    """Global member weights (M,) on the simplex maximising macro AUROC (``cxrlab.auroc.macro_auroc``, classes
    named by ``classes``) of the weighted mean. stack: (M, N, C)."""
    grid = simplex_grid(stack.shape[0], _grid_step(stack.shape[0]))
    names = classes if classes is not None else [str(i) for i in range(stack.shape[2])]
    scores = [macro_auroc(y, np.tensordot(w, stack, axes=1), names, default_exclude(task)).value for w in grid]
    if not np.isfinite(scores).any():
        raise CxrlabError("validation labels have no class with both positives and negatives; cannot fit weights")
    return grid[int(np.nanargmax(scores))]


def fit_class_weights(stack: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-class member weights (C, M), each class's weights maximising that class's validation AUROC."""
    m, _, c = stack.shape
    grid = simplex_grid(m, _grid_step(m))
    out = np.full((c, m), 1.0 / m)
    for k in range(c):
        combined = grid @ stack[:, :, k]  # (K, N): every candidate's scores for class k
        scores = np.array([binary_auroc(y[:, k], s) for s in combined])
        if np.isfinite(scores).any():  # a class with one label value on val keeps equal weights
            out[k] = grid[int(np.nanargmax(scores))]
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def fit_stacking(stack: np.ndarray, y: np.ndarray, task: str) -> dict[str, Any]:
    """Logistic regression on member logits: one per class (multi-label) or one multinomial (multi-class)."""
    from sklearn.linear_model import LogisticRegression

    m, n, c = stack.shape
    if task == "multiclass":
        x = _logit(stack).transpose(1, 0, 2).reshape(n, m * c)
        target = np.nanargmax(np.nan_to_num(y, nan=-1), axis=1)
        model = LogisticRegression(C=1.0, max_iter=1000).fit(x, target)
        if len(model.classes_) != c:
            raise CxrlabError("stacking needs every class present in the validation labels; use --method weighted")
        return {"coef": model.coef_.tolist(), "intercept": model.intercept_.tolist()}
    coefs, intercepts = [], []
    for k in range(c):
        keep = ~np.isnan(y[:, k])
        x, t = _logit(stack[:, keep, k]).T, y[keep, k]
        if len(np.unique(t)) < 2:  # cannot fit: fall back to the plain mean of logits
            coefs.append([1.0 / m] * m)
            intercepts.append(0.0)
            continue
        model = LogisticRegression(C=1.0, max_iter=1000).fit(x, t)
        coefs.append(model.coef_[0].tolist())
        intercepts.append(float(model.intercept_[0]))
    return {"coef": coefs, "intercept": intercepts}


# ----------------------------------------------------------------------------- combining
def combine(stack: np.ndarray, method: str, params: dict[str, Any], task: str) -> np.ndarray:
    """Combine member probabilities (M, N, C) into (N, C) with fitted ``params``."""
    if method == "mean":
        out = stack.mean(axis=0)
    elif method == "weighted":
        out = np.tensordot(np.asarray(params["weights"]), stack, axes=1)
    elif method == "class":
        out = np.einsum("cm,mnc->nc", np.asarray(params["class_weights_matrix"]), stack)
    elif method == "rank":
        # ranks scaled to [0, 1] per member and class: a score for ranking (AUROC), not a calibrated probability
        ranks = np.stack([(rankdata(s, axis=0) - 1) / max(s.shape[0] - 1, 1) for s in stack])
        out = ranks.mean(axis=0)
    elif method == "stack":
        out = _apply_stacking(stack, params, task)
    else:
        raise CxrlabError(f"unknown ensemble method {method!r}; valid: {', '.join(METHODS)}")
    if task == "multiclass" and method in ("class", "rank"):
        out = out / np.clip(out.sum(axis=1, keepdims=True), 1e-12, None)
    return out


def _apply_stacking(stack: np.ndarray, params: dict[str, Any], task: str) -> np.ndarray:
    m, n, c = stack.shape
    coef, intercept = np.asarray(params["coef"]), np.asarray(params["intercept"])
    if task == "multiclass":
        return probabilities(_logit(stack).transpose(1, 0, 2).reshape(n, m * c) @ coef.T + intercept, task)
    return probabilities(np.einsum("cm,mnc->nc", coef, _logit(stack)) + intercept, task)


# ----------------------------------------------------------------------------- the whole job
def _check_not_test(val: list[Predictions], test: list[Predictions], allow: tuple[bool, bool],
                    labels=None) -> tuple[bool, list[dict]]:
    """Refuse fitting on test predictions (by sidecar, image id and file hash, against the test members and the
    test split of every run the files name: ``cxrlab.guards``); returns whether test fitting was (loudly)
    allowed, and the records of checks let through incomplete by ``--allow-unverified``."""
    reach = Reach()
    reach.add_labels(labels)
    for p in [*val, *test[1:]]:
        reach.add_predictions(p)
    reach.add_predictions(test[0], "the test members")
    records = [check_fitting(v.path, v.image_ids, reach, what="ensemble weights", allow=allow[0],
                             allow_unverified=allow[1], marked_split=v.split,
                             how="validation predictions (--val run/predictions/val.csv)") for v in val]
    return (any(r and r.get("fitted_on_test") for r in records),
            [r for r in records if r and r.get("unverified")])


def ensemble_predictions(
    members: list[str | Path],
    *,
    out: str | Path,
    method: str = "mean",
    val: list[str | Path] | None = None,
    labels: str | Path | None = None,
    allow_test_fitting: bool = False,
    allow_unverified: bool = False,
) -> Path:
    """Combine ``members`` (predictions files or run dirs) into one predictions file at ``out``.

    Args:
        members: test predictions files, or run directories (their ``predictions/test.csv``).
        out: output CSV; a ``.json`` sidecar records method, members and fitted weights.
        method: mean | weighted | class | rank | stack.
        val: validation predictions (same order as ``members``; run dirs give ``predictions/val.csv``).
            Required for the fitted methods; defaults to the members' val files when members are run dirs.
        labels: index or labels file holding the validation labels (only validation rows are read).
        allow_test_fitting: fit even when ``val`` is test data (logged and recorded).
        allow_unverified: fit even when the test-set check is incomplete (logged and recorded as ``unverified``).
    """
    if method not in METHODS:
        raise CxrlabError(f"unknown ensemble method {method!r}; valid: {', '.join(METHODS)}")
    if len(members) < 2:
        raise CxrlabError("an ensemble needs at least two members")
    test = align_members([read_predictions(resolve_member(p, "test")) for p in members], "members")
    task = test[0].task or _guess_task(test[0].probs)
    params: dict[str, Any] = {}
    fitted_on_test, unverified = False, []
    if method in FITTED:
        if val is None and all(Path(p).is_dir() for p in members):
            val = list(members)
        params, fitted_on_test, unverified = _fit_on_validation(method, members, test, val, labels, task,
                                                                (allow_test_fitting, allow_unverified))
    stack = np.stack([m.probs for m in test])  # (M, N, C)
    probs = combine(stack, method, params, task)
    extra = pd.DataFrame(stack.std(axis=0), columns=[f"std:{c}" for c in test[0].classes])  # disagreement
    meta = {
        "task": task,
        "model": f"ensemble:{method}",
        "split": test[0].split,
        "method": method,
        "members": [str(m.path) for m in test],
        "member_models": [m.meta.get("model") for m in test],
        "params": params,
        "fitted_on": [str(v) for v in (val or [])] if method in FITTED else None,
        "fitted_on_test": fitted_on_test,
        "unverified": unverified or None,
        "std_columns": "standard deviation across members (disagreement)",
    }
    if method == "rank":
        meta["note"] = "rank-averaged scores in [0, 1]: good for AUROC, not calibrated probabilities"
    preds = Predictions(test[0].image_ids, probs, test[0].classes, meta, test[0].patient_ids, extra)
    return write_predictions(out, preds)


def _fit_on_validation(method, members, test, val, labels, task, allow) -> tuple[dict, bool, list[dict]]:
    if not val or len(val) != len(members):
        raise CxrlabError(f"--method {method} needs --val with one validation file per member ({len(members)})")
    if labels is None:
        raise CxrlabError(f"--method {method} needs --labels INDEX for the validation labels")
    vals = align_members([read_predictions(resolve_member(p, "val")) for p in val], "--val")
    if vals[0].classes != test[0].classes:
        raise CxrlabError(f"--val classes {vals[0].classes} differ from the members' {test[0].classes}")
    fitted_on_test, unverified = _check_not_test(vals, test, allow, labels)
    return _fit(method, vals, labels, task), fitted_on_test, unverified


def _fit(method: str, vals: list[Predictions], labels: str | Path, task: str) -> dict[str, Any]:
    classes = vals[0].classes
    y = labels_for(labels, vals[0].image_ids, classes)
    stack = np.stack([v.probs for v in vals])
    exclude = default_exclude(task)
    base = {"val_macro_auroc_members": [macro_auroc(y, s, classes, exclude).value for s in stack]}
    if method == "weighted":
        params = {"weights": fit_weights(stack, y, classes, task).tolist()}
    elif method == "class":
        cw = fit_class_weights(stack, y)
        params = {"class_weights": {c: w.tolist() for c, w in zip(vals[0].classes, cw)}}
        params["class_weights_matrix"] = cw.tolist()
    else:
        params = fit_stacking(stack, y, task)
    fitted = combine(stack, method, params, task)
    macro = macro_auroc(y, fitted, classes, exclude)
    return {**params, **base, "val_macro_auroc_ensemble": macro.value, "val_macro_auroc_classes": macro.classes}


def _guess_task(probs: np.ndarray) -> str:
    sums = probs.sum(axis=1)
    return "multiclass" if probs.shape[1] > 1 and np.allclose(sums, 1.0, atol=1e-3) else "multilabel"
