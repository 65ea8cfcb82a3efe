"""Nested cross-validation: choose among candidate recipes without scoring the choice on data it saw.

``run_selection`` reuses ``cxrlab.cv``'s folds. For each outer fold k, every candidate trains on the other folds
(checkpoint chosen on an inner validation set carved, at patient level, from those folds: ``cv.fold_split``, the
same inner split for every candidate, so they are compared on the same images). Each candidate's *inner score*
is the macro AUROC (``cxrlab.auroc``, the definition ``evaluate`` reports) of its predictions of that inner
validation set; the candidate with the highest inner score wins fold k (ties: the first listed), and only the
winner's prediction of the outer fold is scored, once. The outer scores are the honest estimate of "select with
this procedure, then train": their mean and sd over folds, and the macro AUROC of the pooled out-of-fold
predictions. No image of the outer fold or of the split's test rows enters a choice (``_inner_predictions``
refuses them).

The inner score is itself optimistic for each candidate (the epoch was chosen on the same inner set), a little
more so for longer schedules, which have more epochs to choose from; the outer scores are not, since nothing
was chosen on them. After every fold's winner is fixed, ``plain_selection`` scores *every* candidate on the outer
folds and reports what the usual, non-nested "best of the candidates' CV means" would have claimed, only as a
diagnostic of that optimism; it decides nothing.

Candidates that differ only in ``tta`` share one trained model per fold (TTA is applied at prediction time,
``cxrlab.predict.tta``). Layout of ``out``: cv's ``split.csv`` and ``splits/fold<k>.csv``; ``fold<k>/<run>/``
(a normal run directory per distinct training recipe) and its ``cost.json`` (CPU seconds of that training);
``fold<k>/<candidate>.<val|test>.csv`` (TTA predictions); ``outer/fold<k>.csv`` (the winner's outer-fold
predictions); ``oof.csv``; ``select.json`` and ``select.md``. Re-running skips finished trainings and resumes an
interrupted one; ``select_settings.json`` refuses a rerun whose folds or same-named candidates differ.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrlab import cv
from cxrlab.config import Config, config_to_dict, load_config
from cxrlab.data.index import Index, load_index
from cxrlab.data.splits import load_split
from cxrlab.errors import CxrlabError
from cxrlab.predictions import Predictions, read_predictions, run_predictions_path, write_predictions
from cxrlab.rundir import RunDir
from cxrlab.utils import atomic_write_text, read_json, write_json

log = logging.getLogger(__name__)
TTA_MODES = ("none", "shifts")  # cxrlab.predict.tta.TTA_MODES (not imported: torch loads only when predicting)
SETTINGS = "select_settings.json"


@dataclass(frozen=True)
class Candidate:
    """One recipe to choose among: a resolved config and the prediction-time augmentation it predicts with."""

    name: str
    config: Config
    tta: str = "none"

    def training_key(self) -> str:
        """What makes two candidates train the same model (everything but the name; TTA is not training)."""
        d = config_to_dict(self.config)
        d.pop("name", None)
        d.pop("source", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class FoldResult:
    """One outer fold: every candidate's inner score, the winner, and the winner's outer score (taken once)."""

    fold: int
    inner: dict[str, float]
    winner: str
    outer_macro_auroc: float
    n_outer: int
    n_inner_val: int
    train_cpu_seconds: dict[str, float] = field(default_factory=dict)
    n_train: int = 0


def parse_candidate(spec: str, common: list[str] | None = None) -> Candidate:
    """``NAME=CONFIG[,key=value...]`` (``--candidate``): CONFIG is a recipe file or built-in name, then the
    ``common`` overrides, then the candidate's own; ``tta=shifts`` sets its prediction-time augmentation."""
    name, sep, rest = spec.partition("=")
    name = name.strip()
    if not sep or not name or not rest.strip():
        raise CxrlabError(f"--candidate {spec!r}: write NAME=CONFIG[,key=value...], e.g. "
                          "r18=cpu_small,train.epochs=40,tta=shifts")
    if not name.replace("_", "").replace("-", "").isalnum():
        raise CxrlabError(f"--candidate {spec!r}: the name {name!r} may hold only letters, digits, '-' and '_'")
    recipe, *pairs = [p.strip() for p in rest.split(",")]
    tta, overrides = "none", []
    for pair in pairs:
        if "=" not in pair:
            raise CxrlabError(f"--candidate {name}: {pair!r} is not key=value (separate settings with commas)")
        if pair.startswith("tta="):
            tta = pair.split("=", 1)[1]
            if tta not in TTA_MODES:
                raise CxrlabError(f"--candidate {name}: tta={tta!r} is not one of {', '.join(TTA_MODES)}")
        else:
            overrides.append(pair)
    try:
        config = load_config(recipe, list(common or []) + overrides)
    except CxrlabError as exc:
        raise CxrlabError(f"--candidate {name}: {exc}") from None
    return Candidate(name, config, tta)


