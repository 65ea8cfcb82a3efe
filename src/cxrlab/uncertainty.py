"""Uncertainty: MC-dropout, test-time augmentation, risk-coverage curves and selective prediction.

Per-class uncertainty columns go into predictions files as ``std:<class>`` (spread of the sampled
probabilities), ``entropy:<class>`` (binary predictive entropy of the mean probability, nats) and
``mi:<class>`` (mutual information = predictive entropy - mean per-sample entropy: the model's own
(epistemic) part). Selective prediction picks an abstention threshold on *validation* for a target coverage
and applies it unchanged to test.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from cxrlab.errors import CxrlabError

log = logging.getLogger(__name__)
EPS = 1e-7


# ----------------------------------------------------------------------------- sampling
def dropout_modules(model: nn.Module) -> list[nn.Module]:
    """Modules whose dropout is active in train mode: Dropout layers with p > 0, and timm-style models
    applying functional dropout from a ``drop_rate`` attribute (e.g. timm ResNet heads)."""
    found = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0]
    found += [m for m in model.modules() if not isinstance(m, nn.modules.dropout._DropoutNd)
              and isinstance(getattr(m, "drop_rate", None), (int, float)) and m.drop_rate > 0]
    return found


def enable_mc_dropout(model: nn.Module) -> int:
    """Eval mode everywhere (BatchNorm keeps running stats) except dropout; returns the number enabled."""
    model.eval()
    modules = dropout_modules(model)
    for m in modules:
        m.training = True  # this module only, not its children (a model with drop_rate stays eval below)
    return len(modules)


def _activate(logits: torch.Tensor, task: str) -> torch.Tensor:
    return logits.softmax(-1) if task == "multiclass" else logits.sigmoid()


def _head_only(model: nn.Module, x: torch.Tensor) -> bool:
    """True when, with dropout on, ``forward_features`` is deterministic: all dropout sits in the head, so the
    backbone runs once and only the head is sampled (the common case: ResNet/EfficientNet/paper CNN heads)."""
    if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
        return False
    cached = model.__dict__.get("_mc_head_only")  # the probe costs half a forward: once per model
    if cached is None:
        probe = x[:1]
        cached = bool(torch.equal(model.forward_features(probe), model.forward_features(probe)))
        model.__dict__["_mc_head_only"] = cached
    return cached


def _repeat(t: torch.Tensor, n: int) -> torch.Tensor:
    return t.repeat(n, *([1] * (t.dim() - 1)))


@torch.no_grad()
def mc_dropout_samples(model: nn.Module, x: torch.Tensor, samples: int, task: str = "multilabel",
                       batched: bool = True, max_batch: int = 256, head_only: bool | None = None) -> torch.Tensor:
    """(S, B, C) probabilities from ``samples`` stochastic forward passes with only dropout active.

    Batched mode repeats the batch ``samples`` times in one forward pass (chunks of at most ``max_batch``
    rows; each repeated row draws its own dropout mask). When all dropout is in the head, the backbone runs
    once and only the head is repeated (``head_only``: None = detect, False = always the whole network).
    ``batched=False`` is the plain loop (for comparison).
    """
    if not dropout_modules(model):
        name = getattr(model, "model_name", type(model).__name__)
        raise CxrlabError(
            f"model {name} has no active dropout, so MC-dropout would return the same prediction every time; "
            "use --method tta, an ensemble of runs (`cxrlab ensemble`), or retrain with model.drop_rate=0.2"
        )
    was_training = model.training
    enable_mc_dropout(model)
    try:
        if not batched:
            return torch.stack([_activate(model(x), task) for _ in range(samples)])
        b = x.shape[0]
        run, inp = model, x
        if head_only is not False and _head_only(model, x):
            run, inp = model.forward_head, model.forward_features(x)
        per_chunk = max(1, max_batch // max(b, 1))
        out = []
        for start in range(0, samples, per_chunk):
            n = min(per_chunk, samples - start)
            out.append(_activate(run(_repeat(inp, n)), task).reshape(n, b, -1))  # (n*B, C) -> (n, B, C)
        return torch.cat(out)
    finally:
        model.train(was_training)


def tta_views(flip: bool = False) -> list[tuple[str, float, float, float]]:
    """Medical-safe TTA views (name, dx, dy, scale): identity, 4% shifts, 5% zooms. No flip unless asked
    (the flip view is marked by scale -1)."""
    views = [("identity", 0, 0, 1.0), ("left", -0.04, 0, 1.0), ("right", 0.04, 0, 1.0), ("up", 0, -0.04, 1.0),
             ("down", 0, 0.04, 1.0), ("zoom_in", 0, 0, 1.05), ("zoom_out", 0, 0, 0.95)]
    if flip:
        views.append(("hflip", 0, 0, -1.0))
    return views


def _view(x: torch.Tensor, dx: float, dy: float, scale: float) -> torch.Tensor:
    if scale == -1.0:
        return x.flip(-1)
    if (dx, dy, scale) == (0, 0, 1.0):
        return x
    theta = torch.tensor([[1 / scale, 0, -2 * dx], [0, 1 / scale, -2 * dy]], dtype=x.dtype).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


@torch.no_grad()
def tta_samples(model: nn.Module, x: torch.Tensor, task: str = "multilabel", views: int = 7,
                flip: bool = False) -> torch.Tensor:
    """(V, B, C) probabilities over deterministic medical-safe views (see ``tta_views``)."""
    model.eval()
    chosen = tta_views(flip)[: max(1, views)]
    if flip and not any(v[0] == "hflip" for v in chosen):
        chosen[-1] = tta_views(True)[-1]
    if flip:
        log.warning("TTA with horizontal flip: anatomy is not mirror-symmetric (S4 measured flip-TTA hurting)")
    return torch.stack([_activate(model(_view(x, dx, dy, s)), task) for _, dx, dy, s in chosen])


def summarize(samples: np.ndarray) -> dict[str, np.ndarray]:
    """mean, std, entropy, mi (each (B, C)) from (S, B, C) sampled probabilities (binary per class)."""
    p = np.clip(samples, EPS, 1 - EPS)
    mean = p.mean(axis=0)
    entropy = -(mean * np.log(mean) + (1 - mean) * np.log(1 - mean))
    expected = -(p * np.log(p) + (1 - p) * np.log(1 - p)).mean(axis=0)
    return {"mean": samples.mean(axis=0), "std": samples.std(axis=0), "entropy": entropy,
            "mi": np.clip(entropy - expected, 0, None)}


def uncertainty_frame(stats: dict[str, np.ndarray], classes: list[str]) -> pd.DataFrame:
    """The ``std:<class>``, ``entropy:<class>``, ``mi:<class>`` columns."""
    cols = {f"{k}:{c}": stats[k][:, i] for k in ("std", "entropy", "mi") for i, c in enumerate(classes)}
    return pd.DataFrame(cols)


def uncertainty_predictions(run_dir: str | Path, split: str, method: str, out: str | Path, samples: int = 30,
                            batch_size: int = 16, tta_flip: bool = False) -> Path:
    """Predict a run's split with MC-dropout or TTA; write a predictions file with uncertainty columns."""
    from cxrlab.explain.inputs import (
        build_preprocess,
        cached_rows,
        image_set_from_index,
        iter_batches,
        load_run,
        open_run_cache,
        run_data,
    )
    from cxrlab.predictions import Predictions, write_predictions

    if method not in ("mc_dropout", "tta"):
        raise CxrlabError(f"unknown uncertainty method {method!r}; valid: mc_dropout, tta")
    if samples < 2:
        raise CxrlabError(f"--samples {samples}: need at least 2 samples to measure spread")
    model, info = load_run(run_dir)
    classes, task = list(info["classes"]), info.get("task", "multilabel")
    index_path, split_csv = run_data(run_dir, info)
    images = image_set_from_index(index_path, classes, split, split_csv)
    pre = build_preprocess(info)
    cache = open_run_cache(info, images, pre)  # the run's cache when it holds the images, else the files
    parts = []
    for _, x, _ in iter_batches(images, pre, batch_size, cache):
        if method == "mc_dropout":
            parts.append(mc_dropout_samples(model, x, samples, task).numpy())
        else:
            parts.append(tta_samples(model, x, task, views=samples, flip=tta_flip).numpy())
    stats = summarize(np.concatenate(parts, axis=1))
    meta = {"task": task, "classes": classes, "model": info.get("model_name"), "split": split,
            "run_dir": str(run_dir), "uncertainty": method, "samples": int(parts[0].shape[0]),
            "checkpoint_sha256": info.get("weights_sha256"),
            "images_from_cache": int((cached_rows(images, cache) >= 0).sum())}
    preds = Predictions(images.image_ids, stats["mean"], classes, meta, None, uncertainty_frame(stats, classes))
    return write_predictions(out, preds)


