"""Pseudo-labelling an unlabeled pool with a trained run, for retraining through the normal ``cxrlab train``.

Class-aware: a confidence threshold per class (S4 used 0.92 / 0.90 / 0.85 / 0.80), or a per-class quota of
the most confident images so rare classes are not drowned (S4's lesson); for multi-label, the quota also
takes as many of the least likely images as that class's negatives. The pool may be a folder of images
or an index (its labels are never used for selection; when present they only measure pseudo-label accuracy).
A pool holding any of the run's test images is refused: pseudo-labels made from test images leak the test
set into training (S4's 88.6% was partly that). Pool images of validation/test *patients* are dropped.

Outputs in ``out``: ``index/`` (the run's labelled rows, weight 1, plus the pseudo-labelled rows with
``weight``), ``split.csv`` (the run's split, pseudo rows as train), ``pseudo.csv`` (the pseudo-labels and
their probabilities), ``pseudo.json`` (counts per class, accuracy when known, the retraining command).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from cxrlab.data.index import Index, load_index, write_index
from cxrlab.data.splits import load_split, write_split
from cxrlab.errors import CxrlabError
from cxrlab.guards import Reach, check_fitting, hash_files, test_set_from_split
from cxrlab.predict import (
    ImageSet,
    ImageSetDataset,
    RunInfo,
    dataset_logits,
    images_from_files,
    images_from_index,
    load_run,
    open_run_cache,
    probabilities,
)
from cxrlab.provenance import check_run_files
from cxrlab.utils import atomic_write_text, write_json


def _pool(pool: str | Path, classes: tuple[str, ...]) -> ImageSet:
    """The pool: an index (labels kept only to measure pseudo-label accuracy; patient ids known) or files."""
    path = Path(pool)
    if (path / "index.csv").exists() or path.name == "index.csv":
        return images_from_index(path, classes, option="--pool")
    return images_from_files(path, option="--pool")


def _refuse_test(images: ImageSet, patients: list[str] | None, labelled, split: pd.DataFrame,
                 allow_unverified: bool = False) -> tuple[list[int], dict | None]:
    """Refuse test images; return the pool rows to keep (not already labelled, not a val/test patient)."""
    test_ids = set(split.loc[split["split"] == "test", "image_id"].astype(str))
    paths = dict(zip(labelled.frame["image_id"].astype(str), labelled.absolute_paths()))
    test_paths = {Path(paths[i]).resolve() for i in test_ids if i in paths}
    clash = [i for i, p in zip(images.image_ids, images.paths) if i in test_ids or Path(p).resolve() in test_paths]
    if clash:
        raise CxrlabError(f"the pool holds {len(clash)} of the run's test images (e.g. {clash[:3]}); pseudo-labels "
                          "must never come from the test split: use unlabeled images or the train split only")
    reach = Reach()
    reach.add_index(labelled, "the run's index")
    reach.tests.append(test_set_from_split(split, labelled, "the run's test split"))  # renamed copies: by sha256
    record = check_fitting("the pool", images.image_ids, reach, hashes=hash_files(images.paths), allow=False,
                           allow_unverified=allow_unverified, require_hashes=False, what="pseudo-labels",
                           how="unlabeled images or the train split only", escape=False)
    known = set(labelled.frame["image_id"].astype(str))
    held = split[split["split"].isin(["val", "test"])]["image_id"].astype(str)
    by_id = dict(zip(labelled.frame["image_id"].astype(str), labelled.frame["patient_id"].astype(str)))
    held_patients = {by_id[i] for i in held if i in by_id}
    return [r for r, i in enumerate(images.image_ids) if i not in known
            and (patients is None or patients[r] not in held_patients)], record


def select(probs: np.ndarray, task: str, thresholds: np.ndarray | None, quota: int | None) -> np.ndarray:
    """(N, C) pseudo-labels: 1/0 where confident, NaN where not (multi-label); one-hot or NaN rows (multi-class)."""
    if quota is not None:
        return _select_quota(probs, task, quota)
    n, c = probs.shape
    out = np.full((n, c), np.nan)
    if task == "multiclass":
        top = probs.argmax(1)
        keep = probs[np.arange(n), top] >= thresholds[top]
        out[keep] = 0.0
        out[np.flatnonzero(keep), top[keep]] = 1.0
        return out
    out[probs >= thresholds] = 1.0
    out[probs <= 1 - thresholds] = 0.0
    return out


def _select_quota(probs: np.ndarray, task: str, quota: int) -> np.ndarray:
    """Per class, the ``quota`` most confident images as positives; multi-label also takes the ``quota`` least
    likely as negatives (disjoint from the positives), so each class gets balanced 1s and 0s, not 1s only."""
    n, c = probs.shape
    out = np.full((n, c), np.nan)
    for k in range(c):
        rows = np.flatnonzero(probs.argmax(1) == k) if task == "multiclass" else np.arange(n)
        ranked = rows[np.argsort(-probs[rows, k], kind="stable")]
        top = ranked[:quota]
        if task == "multiclass":
            out[top] = 0.0
        else:
            out[ranked[quota:][::-1][:quota], k] = 0.0
        out[top, k] = 1.0
    return out


def _thresholds(thresholds: list[float] | None, classes: list[str]) -> np.ndarray:
    t = np.asarray(thresholds or [0.9], dtype=float)
    if len(t) == 1:
        t = np.repeat(t, len(classes))
    if len(t) != len(classes) or ((t <= 0.5) | (t > 1)).any():
        raise CxrlabError(f"--thresholds needs one value or {len(classes)} ({', '.join(classes)}), each in (0.5, 1]")
    return t


def _predict(model, images: ImageSet, info: RunInfo, batch_size: int) -> tuple[np.ndarray, int]:
    """(N, C) probabilities, and how many images came from the run's cache instead of their files."""
    dataset = ImageSetDataset(images, info, cache=open_run_cache(info, images))  # pool rows the cache holds
    out = dataset_logits(model, dataset, batch_size=batch_size, num_classes=info.num_classes)
    # in float32 torch, as the probabilities were always computed (thresholds compare against these values)
    return probabilities(torch.from_numpy(out.logits), info.task).numpy(), dataset.n_from_cache