def _check_candidates(candidates: list[Candidate]) -> None:
    if len(candidates) < 2:
        raise CxrlabError(f"select needs at least 2 --candidate (got {len(candidates)}); for one recipe use cv")
    names = [c.name for c in candidates]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CxrlabError(f"--candidate names must be unique; {', '.join(dup)} is given twice")
    first = candidates[0].config
    for c in candidates[1:]:
        for key in ("index", "split", "cache"):
            if getattr(c.config.data, key) != getattr(first.data, key):
                raise CxrlabError(f"--candidate {c.name}: data.{key}={getattr(c.config.data, key)!r} differs from "
                                  f"{candidates[0].name}'s {getattr(first.data, key)!r}; every candidate must see the "
                                  "same data (set it once with --set)")
        if c.config.train.seed != first.train.seed:
            raise CxrlabError(f"--candidate {c.name}: train.seed={c.config.train.seed} differs from "
                              f"{candidates[0].name}'s {first.train.seed}; the folds come from one seed")


def _check_settings(out: Path, candidates: list[Candidate], folds: int, inner_val: float) -> None:
    """Refuse a rerun into ``out`` whose folds or same-named candidates differ from the first run's."""
    d = candidates[0].config.data
    now = {"folds": folds, "inner_val": inner_val, "seed": candidates[0].config.train.seed, "index": str(d.index),
           "split": str(d.split), "candidates": {c.name: f"{c.training_key()}/{c.tta}" for c in candidates}}
    path = out / SETTINGS
    if not path.is_file():
        write_json(path, now)
        return
    old = read_json(path, kind=dict, fix="restore it, or run select into a new --out")
    for key in ("folds", "inner_val", "seed", "index", "split"):
        if old.get(key) != now[key]:
            raise CxrlabError(f"{out} holds a selection made with {key}={old.get(key)!r}, now {now[key]!r}; run "
                              "select into a new --out (or delete the folder to redo it)")
    recorded = old.get("candidates") or {}
    for name, key in now["candidates"].items():
        if name in recorded and recorded[name] != key:
            raise CxrlabError(f"{out}: candidate {name} was trained there with other settings; rename it or use a "
                              "new --out")
    write_json(path, {**now, "candidates": {**recorded, **now["candidates"]}})


def _train_groups(candidates: list[Candidate]) -> dict[str, str]:
    """Candidate name -> the run name it trains into (the first candidate with the same training recipe)."""
    first: dict[str, str] = {}
    return {c.name: first.setdefault(c.training_key(), c.name) for c in candidates}


