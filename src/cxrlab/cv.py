"""K-fold patient-grouped cross-validation of a recipe: one ``fit`` per fold, out-of-fold predictions,
per-fold and aggregated metrics, and (optionally) the mean ensemble of the fold models on the test split.

Honest by construction: for fold k the outer fold k is held out of everything fitted. The checkpoint (best
epoch, early stopping) is selected on an *inner* validation set carved, at patient level, from the training
folds only (``inner_val`` of their patients); the outer fold is predicted once, with the selected weights, and
scored once. (Selecting the epoch on the fold that is then scored picks the luckiest epoch of that fold: the
out-of-fold AUROC is optimistic, above 0.5 even on pure-noise labels.)

Layout of ``out_dir``: ``split.csv`` (+ ``split.json``; fold column), ``splits/fold<k>.csv`` (fold k's
train / inner val / test = outer fold + held-out test), ``fold<k>/`` (a normal run directory each),
``outer/fold<k>.csv`` and ``test/fold<k>.csv`` (its predictions of the outer fold and of the held-out test),
``oof.csv`` (every non-test image predicted by the fold that held it out), ``test_ensemble.csv``, ``cv.json``
(per-fold metrics, mean and sd, pooled out-of-fold metric, test metrics). Re-running skips finished folds and
resumes an interrupted one.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlab.auroc import default_exclude
from cxrlab.data.index import Index, load_index
from cxrlab.data.splits import kfold_split, load_split, patient_level_split, write_split
from cxrlab.errors import CxrlabError
from cxrlab.evaluate.metrics import macro_auroc
from cxrlab.predictions import Predictions, read_predictions, run_predictions_path, write_predictions
from cxrlab.provenance import check_cv_settings
from cxrlab.rundir import RunDir
from cxrlab.utils import write_json

log = logging.getLogger(__name__)
INNER_VAL = 0.2  # share of the training folds' patients held out as the inner validation set


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


def fold_split(split_csv: Path, k: int, index: Index, out_dir: Path, inner_val: float, seed: int) -> Path:
    """``out_dir/splits/fold<k>.csv``: the training folds' patients split into train and an inner val
    (``inner_val`` of them, stratified, patient-level); the outer fold k and the held-out test rows are test.
    Kept when it exists (a resumed fold must not move)."""
    path = out_dir / "splits" / f"fold{k}.csv"
    if path.exists():
        return path
    split = load_split(split_csv)
    outer = split["fold"].notna() & (split["fold"] == k)
    held = outer | (split["split"] == "test")
    training = index.subset(split.loc[~held, "image_id"].astype(str).tolist())
    try:
        inner = patient_level_split(training, val=inner_val, test=0.0, seed=seed + k)
    except CxrlabError as exc:
        raise CxrlabError(f"fold {k}: cannot carve the inner validation set from the training folds ({exc}); "
                          "use more data, fewer --folds or a larger --inner-val") from None
    test = pd.DataFrame({"image_id": split.loc[held, "image_id"].astype(str), "split": "test"})
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_split(pd.concat([inner, test], ignore_index=True), path, f"cv_fold{k}_inner_val", seed + k,
                       index, fractions={"val": inner_val, "test": 0.0})


def fold_done(run_dir: Path) -> bool:
    """A fold is finished when its run wrote its manifest and its test (outer fold) predictions."""
    return RunDir(run_dir).finished


def train_fold(config: Any, split_csv: Path, k: int, run_dir: Path, resume: bool,
               progress: Callable[[str], None] | None = None) -> Path:
    """Train fold ``k`` with ``split_csv`` (``fold_split``: inner val selects the checkpoint, the outer fold is
    test) into ``run_dir``; skip when done, resume when interrupted. ``progress`` receives one line per fold
    started (the CLI prints it)."""
    from cxrlab.train import fit  # torch: loaded only when a fold trains

    if resume and fold_done(run_dir):
        log.info("fold %d already finished in %s: skipped", k, run_dir)
        return run_dir
    cfg = copy.deepcopy(config)
    cfg.data.split = str(split_csv)
    cfg.data.fold = None
    cfg.name = f"{config.name}-fold{k}"
    partial = (run_dir / "checkpoints" / "last_state.pt").exists()
    if partial and not resume:
        raise CxrlabError(f"{run_dir} already holds a run; drop --no-resume or choose another --out")
    line = f"cv: training fold {k} into {run_dir}" + (" (resuming)" if partial else "")
    log.info(line)
    if progress is not None:
        progress(line)
    return fit(cfg, run_dir, resume=partial)


def score_predictions(preds: Predictions, labels_index: Index) -> dict[str, Any]:
    """``macro_auroc`` (``cxrlab.auroc``, the definition every command reports) of ``preds`` against the index,
    with the classes averaged and the image count (multi-class: also accuracy)."""
    frame = labels_index.frame.drop_duplicates("image_id").set_index("image_id")
    y = frame.loc[preds.image_ids, preds.classes].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    macro = macro_auroc(y, preds.probs, preds.classes, default_exclude(labels_index.task))
    out: dict[str, Any] = {"macro_auroc": macro.value, "n": len(preds.image_ids), "macro_classes": macro.classes}
    if labels_index.task == "multiclass":
        out["accuracy"] = float((preds.probs.argmax(1) == np.nanargmax(np.nan_to_num(y, nan=-1), 1)).mean())
    return out


def _aggregate(per_fold: list[dict[str, float]]) -> dict[str, Any]:
    keys = [k for k in per_fold[0] if k not in ("n", "macro_classes", "inner_val_metric")]
    return {k: {"mean": float(np.nanmean([f[k] for f in per_fold])),
                "sd": float(np.nanstd([f[k] for f in per_fold], ddof=1)) if len(per_fold) > 1 else 0.0,
                "values": [f[k] for f in per_fold]} for k in keys}


def subset_predictions(preds: Predictions, ids: set[str], note: str, **meta: Any) -> Predictions:
    """The rows of ``preds`` whose image is in ``ids`` (in their order), with ``note`` and ``meta`` in the sidecar."""
    rows = [i for i, x in enumerate(preds.image_ids) if x in ids]
    patients = [preds.patient_ids[i] for i in rows] if preds.patient_ids else None
    return Predictions([preds.image_ids[i] for i in rows], preds.probs[rows], list(preds.classes),
                       {**preds.meta, **meta, "note": note}, patients)


def _fold_outputs(run: Path, k: int, split: pd.DataFrame, out: Path) -> tuple[Predictions, Path | None]:
    """Split fold ``k``'s test predictions into the outer fold (returned) and the held-out test (written to
    ``out/test/fold<k>.csv``, or None when the split has no test rows)."""
    preds = read_predictions(run_predictions_path(run, "test"))
    outer_ids = set(split.loc[split["fold"].notna() & (split["fold"] == k), "image_id"].astype(str))
    outer = subset_predictions(preds, outer_ids, f"outer fold {k}: predicted once by the checkpoint chosen on "
                               "inner val", split="val")
    write_predictions(out / "outer" / f"fold{k}.csv", outer)
    test_ids = set(split.loc[split["split"] == "test", "image_id"].astype(str))
    if not test_ids:
        return outer, None
    test = subset_predictions(preds, test_ids, f"held-out test predicted by fold {k}'s model")
    return outer, write_predictions(out / "test" / f"fold{k}.csv", test)


def _inner_val_metric(run: Path) -> float | None:
    """The inner-validation metric of the checkpoint fold ``run`` selected (optimistic by construction)."""
    from cxrlab.utils import read_json

    best = run / "checkpoints" / "best.json"
    value = read_json(best).get("val_metric") if best.exists() else None
    return float(value) if isinstance(value, (int, float)) and np.isfinite(value) else None


def check_cv_options(folds: int, inner_val: float) -> None:
    """One-line errors for a fold count or inner-validation share that cannot work (checked before any input)."""
    if folds < 2:
        raise CxrlabError(f"--folds {folds} must be at least 2")
    if not 0.0 < inner_val < 1.0:
        raise CxrlabError(f"--inner-val {inner_val} must be a fraction in (0, 1)")


def run_cv(config: Any, *, folds: int, out: str | Path, resume: bool = True, test_ensemble: bool = True,
           inner_val: float = INNER_VAL, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Cross-validate ``config`` (a ``cxrlab.config.Config``) with ``folds`` folds into ``out``.

    Each fold selects its checkpoint on an inner validation set (``inner_val`` of the training folds'
    patients) and predicts its outer fold once (module docstring). Returns the summary written to ``cv.json``:
    ``folds`` (per-fold outer-fold metrics, the inner-val metric the checkpoint was chosen on, run dirs),
    ``aggregate`` (mean and sd over folds), ``oof`` (pooled out-of-fold metrics), ``test`` (per-fold and
    ensemble test metrics, when the split has a test set).
    """
    check_cv_options(folds, inner_val)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # old folds and fold runs are reused only under the same settings (and the same inner-val protocol)
    check_cv_settings(out, config, folds, {"selection": "inner_val", "inner_val": inner_val})
    split_csv = make_folds(config, folds, out)
    index = load_index(config.data.index)
    split = load_split(split_csv)
    runs = [train_fold(config, fold_split(split_csv, k, index, out, inner_val, config.train.seed), k,
                       out / f"fold{k}", resume, progress) for k in range(folds)]
    parts = [_fold_outputs(r, k, split, out) for k, r in enumerate(runs)]
    per_fold = [score_predictions(outer, index) | {"inner_val_metric": _inner_val_metric(r)}
                for r, (outer, _) in zip(runs, parts)]
    first = parts[0][0]
    oof = Predictions(sum((p[0].image_ids for p in parts), []), np.concatenate([p[0].probs for p in parts]),
                      first.classes, {**first.meta, "split": "val", "model": f"cv{folds}:{config.model.name}",
                                      "note": "out-of-fold: each image predicted once by the fold model that held "
                                              "it out (checkpoint chosen on that fold's inner validation set)"},
                      sum((p[0].patient_ids or [] for p in parts), []) or None)
    write_predictions(out / "oof.csv", oof)
    summary: dict[str, Any] = {"folds": [{"fold": k, "run_dir": str(r), **m} for k, (r, m) in
                                         enumerate(zip(runs, per_fold))],
                               "aggregate": _aggregate(per_fold), "oof": score_predictions(oof, index),
                               "selection": {"on": "inner validation set", "inner_val": inner_val,
                                             "unit": "patient", "from": "the training folds only"},
                               "split": str(split_csv)}
    tests = [p[1] for p in parts]  # None when the split has no test set
    if test_ensemble and all(t is not None for t in tests):
        from cxrlab.ensemble import ensemble_predictions  # scipy/sklearn: loaded only when ensembling

        ens = ensemble_predictions(tests, out=out / "test_ensemble.csv", method="mean")
        summary["test"] = {"folds": [score_predictions(read_predictions(t), index) for t in tests],
                           "ensemble": score_predictions(read_predictions(ens), index), "ensemble_file": str(ens)}
    write_json(out / "cv.json", summary)
    return summary
