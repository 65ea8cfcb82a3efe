"""K-fold patient-grouped cross-validation of a recipe: one ``fit`` per fold, out-of-fold predictions,
per-fold and aggregated metrics, and (optionally) the mean ensemble of the fold models on the test split.

Layout of ``out_dir``: ``split.csv`` (+ ``split.json``; fold column), ``fold<k>/`` (a normal run directory
each), ``oof.csv`` (every non-test image predicted by the fold that held it out), ``test_ensemble.csv``,
``cv.json`` (per-fold metrics, mean and sd, pooled out-of-fold metric, test metrics). Re-running skips
finished folds and resumes an interrupted one.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlab.data.index import load_index
from cxrlab.data.splits import kfold_split, load_split, write_split
from cxrlab.errors import CxrlabError
from cxrlab.evaluate.metrics import macro_auroc
from cxrlab.predictions import Predictions, read_predictions, run_predictions_path, write_predictions
from cxrlab.provenance import check_cv_settings
from cxrlab.utils import write_json

log = logging.getLogger(__name__)


def make_folds(config: Any, k: int, out_dir: Path) -> Path:
    """``out_dir/split.csv`` with a fold column: the recipe's own folds when it has exactly ``k``; otherwise
    the recipe's test rows are kept and the other patients are split into ``k`` stratified folds."""
    index = load_index(config.data.index)
    path = out_dir / "split.csv"
    if path.exists():  # resuming: the folds must not move
        split = load_split(path)
        if split["fold"].dropna().nunique() != k:
            raise CxrlabError(f"{path} has {split['fold'].dropna().nunique()} folds, not {k}; use another --out")
        return path
    given = Path(config.data.split)
    if given.exists():
        split = load_split(given)
        if "fold" in split.columns and split["fold"].dropna().nunique() == k:
            return write_split(split, path, "given", None, index, folds=k)
        test_ids = split.loc[split["split"] == "test", "image_id"].astype(str).tolist()
        rest = index.subset([i for i in index.image_ids if i not in set(test_ids)])
        folds = kfold_split(rest, k, test=0.0, seed=config.train.seed)
        test = pd.DataFrame({"image_id": test_ids, "split": "test", "fold": pd.array([pd.NA] * len(test_ids),
                                                                                      dtype="Int64")})
        return write_split(pd.concat([folds, test], ignore_index=True), path, "kfold_keep_test",
                           config.train.seed, index, folds=k)
    folds = kfold_split(index, k, test=0.2, seed=config.train.seed)
    return write_split(folds, path, "kfold", config.train.seed, index, folds=k)


def fold_done(run_dir: Path) -> bool:
    """A fold is finished when its run wrote its manifest and validation predictions."""
    return (run_dir / "manifest.json").exists() and (run_dir / "predictions" / "val.csv").exists()


def train_fold(config: Any, split_csv: Path, k: int, run_dir: Path, resume: bool,
               progress: Callable[[str], None] | None = None) -> Path:
    """Train fold ``k`` (validation = fold k) into ``run_dir``; skip when done, resume when interrupted.
    ``progress`` receives one line per fold started (the CLI prints it)."""
    from cxrlab.train import fit  # torch: loaded only when a fold trains

    if resume and fold_done(run_dir):
        log.info("fold %d already finished in %s: skipped", k, run_dir)
        return run_dir
    cfg = copy.deepcopy(config)
    cfg.data.split = str(split_csv)
    cfg.data.fold = k
    cfg.name = f"{config.name}-fold{k}"
    partial = (run_dir / "checkpoints" / "last_state.pt").exists()
    if partial and not resume:
        raise CxrlabError(f"{run_dir} already holds a run; drop --no-resume or choose another --out")
    line = f"cv: training fold {k} into {run_dir}" + (" (resuming)" if partial else "")
    log.info(line)
    if progress is not None:
        progress(line)
    return fit(cfg, run_dir, resume=partial)


def _score(preds, labels_index) -> dict[str, float]:
    frame = labels_index.frame.drop_duplicates("image_id").set_index("image_id")
    y = frame.loc[preds.image_ids, preds.classes].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    out = {"macro_auroc": macro_auroc(y, preds.probs), "n": len(preds.image_ids)}
    if labels_index.task == "multiclass":
        out["accuracy"] = float((preds.probs.argmax(1) == np.nanargmax(np.nan_to_num(y, nan=-1), 1)).mean())
    return out


def _aggregate(per_fold: list[dict[str, float]]) -> dict[str, Any]:
    keys = [k for k in per_fold[0] if k != "n"]
    return {k: {"mean": float(np.nanmean([f[k] for f in per_fold])),
                "sd": float(np.nanstd([f[k] for f in per_fold], ddof=1)) if len(per_fold) > 1 else 0.0,
                "values": [f[k] for f in per_fold]} for k in keys}


def run_cv(config: Any, *, folds: int, out: str | Path, resume: bool = True, test_ensemble: bool = True,
           progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Cross-validate ``config`` (a ``cxrlab.config.Config``) with ``folds`` folds into ``out``.

    Returns the summary written to ``cv.json``: ``folds`` (per-fold validation metrics and run dirs),
    ``aggregate`` (mean and sd over folds), ``oof`` (pooled out-of-fold metrics), ``test`` (per-fold and
    ensemble test metrics, when the split has a test set).
    """
    if folds < 2:
        raise CxrlabError(f"--folds {folds} must be at least 2")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    check_cv_settings(out, config, folds)  # old folds and fold runs are reused only under the same settings
    split_csv = make_folds(config, folds, out)
    index = load_index(config.data.index)
    runs = [train_fold(config, split_csv, k, out / f"fold{k}", resume, progress) for k in range(folds)]
    vals = [read_predictions(run_predictions_path(r, "val")) for r in runs]
    per_fold = [_score(v, index) for v in vals]
    oof = Predictions(sum((v.image_ids for v in vals), []), np.concatenate([v.probs for v in vals]),
                      vals[0].classes, {**vals[0].meta, "split": "val", "model": f"cv{folds}:{config.model.name}",
                                        "note": "out-of-fold: each image predicted by the fold model that held it out"})
    write_predictions(out / "oof.csv", oof)
    summary: dict[str, Any] = {"folds": [{"fold": k, "run_dir": str(r), **m} for k, (r, m) in
                                         enumerate(zip(runs, per_fold))],
                               "aggregate": _aggregate(per_fold), "oof": _score(oof, index),
                               "split": str(split_csv)}
    tests = [Path(r) / "predictions" / "test.csv" for r in runs]  # absent when the split has no test set
    if test_ensemble and all(t.exists() for t in tests):
        from cxrlab.ensemble import ensemble_predictions  # scipy/sklearn: loaded only when ensembling

        ens = ensemble_predictions(tests, out=out / "test_ensemble.csv", method="mean")
        summary["test"] = {"folds": [_score(read_predictions(t), index) for t in tests],
                           "ensemble": _score(read_predictions(ens), index), "ensemble_file": str(ens)}
    write_json(out / "cv.json", summary)
    return summary