def _train(c: Candidate, split_k: Path, k: int, run_dir: Path, resume: bool,
           progress: Callable[[str], None] | None) -> float | None:
    """Train (or resume, or skip) candidate ``c`` on fold ``k``; its CPU seconds, recorded in ``cost.json``
    (None when a part of the training went unrecorded)."""
    cost = run_dir.parent / f"{run_dir.name}.cost.json"
    if resume and cv.fold_done(run_dir):
        return _recorded_cost(cost)
    partial = (run_dir / "checkpoints" / "last_state.pt").exists()
    # an interrupted training records what it spent, and its resumption adds to it; a part spent without a
    # record (killed hard) is missing, so the figure then says it is incomplete
    prior = read_json(cost) if partial and cost.is_file() else {"cpu_seconds": 0.0, "wall_seconds": 0.0,
                                                                  "complete": not partial}
    c0, w0 = time.process_time(), time.perf_counter()
    try:
        cv.train_fold(c.config, split_k, k, run_dir, resume, progress)
    finally:
        write_json(cost, {"cpu_seconds": prior["cpu_seconds"] + time.process_time() - c0,
                          "wall_seconds": prior["wall_seconds"] + time.perf_counter() - w0,
                          "complete": bool(prior["complete"]), "finished": cv.fold_done(run_dir),
                          "threads": c.config.train.threads})
    return _recorded_cost(cost)


def _recorded_cost(cost: Path) -> float | None:
    if not cost.is_file():
        return None
    record = read_json(cost)
    return float(record["cpu_seconds"]) if record.get("complete", True) else None


def predict_split(run_dir: Path, split: str, tta: str) -> Predictions:
    """A fold run's best-checkpoint predictions of its ``val`` (inner) or ``test`` split, with ``tta``.
    ``none`` reads what training wrote; otherwise the model predicts again (a seam tests replace)."""
    if tta == "none":
        return read_predictions(run_predictions_path(run_dir, split))
    from cxrlab.predict import predict_run  # torch: only when TTA predicts

    return predict_run(run_dir, split=split, tta=tta)


def _cached_predictions(run_dir: Path, cached: Path, split: str, tta: str) -> Predictions:
    if tta == "none":
        return predict_split(run_dir, split, tta)
    if cached.is_file() and cached.stat().st_mtime >= RunDir(run_dir).manifest_path.stat().st_mtime:
        return read_predictions(cached)
    preds = predict_split(run_dir, split, tta)
    write_predictions(cached, preds)
    return preds


@dataclass(frozen=True)
class FoldIds:
    """Image ids of outer fold k: the outer fold itself and everything no choice may see (outer + test rows)."""

    outer: set[str]
    forbidden: set[str]


def _fold_ids(split_csv: Path, k: int) -> FoldIds:
    split = load_split(split_csv)
    outer = set(split.loc[split["fold"].notna() & (split["fold"] == k), "image_id"].astype(str))
    test = set(split.loc[split["split"] == "test", "image_id"].astype(str))
    return FoldIds(outer, outer | test)


def _inner_predictions(preds: Predictions, ids: FoldIds, name: str, k: int) -> Predictions:
    """``preds`` of the inner validation set, refused when any image is from the outer fold or the test split."""
    leaked = ids.forbidden.intersection(preds.image_ids)
    if leaked:
        raise CxrlabError(f"fold {k}, candidate {name}: the inner validation predictions hold {len(leaked)} image(s) "
                          f"of the outer fold or the test split (e.g. {sorted(leaked)[0]}); the fold's split is "
                          "corrupt: run select into a new --out")
    return preds


def _choose(inner: dict[str, float]) -> str:
    """The candidate with the highest inner score (ties: the first listed; NaN never wins)."""
    finite = {n: v for n, v in inner.items() if np.isfinite(v)}
    if not finite:
        raise CxrlabError(f"no candidate has a defined inner macro AUROC ({inner}); the inner validation set lacks "
                          "positives: use more data, fewer --folds or a larger --inner-val")
    best = max(finite.values())
    return next(n for n, v in finite.items() if v == best)


