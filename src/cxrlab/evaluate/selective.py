"""Risk-coverage curves and selective prediction, computed from predictions files alone.

An image's uncertainty is a score (``confidence``, or the largest per-class ``std:``/``entropy:``/``mi:``
column that ``cxrlab uncertainty`` and ``cxrlab ensemble`` write); its error is 0/1 (multi-class arg-max) or
the fraction of known labels wrong (multi-label). Risk at coverage c is the mean error of the c most certain
images; AURC is its mean over all coverages. ``selective_prediction`` picks an abstention threshold on
*validation* for a target coverage and applies it unchanged to test; ``summarize_uncertainty`` is the
``uncertainty`` block of ``metrics.json``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlab.errors import CxrlabError
from cxrlab.evaluate.figures import risk_coverage_figure
from cxrlab.evaluate.labels import labels_for
from cxrlab.evaluate.metrics import default_exclude, macro_auroc
from cxrlab.guards import Reach, check_fitting
from cxrlab.predictions import Predictions, read_predictions
from cxrlab.utils import atomic_write_bytes, atomic_write_text, write_json

log = logging.getLogger(__name__)


def uncertainty_score(probs: np.ndarray, extra: pd.DataFrame | None, classes: list[str], task: str,
                      score: str = "auto") -> tuple[np.ndarray, str]:
    """(N,) per-image uncertainty (higher = less sure) and the score used.

    confidence: multi-class 1 - max probability; multi-label the least decided class, 1 - |2p - 1|.
    std / entropy / mi: the largest of the per-class columns of that name.
    """
    if score == "auto":
        score = "std" if extra is not None and f"std:{classes[0]}" in extra.columns else "confidence"
    if score == "confidence":
        u = 1 - probs.max(axis=1) if task == "multiclass" else (1 - np.abs(2 * probs - 1)).max(axis=1)
        return u, score
    cols = [f"{score}:{c}" for c in classes]
    if extra is None or any(c not in extra.columns for c in cols):
        raise CxrlabError(f"--score {score}: the predictions lack {cols[0]} columns; make them with "
                          "`cxrlab uncertainty` or `cxrlab ensemble`, or use --score confidence")
    return extra[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64).max(axis=1), score


def image_errors(probs: np.ndarray, y: np.ndarray, task: str, threshold: float = 0.5) -> np.ndarray:
    """(N,) per-image error: multi-class 0/1 (argmax wrong); multi-label the fraction of known labels wrong."""
    if task == "multiclass":
        return (probs.argmax(axis=1) != np.nanargmax(np.nan_to_num(y, nan=-1), axis=1)).astype(float)
    wrong = np.where(np.isnan(y), np.nan, ((probs >= threshold) != (y == 1)).astype(float))
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(np.nanmean(wrong, axis=1), nan=0.0)


def risk_coverage(uncertainty: np.ndarray, errors: np.ndarray) -> dict[str, Any]:
    """Risk (mean error of the kept images) at each coverage, keeping the most certain first; AURC."""
    order = np.argsort(uncertainty, kind="stable")
    risk = np.cumsum(errors[order]) / np.arange(1, len(order) + 1)
    coverage = np.arange(1, len(order) + 1) / len(order)
    return {"coverage": coverage, "risk": risk, "aurc": float(risk.mean()),
            "risk_at_full": float(risk[-1]) if len(risk) else float("nan")}


UNCERTAINTY_KINDS = ("std", "entropy", "mi")
REVIEW_STD = 0.15  # S2's rule: flag an image for review when any class's MC-dropout std exceeds it
ERROR_DEFINITION = ("per-image error: multi-label, the fraction of known labels wrong at threshold 0.5; multi-class, "
                    "1 when the arg-max class is wrong. Risk at coverage c: mean error of the c most certain images "
                    "(per-image uncertainty = the largest per-class value of the score). AURC: mean risk over all "
                    "coverages (lower is better).")


def _thin(curve: dict[str, Any], points: int) -> dict[str, list[float]]:
    """At most ``points`` evenly spaced points of a risk-coverage curve (last point kept), as lists."""
    n = len(curve["coverage"])
    keep = np.unique(np.linspace(0, n - 1, min(n, points)).round().astype(int)) if n else np.zeros(0, int)
    return {"coverage": [round(float(v), 5) for v in curve["coverage"][keep]],
            "risk": [round(float(v), 5) for v in curve["risk"][keep]]}


def summarize_uncertainty(probs: np.ndarray, y: np.ndarray, extra: pd.DataFrame | None, classes: list[str],
                          task: str, std_threshold: float = REVIEW_STD, points: int = 101) -> dict[str, Any] | None:
    """The ``uncertainty`` block of ``metrics.json`` from row-aligned ``std:/entropy:/mi:<class>`` columns.

    Mean of each column kind per class, the risk-coverage curve and AURC of each kind (and of plain
    confidence, for contrast), and how many images S2's review rule (any class std > ``std_threshold``) flags.
    None when ``extra`` lacks a complete set of any kind.
    """
    cols = extra.columns if extra is not None else []
    kinds = [k for k in UNCERTAINTY_KINDS if all(f"{k}:{c}" in cols for c in classes)]
    if not kinds or not len(probs):
        return None
    values = {k: extra[[f"{k}:{c}" for c in classes]].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
              for k in kinds}
    errors = image_errors(probs, y, task)
    curves = {k: risk_coverage(uncertainty_score(probs, extra, classes, task, k)[0], errors)
              for k in [*kinds, "confidence"]}
    score = kinds[0]  # std when present: the spread of the sampled probabilities
    block: dict[str, Any] = {
        "kinds": kinds, "n_images": int(len(probs)), "score": score,
        "aurc": curves[score]["aurc"], "risk_at_full": curves[score]["risk_at_full"],
        "aurc_by_score": {k: c["aurc"] for k, c in curves.items()},
        "per_class": {c: {f"mean_{k}": float(np.nanmean(values[k][:, i])) for k in kinds}
                      for i, c in enumerate(classes)},
        "curve": _thin(curves[score], points), "curve_confidence": _thin(curves["confidence"], points),
        "error": ERROR_DEFINITION, "review": None,
    }
    if "std" in values:
        flagged = np.nanmax(values["std"], axis=1) > std_threshold
        block["review"] = {"rule": f"any class std > {std_threshold} (S2)", "std_threshold": std_threshold,
                           "n_flagged": int(flagged.sum()), "fraction": float(flagged.mean())}
    return block


def _subset_metrics(probs, y, errors, keep, task, classes) -> dict[str, Any]:
    macro = macro_auroc(y[keep], probs[keep], classes, default_exclude(task))
    return {"coverage": float(keep.mean()), "n_kept": int(keep.sum()), "n_abstained": int((~keep).sum()),
            "risk": float(errors[keep].mean()) if keep.any() else float("nan"),
            "macro_auroc": macro.value, "macro_auroc_classes": macro.classes}


@dataclass(frozen=True)
class SelectiveSet:
    """One side (val or test) of selective prediction: predictions, labels, per-image uncertainty and error,
    the risk-coverage curve, and which images the threshold keeps."""

    preds: Predictions
    labels: np.ndarray
    uncertainty: np.ndarray
    errors: np.ndarray
    curve: dict[str, Any]
    keep: np.ndarray


def selective_prediction(val: str | Path, *, test: str | Path, labels: str | Path, out: str | Path,
                         coverage: float = 0.9, score: str = "auto", std_threshold: float | None = None,
                         allow_unverified: bool = False) -> dict:
    """Choose an abstention threshold on validation for ``coverage``; apply it to test; write outputs.

    Writes ``risk_coverage.png``, ``selective.json`` (threshold, val/test coverage, risk and macro AUROC on
    kept vs all, AURC) and ``review.csv`` (test images flagged for review: abstained, or any class std above
    ``std_threshold`` when given: S2's rule is 0.15).
    """
    if not 0 < coverage <= 1:
        raise CxrlabError(f"--coverage {coverage} must be in (0, 1]")
    vp, tp = read_predictions(val), read_predictions(test)
    same, reach = Path(val).resolve() == Path(test).resolve(), Reach()
    reach.add_labels(labels)
    reach.add_predictions(vp)
    reach.add_predictions(tp, None if same else f"the test predictions {test}")
    record = check_fitting(val, vp.image_ids, reach, what="the abstention threshold", allow=False,
                           allow_unverified=allow_unverified, marked_split=vp.split, same_file=same,
                           how="validation predictions (--val)", escape=False)
    task = vp.task or tp.task or "multilabel"
    result: dict[str, Any] = {"coverage_target": coverage, "unverified": record}
    source = [(p.meta.get("model"), p.meta.get("uncertainty"), p.meta.get("method")) for p in (vp, tp)]
    if source[0] != source[1]:  # a threshold only transfers between predictions of the same kind
        result["warning"] = f"val and test predictions differ in model/uncertainty method: {source[0]} vs {source[1]}"
        log.warning(result["warning"])
    sides: dict[str, SelectiveSet] = {}
    scores: dict[str, str] = {}
    for name, p in (("val", vp), ("test", tp)):
        y = labels_for(labels, p.image_ids, p.classes)
        u, used = uncertainty_score(p.probs, p.extra, p.classes, task, score)
        scores[name] = used
        err = image_errors(p.probs, y, task)
        sides[name] = SelectiveSet(p, y, u, err, risk_coverage(u, err), np.ones(len(u), dtype=bool))
    if scores["val"] != scores["test"]:  # a threshold on one score means nothing on another: no silent abstention
        raise CxrlabError(f"--val {val} is scored by {scores['val']} but --test {test} by {scores['test']} (the "
                          "uncertainty columns differ); run `cxrlab uncertainty` on both splits, or pass --score "
                          "confidence")
    threshold = float(np.quantile(sides["val"].uncertainty, coverage, method="higher"))
    result.update(score=used, threshold=threshold)
    for name, side in sides.items():
        side = sides[name] = replace(side, keep=side.uncertainty <= threshold)
        p, y, err = side.preds, side.labels, side.errors
        result[name] = {"kept": _subset_metrics(p.probs, y, err, side.keep, task, p.classes),
                        "all": _subset_metrics(p.probs, y, err, np.ones_like(side.keep), task, p.classes),
                        "aurc": side.curve["aurc"]}
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    test_side = sides["test"]
    review = _review_frame(test_side.preds, test_side.uncertainty, test_side.keep, std_threshold)
    atomic_write_text(out_dir / "review.csv", review.to_csv(index=False, lineterminator="\n"))
    result["test"]["n_review"] = int(len(review))
    _plot_risk_coverage({k: v.curve for k, v in sides.items()}, threshold, out_dir / "risk_coverage.png")
    write_json(out_dir / "selective.json", result)
    return result


def _review_frame(p, u: np.ndarray, keep: np.ndarray, std_threshold: float | None) -> pd.DataFrame:
    flag = ~keep
    reason = np.where(flag, "abstained", "")
    if std_threshold is not None:
        cols = [f"std:{c}" for c in p.classes]
        if p.extra is None or any(c not in p.extra.columns for c in cols):
            raise CxrlabError("--std-threshold needs std:<class> columns; make them with `cxrlab uncertainty`")
        high = p.extra[cols].astype(float).to_numpy().max(axis=1) > std_threshold
        reason = np.where(high, np.where(flag, "abstained;std", f"std>{std_threshold}"), reason)
        flag |= high
    frame = pd.DataFrame({"image_id": p.image_ids, "uncertainty": u, "reason": reason})
    probs = pd.DataFrame(p.probs, columns=p.classes)
    return pd.concat([frame, probs], axis=1)[flag].sort_values("uncertainty", ascending=False)


def _plot_risk_coverage(curves: dict[str, dict], threshold: float, path: Path) -> None:
    atomic_write_bytes(path, risk_coverage_figure(curves, f"risk-coverage (abstain above {threshold:.3g})"))