# ----------------------------------------------------------------------------- risk and coverage
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


def _subset_metrics(probs, y, errors, keep, task) -> dict[str, Any]:
    from cxrlab.evaluate.metrics import macro_auroc

    return {"coverage": float(keep.mean()), "n_kept": int(keep.sum()), "n_abstained": int((~keep).sum()),
            "risk": float(errors[keep].mean()) if keep.any() else float("nan"),
            "macro_auroc": macro_auroc(y[keep], probs[keep]) if keep.sum() > 1 else float("nan")}


def selective_prediction(val: str | Path, test: str | Path, labels: str | Path, out_dir: str | Path,
                         coverage: float = 0.9, score: str = "auto", std_threshold: float | None = None) -> dict:
    """Choose an abstention threshold on validation for ``coverage``; apply it to test; write outputs.

    Writes ``risk_coverage.png``, ``selective.json`` (threshold, val/test coverage, risk and macro AUROC on
    kept vs all, AURC) and ``review.csv`` (test images flagged for review: abstained, or any class std above
    ``std_threshold`` when given: S2's rule is 0.15).
    """
    from cxrlab.ensemble import labels_for
    from cxrlab.predictions import read_predictions
    from cxrlab.utils import atomic_write_text, write_json

    if not 0 < coverage <= 1:
        raise CxrlabError(f"--coverage {coverage} must be in (0, 1]")
    from cxrlab.guards import check_not_test, hashes_of, labels_index, test_set_of_predictions, test_set_of_run

    vp, tp = read_predictions(val), read_predictions(test)
    same, index = Path(val).resolve() == Path(test).resolve(), labels_index(labels)
    tests = [None if same else test_set_of_predictions(tp, index), test_set_of_run(vp.meta.get("run_dir"))]
    check_not_test(val, vp.image_ids, what="the abstention threshold", allow=False, marked_split=vp.split, tests=tests,
                   hashes=hashes_of(vp.image_ids, index), same_file=same, how="validation predictions (--val)",
                   escape=False)
    task = vp.task or tp.task or "multilabel"
    result: dict[str, Any] = {"coverage_target": coverage}
    source = [(p.meta.get("model"), p.meta.get("uncertainty"), p.meta.get("method")) for p in (vp, tp)]
    if source[0] != source[1]:  # a threshold only transfers between predictions of the same kind
        result["warning"] = f"val and test predictions differ in model/uncertainty method: {source[0]} vs {source[1]}"
        log.warning(result["warning"])
    scored = {}
    for name, p in (("val", vp), ("test", tp)):
        y = labels_for(labels, p.image_ids, p.classes)
        u, used = uncertainty_score(p.probs, p.extra, p.classes, task, score)
        scored[name] = (p, y, u, image_errors(p.probs, y, task))
    threshold = float(np.quantile(scored["val"][2], coverage, method="higher"))
    result.update(score=used, threshold=threshold)
    for name, (p, y, u, err) in scored.items():
        rc = risk_coverage(u, err)
        keep = u <= threshold
        result[name] = {"kept": _subset_metrics(p.probs, y, err, keep, task),
                        "all": _subset_metrics(p.probs, y, err, np.ones_like(keep), task), "aurc": rc["aurc"]}
        scored[name] = (*scored[name], rc, keep)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    review = _review_frame(scored["test"][0], scored["test"][2], scored["test"][5], std_threshold)
    atomic_write_text(out_dir / "review.csv", review.to_csv(index=False, lineterminator="\n"))
    result["test"]["n_review"] = int(len(review))
    _plot_risk_coverage({k: v[4] for k, v in scored.items()}, threshold, out_dir / "risk_coverage.png")
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
    from cxrlab.evaluate.figures import risk_coverage_figure
    from cxrlab.utils import atomic_write_bytes

    atomic_write_bytes(path, risk_coverage_figure(curves, f"risk-coverage (abstain above {threshold:.3g})"))