def _select_fold(candidates: list[Candidate], k: int, out: Path, split_csv: Path, index: Index, inner_val: float,
                 resume: bool, progress: Callable[[str], None] | None) -> tuple[FoldResult, Predictions]:
    """Outer fold ``k``: train every recipe, score every candidate on the inner set, score the winner once."""
    seed = candidates[0].config.train.seed
    split_k = cv.fold_split(split_csv, k, index, out, inner_val, seed)
    ids, groups = _fold_ids(split_csv, k), _train_groups(candidates)
    cpu: dict[str, float] = {}
    for c in candidates:
        if groups[c.name] == c.name:
            spent = _train(c, split_k, k, out / f"fold{k}" / c.name, resume, progress)
            if spent is not None:
                cpu[c.name] = spent
    inner: dict[str, float] = {}
    n_val = 0
    for c in candidates:
        run = out / f"fold{k}" / groups[c.name]
        preds = _inner_predictions(_cached_predictions(run, out / f"fold{k}" / f"{c.name}.val.csv", "val", c.tta),
                                   ids, c.name, k)
        inner[c.name] = float(cv.score_predictions(preds, index)["macro_auroc"])
        n_val = len(preds.image_ids)
    winner = _choose(inner)  # decided before any outer-fold prediction is read
    c = next(c for c in candidates if c.name == winner)
    run = out / f"fold{k}" / groups[winner]
    test = _cached_predictions(run, out / f"fold{k}" / f"{winner}.test.csv", "test", c.tta)
    outer = cv.subset_predictions(test, ids.outer, f"outer fold {k}: predicted once by {winner}, chosen on the inner "
                                   "validation set", split="val")
    write_predictions(out / "outer" / f"fold{k}.csv", outer)
    score = float(cv.score_predictions(outer, index)["macro_auroc"])
    n_train = int((load_split(split_k)["split"] == "train").sum())
    return FoldResult(k, inner, winner, score, len(outer.image_ids), n_val, cpu, n_train), outer


def plain_selection(candidates: list[Candidate], folds: int, out: Path, split_csv: Path, index: Index
                    ) -> dict[str, Any]:
    """Diagnostic only, computed after every winner is fixed: each candidate's outer scores, and the estimate
    the non-nested protocol (pick the best CV mean, report that mean) would have claimed. Optimistic."""
    groups, ids = _train_groups(candidates), [_fold_ids(split_csv, k) for k in range(folds)]
    table: dict[str, list[float]] = {}
    for c in candidates:
        scores = []
        for k in range(folds):
            run = out / f"fold{k}" / groups[c.name]
            test = _cached_predictions(run, out / f"fold{k}" / f"{c.name}.test.csv", "test", c.tta)
            outer = cv.subset_predictions(test, ids[k].outer, "diagnostic", split="val")
            scores.append(float(cv.score_predictions(outer, index)["macro_auroc"]))
        table[c.name] = scores
    means = {n: float(np.mean(v)) for n, v in table.items()}
    best = max(means, key=lambda n: means[n])
    return {"note": "NOT the estimate: every candidate scored on the outer folds after the choice, to show what "
                    "picking the best CV mean would have claimed (the optimism nested CV removes)",
            "outer_by_candidate": table, "best": best, "best_mean": means[best]}


def run_selection(candidates: list[Candidate], *, folds: int, out: str | Path, resume: bool = True,
                  inner_val: float = cv.INNER_VAL, progress: Callable[[str], None] | None = None,
                  diagnostic: bool = True, only_fold: int | None = None) -> dict[str, Any]:
    """Nested cross-validation over ``candidates`` into ``out`` (module docstring); returns ``select.json``.
    ``only_fold``: do outer fold k only (to spread the folds over processes) and return its result, writing no
    summary; a later run without it reuses the finished folds and writes ``select.json``."""
    cv.check_cv_options(folds, inner_val)
    if only_fold is not None and not 0 <= only_fold < folds:
        raise CxrlabError(f"--fold {only_fold} must be one of 0..{folds - 1}")
    _check_candidates(candidates)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, candidates, folds, inner_val)
    split_csv = cv.make_folds(candidates[0].config, folds, out)
    index = load_index(candidates[0].config.data.index)
    results, outers = [], []
    for k in range(folds) if only_fold is None else [only_fold]:
        res, outer = _select_fold(candidates, k, out, split_csv, index, inner_val, resume, progress)
        results.append(res)
        outers.append(outer)
        if progress is not None:
            progress(f"select: fold {k} winner {res.winner} (inner {res.inner[res.winner]:.3f}), outer macro AUROC "
                     f"{res.outer_macro_auroc:.3f}")
    if only_fold is not None:
        return {"fold": asdict(results[0])}
    summary = _summary(candidates, results, outers, out, index, inner_val)
    if diagnostic:
        summary["plain_selection"] = plain_selection(candidates, folds, out, split_csv, index)
    write_json(out / "select.json", summary)
    atomic_write_text(out / "select.md", markdown(summary))
    return summary