def pseudo_label(run_dir: str | Path, *, pool: str | Path, out: str | Path, thresholds: list[float] | None = None,
                 quota: int | None = None, weight: float = 0.5, batch_size: int = 16,
                 allow_unverified: bool = False) -> dict[str, Any]:
    """Pseudo-label ``pool`` with the run's model; write the merged index and split (see module docstring).
    ``allow_unverified``: go ahead when the run's index has no file hashes (recorded in ``pseudo.json``)."""
    if not 0 < weight <= 1:
        raise CxrlabError(f"--weight {weight} must be in (0, 1]")
    if quota is not None and quota < 1:
        raise CxrlabError(f"--quota {quota} must be at least 1")
    model, info = load_run(run_dir)
    classes, task = list(info.classes), info.task
    t = _thresholds(thresholds, classes)
    if info.index is None or info.split_csv is None or not info.split_csv.exists():
        raise CxrlabError(f"{run_dir}: pseudo-labelling needs a run directory from `cxrlab train` (its index and "
                          "split.csv)")
    check_run_files(info.run_dir)  # a changed byte in RUN/split.csv could hide test images
    labelled, split = load_index(info.index), load_split(info.split_csv)
    images = _pool(pool, info.classes)
    keep, unverified = _refuse_test(images, images.patient_ids, labelled, split, allow_unverified)
    dropped = len(images) - len(keep)
    images = images.subset(keep)  # patient ids and (secret) labels follow the rows
    probs, from_cache = _predict(model, images, info, batch_size)
    labels = select(probs, task, None if quota else t, quota)
    sel = Selection(images, probs, labels, np.flatnonzero(~np.isnan(labels).all(axis=1)))
    known = images.labels is not None and bool(np.isfinite(images.labels).any())  # an unlabeled index has none
    report = _report(labels[sel.chosen], images.labels[sel.chosen] if known else None, classes, task)
    report.update(pool=str(pool), pool_images=len(keep) + dropped, dropped_labelled_or_heldout_patient=dropped,
                  selected=int(len(sel.chosen)), thresholds=None if quota else t.tolist(), quota=quota,
                  weight=weight)
    report["images_from_cache"] = from_cache
    report["unverified"] = unverified
    _write(Path(out), run_dir=run_dir, labelled=labelled, split=split, sel=sel, weight=weight, report=report)
    return report


@dataclass(frozen=True)
class Selection:
    """The pool after the test/held-out filter, its probabilities, the pseudo-labels (NaN where not
    confident) and the rows ``chosen`` (at least one pseudo-label)."""

    images: ImageSet
    probs: np.ndarray
    labels: np.ndarray
    chosen: np.ndarray


def _report(labels: np.ndarray, truth: np.ndarray | None, classes: list[str], task: str) -> dict[str, Any]:
    per = {}
    for k, c in enumerate(classes):
        per[c] = {"positive": int((labels[:, k] == 1).sum())}
        if task == "multilabel":
            per[c]["negative"] = int((labels[:, k] == 0).sum())
        if truth is not None and not np.isnan(truth[:, k]).all():
            given = ~np.isnan(labels[:, k]) & ~np.isnan(truth[:, k])
            if task == "multiclass":
                given &= labels[:, k] == 1
            per[c]["accuracy"] = float((labels[given, k] == truth[given, k]).mean()) if given.any() else None
    return {"per_class": per, "labels_known": truth is not None}


def _write(out: Path, *, run_dir: str | Path, labelled: Index, split: pd.DataFrame, sel: Selection, weight: float,
           report: dict[str, Any]) -> None:
    images, patients, chosen = sel.images, sel.images.patient_ids, sel.chosen
    rows = pd.DataFrame({"image_id": [images.image_ids[r] for r in chosen],
                         "path": [str(Path(images.paths[r]).resolve()) for r in chosen],
                         "patient_id": [patients[r] if patients else f"pseudo_{Path(images.image_ids[r]).stem}"
                                        for r in chosen]})
    for k, c in enumerate(labelled.classes):
        rows[c] = sel.labels[chosen, k]
    rows["weight"] = weight
    base = labelled.frame.copy()
    base["weight"] = base["weight"].fillna(1.0) if "weight" in base.columns else 1.0
    merged = Index(pd.concat([base, rows], ignore_index=True), labelled.task, labelled.classes, labelled.root,
                   {k: v for k, v in labelled.meta.items() if k not in ("index_sha256", "n_images")})
    write_index(merged, out / "index", pseudo={"run_dir": str(run_dir), **report})
    new_split = pd.concat([split, pd.DataFrame({"image_id": rows["image_id"], "split": "train"})],
                          ignore_index=True)
    write_split(new_split, out / "split.csv", "pseudo", None, merged)
    frame = pd.concat([rows, pd.DataFrame(sel.probs[chosen], columns=[f"prob:{c}" for c in labelled.classes])], axis=1)
    atomic_write_text(out / "pseudo.csv", frame.to_csv(index=False, lineterminator="\n"))
    report["retrain"] = (f"cxrlab train --config {Path(run_dir) / 'config.yaml'} --set data.index={out / 'index'} "
                         f"data.split={out / 'split.csv'} --out {out / 'run'}")
    write_json(out / "pseudo.json", report)