def _summary(candidates: list[Candidate], results: list[FoldResult], outers: list[Predictions], out: Path,
             index: Index, inner_val: float) -> dict[str, Any]:
    first = outers[0]
    oof = Predictions(sum((p.image_ids for p in outers), []), np.concatenate([p.probs for p in outers]),
                      list(first.classes), {**first.meta, "split": "val", "model": "nested-selection",
                                            "note": "out-of-fold: each image predicted once by its fold's winner"},
                      sum((p.patient_ids or [] for p in outers), []) or None)
    write_predictions(out / "oof.csv", oof)
    scores = [r.outer_macro_auroc for r in results]
    inner_mean = {c.name: float(np.nanmean([r.inner[c.name] for r in results])) for c in candidates}
    return {
        "protocol": {"outer_folds": len(results), "inner": f"validation set of {inner_val:g} of the training folds' "
                     "patients (epoch and candidate chosen on it)", "metric": "macro AUROC (cxrlab.auroc, as "
                     "evaluate reports it)", "unit": "patient"},
        "candidates": {c.name: {"model": c.config.model.name, "tta": c.tta, "epochs": c.config.train.epochs,
                                "image_size": c.config.data.image_size, "augment": c.config.augment.policy}
                       for c in candidates},
        "folds": [asdict(r) for r in results],
        "outer": {"mean": float(np.mean(scores)), "sd": float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0,
                  "values": scores, "pooled_oof": float(cv.score_predictions(oof, index)["macro_auroc"]),
                  "n": len(oof.image_ids)},
        "wins": {c.name: sum(r.winner == c.name for r in results) for c in candidates},
        "inner_mean": inner_mean,
        "chosen": {"candidate": max(inner_mean, key=lambda n: inner_mean[n]),
                   "rule": "highest mean inner score over the outer folds' training sets: the procedure's choice "
                           "on all the data, whose performance the outer estimate measures"},
    }


def markdown(summary: dict[str, Any]) -> str:
    """A short report of ``select.json``: the honest outer estimate, the per-fold winners, the inner scores."""
    o, names = summary["outer"], list(summary["candidates"])
    lines = [f"Outer estimate (honest): macro AUROC {o['mean']:.3f} ± {o['sd']:.3f} (mean ± sd over "
             f"{len(o['values'])} outer folds); pooled out-of-fold {o['pooled_oof']:.3f} on {o['n']} images.", "",
             "| outer fold | winner | outer macro AUROC | " + " | ".join(f"inner: {n}" for n in names) + " |",
             "|---|---|---:|" + "---:|" * len(names)]
    for f in summary["folds"]:
        inner = " | ".join(f"{f['inner'][n]:.3f}" for n in names)
        lines.append(f"| {f['fold']} | {f['winner']} | {f['outer_macro_auroc']:.3f} | {inner} |")
    lines += ["", "Wins: " + ", ".join(f"{n} {w}" for n, w in summary["wins"].items()) + "."]
    plain = summary.get("plain_selection")
    if plain:
        lines += ["", f"Diagnostic, not an estimate: picking the best candidate by its mean outer score "
                      f"({plain['best']}) would have claimed {plain['best_mean']:.3f}."]
    return "\n".join(lines) + "\n"
