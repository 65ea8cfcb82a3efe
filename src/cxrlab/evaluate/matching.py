"""Line predictions up with labels: classes by name, images by id, patients from the labels.

Every problem a user can cause gets one line naming the file, the row or column, and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np
import pandas as pd

from cxrlab.data.findings import match_classes, spellings
from cxrlab.data.index import Index
from cxrlab.errors import CxrlabError
from cxrlab.predictions import Predictions, read_predictions
from cxrlab.tasks import probabilities
from cxrlab.utils import read_json


@dataclass
class Scored:
    """Predictions and labels for the same images and classes, in the same order."""

    image_ids: list[str]
    patients: np.ndarray  # (N,) int patient index 0..P-1 (for the bootstrap)
    y: np.ndarray  # (N, C) float 1/0, NaN unknown (multi-label); one-hot (multi-class)
    p: np.ndarray  # (N, C) probabilities
    classes: list[str]
    task: str
    notes: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    patient_names: np.ndarray | None = None  # (N,) str, to re-index patients after subsetting
    matching: dict | None = None  # how model classes met label classes (see ``cxrlab.data.findings``)

    @property
    def n_patients(self) -> int:
        return int(self.patients.max()) + 1 if len(self.patients) else 0


def load_scored(
    path: str | Path, labels: Index, prefix: str | None = None, logits: bool = False, match: str = "exact"
) -> tuple[Scored, Predictions]:
    """Read a predictions CSV and match it to ``labels`` (``match``: exact | approximate, see ``_match_classes``)."""
    wanted = list(dict.fromkeys(n for c in labels.classes for n in spellings(c)))  # other datasets' spellings too
    preds = read_predictions(path, classes=wanted, prefix=prefix, logits=logits)
    return match_predictions(preds, labels, logits=logits, match=match), preds


def match_predictions(preds: Predictions, labels: Index, logits: bool = False, match: str = "exact") -> Scored:
    """Check ``preds`` and align them with ``labels`` (classes by name or shared finding, images by id).

    Scored classes carry the model's names; ``Scored.matching`` says which label column each was scored on."""
    where = str(preds.path) if preds.path else "predictions"
    _check_ids(preds, where)
    probs = _check_probs(np.asarray(preds.probs, dtype=np.float64), preds.classes, where, labels.task, logits)
    pairs, notes, matching = _match_classes(preds.classes, labels.classes, where, match)
    classes, label_cols = [m for m, _ in pairs], [lab for _, lab in pairs]
    frame = labels.frame.drop_duplicates("image_id").set_index("image_id")
    known = _known_ids(preds, frame.index, where, notes)
    n_pred = len(preds.image_ids)
    ids = [i for i, k in zip(preds.image_ids, known) if k]
    if not known.all():
        notes.append(f"{n_pred - len(ids)} of {n_pred} predicted images have no label and are not scored")
    rows = frame.loc[ids]
    col = [preds.classes.index(c) for c in classes]
    p = probs[known][:, col]
    y = rows[label_cols].to_numpy(dtype=np.float64, na_value=np.nan)
    if labels.task == "multiclass":
        keep = np.nansum(y, axis=1) == 1  # true class among the scored classes
        if not keep.all():
            notes.append(f"{int((~keep).sum())} images whose class is not predicted are not scored")
        ids, p, y, rows = [i for i, k in zip(ids, keep) if k], p[keep], y[keep], rows[keep]
        off = float(np.abs(p.sum(axis=1) - 1).max()) if len(p) else 0.0
        if off > 1e-3:
            notes.append(f"multi-class probabilities do not sum to 1 (off by up to {off:.3g}); scored as given")
    patient_names = _patient_names(rows, ids, preds, notes)
    _, patients = np.unique(patient_names, return_inverse=True)
    counts = {"predicted": n_pred, "scored": len(ids), "unlabelled": n_pred - int(known.sum()),
              "patients": int(patients.max()) + 1, "labelled_images": len(frame)}
    return Scored(ids, patients.astype(np.int64), y, p, classes, labels.task, notes, counts, patient_names, matching)


def subset_scored(s: Scored, image_ids: list[str], classes: list[str]) -> Scored:
    """The rows of ``image_ids`` and columns of ``classes``, in that order (patients re-indexed)."""
    pos = {image_id: i for i, image_id in enumerate(s.image_ids)}
    rows = np.array([pos[i] for i in image_ids], dtype=np.int64)
    cols = [s.classes.index(c) for c in classes]
    names = s.patient_names[rows] if s.patient_names is not None else np.asarray(image_ids, dtype=object)
    _, patients = np.unique(names, return_inverse=True)
    counts = {**s.counts, "scored": len(rows), "patients": int(patients.max()) + 1 if len(rows) else 0}
    return Scored(list(image_ids), patients.astype(np.int64), s.y[rows][:, cols], s.p[rows][:, cols],
                  list(classes), s.task, list(s.notes), counts, names, s.matching)


def _known_ids(preds: Predictions, labelled: pd.Index, where: str, notes: list[str]) -> np.ndarray:
    """Which predicted ids have labels; ids given as paths ("images/x.png") fall back to file names."""
    known = pd.Index(preds.image_ids).isin(labelled)  # hashed: np.isin on strings is far slower
    if not known.any() and preds.image_ids:
        names = [PurePath(i).name for i in preds.image_ids]
        if pd.Index(names).isin(labelled).any():
            preds.image_ids = names
            _check_ids(preds, where)
            notes.append("image ids matched to the labels by file name (folders stripped)")
            return pd.Index(names).isin(labelled)
    if not known.any():
        example = preds.image_ids[0] if preds.image_ids else "(none)"
        raise CxrlabError(f"{where}: none of the {len(preds.image_ids)} image ids (e.g. {example!r}) are in the "
                          "labels; are these predictions for this dataset?")
    return known


def _patient_names(rows: pd.DataFrame, ids: list[str], preds: Predictions, notes: list[str]) -> np.ndarray:
    """Patient of each scored image: from the labels, else from the predictions file, else the image itself."""
    column = rows["patient_id"] if "patient_id" in rows.columns else None
    if column is not None and column.notna().any():
        return column.fillna(rows.index.to_series()).astype(str).to_numpy()
    if preds.patient_ids is not None:
        by_image = dict(zip(preds.image_ids, preds.patient_ids))
        return np.asarray([str(by_image[i]) for i in ids], dtype=object)
    notes.append("no patient ids in the labels or predictions: the bootstrap resamples images")
    return np.asarray(ids, dtype=object)


def _check_ids(preds: Predictions, where: str) -> None:
    seen: dict[str, int] = {}
    for row, image_id in enumerate(preds.image_ids, start=2):  # row 1 is the header
        if image_id in seen:
            raise CxrlabError(f"{where} row {row}: image id {image_id!r} repeats row {seen[image_id]}; "
                              "keep one prediction per image (average test-time augmentations first)")
        seen[image_id] = row


def _check_probs(probs: np.ndarray, classes: list[str], where: str, task: str, logits: bool) -> np.ndarray:
    bad = np.argwhere(~np.isfinite(probs))
    if len(bad):
        r, c = bad[0]
        raise CxrlabError(f"{where} row {r + 2}, column {classes[c]!r}: value is missing or not a number; "
                          "every class needs a probability")
    if logits:
        if probs.size and bool(np.all((probs >= 0) & (probs <= 1))):  # a second sigmoid: all in 0.5..0.73
            raise CxrlabError(f"{where}: --logits, but every value lies in [0, 1]: these look like probabilities "
                              "already (the sigmoid/softmax would be applied twice); drop --logits")
        return probabilities(probs, task)
    out = np.argwhere((probs < 0) | (probs > 1))
    if len(out):
        r, c = out[0]
        raise CxrlabError(f"{where} row {r + 2}, column {classes[c]!r}: {probs[r, c]:g} is outside [0, 1]; "
                          "looks like logits; apply sigmoid/softmax or pass --logits")
    return probs


MATCH_MODES = ("exact", "approximate")


def _match_classes(pred_classes: list[str], label_classes: list[str], where: str, mode: str = "exact"
                   ) -> tuple[list[tuple[str, str]], list[str], dict]:
    """(model class, label class) pairs in label order, notes, and the ``matching`` block of metrics.json.

    Same names match; different spellings of one finding match exactly through the shared findings table
    (NIH ``Effusion`` = CheXpert ``Pleural Effusion``); overlapping findings (``Consolidation`` vs ``Airspace
    opacity``) are approximate: listed, and scored only with ``mode="approximate"``. Nothing matches silently.
    """
    if mode not in MATCH_MODES:
        raise CxrlabError(f"--match {mode!r} is not one of {', '.join(MATCH_MODES)}")
    matched, approx, model_left, labels_left = match_classes(list(pred_classes), list(label_classes))
    used = {x.labels for x in matched}
    scored_approx = []
    if mode == "approximate":
        for a in approx:  # each label and model class once, first candidate wins
            if a.labels not in used and a.model not in {x.model for x in scored_approx}:
                scored_approx.append(a)
                used.add(a.labels)
    chosen = matched + scored_approx
    if not chosen:
        hint = (f"; approximate candidates: {', '.join(f'{a.model} ~ {a.labels}' for a in approx)} (pass --match "
                "approximate to score them)") if approx else ""
        raise CxrlabError(f"{where}: no class in common with the labels, not even a finding shared through the "
                          f"findings table (predictions: {', '.join(pred_classes[:6])}; "
                          f"labels: {', '.join(label_classes[:6])})"
                          f"{hint}; evaluate on labels that share findings with the model, or rename the columns")
    order = {c: i for i, c in enumerate(label_classes)}
    chosen.sort(key=lambda x: order[x.labels])
    scored_models = {x.model for x in chosen}
    notes = []
    renamed = [x for x in chosen if x.kind != "same name"]
    if renamed:
        notes.append("classes matched through the shared findings table: " + ", ".join(
            f"{x.model} = {x.labels}" if x.kind == "exact" else f"{x.model} ~ {x.labels} (approximate: {x.reason})"
            for x in renamed))
    left_approx = [a for a in approx if a not in scored_approx]
    if left_approx and mode == "exact":
        notes.append("approximate matches not scored (pass --match approximate to score them): " + ", ".join(
            f"{a.model} ~ {a.labels} ({a.reason})" for a in left_approx))
    only_labels = [c for c in label_classes if c not in used]
    only_preds = [c for c in pred_classes if c not in scored_models]
    if only_labels:
        notes.append(f"classes in the labels but not predicted (not scored): {', '.join(only_labels)}")
    if only_preds:
        notes.append(f"predicted classes without labels (not scored): {', '.join(only_preds)}")
    block = {"mode": mode, "pairs": [{"model": x.model, "labels": x.labels, "kind": x.kind, "finding": x.finding,
                                      **({"reason": x.reason} if x.reason else {})} for x in chosen],
             "approximate_not_scored": [{"model": a.model, "labels": a.labels, "reason": a.reason}
                                        for a in left_approx],
             "model_unmatched": only_preds, "labels_unmatched": only_labels}
    return [(x.model, x.labels) for x in chosen], notes, block


def check_fitting_allowed(val: Predictions | Path, test_path: Path | None, allow: bool, what: str,
                          how: str = "--val-predictions VAL.csv", labels: Index | None = None,
                          allow_unverified: bool = False, run_dir: Path | None = None,
                          test_preds: Predictions | None = None) -> dict | None:
    """Refuse to fit thresholds or temperatures on test data: by sidecar, by path, and by content (image ids and
    file hashes shared with the test predictions or the test split of any run they name, hashes read from the
    labels index and from the indexes the sidecars record; see ``cxrlab.guards``).

    ``allow`` (``--allow-test-fitting``) overrides a match loudly and ``allow_unverified``
    (``--allow-unverified``) an incomplete check; each returns a record for the output. ``run_dir``: the run
    being evaluated (its test split counts too). ``test_preds``: ``test_path`` already read (its ids are used).
    """
    from cxrlab.guards import Reach, check_fitting

    preds = val if isinstance(val, Predictions) else read_predictions(val)
    path = Path(preds.path) if preds.path is not None else None
    same = test_path is not None and path is not None and path.resolve() == Path(test_path).resolve()
    reach = Reach()
    reach.add_labels(labels)
    reach.add_predictions(preds)
    if run_dir is not None:
        reach.add_run(run_dir, named_by="the run being evaluated")
    if test_path is not None and Path(test_path).is_file() and not same:
        test = test_preds if test_preds is not None else read_predictions(
            test_path, classes=list(preds.classes), logits=True)  # only its ids are used
        reach.add_predictions(test, f"the test predictions {test.path}")
    return check_fitting(path, preds.image_ids, reach, what=what, allow=allow, allow_unverified=allow_unverified,
                         marked_split=preds.split, same_file=same, how=how)


def datasets_block(preds: Predictions, labels: Index, run_dir: Path | None) -> dict:
    """Training and test dataset of an evaluation: the run's index (its format) and the labels' index.

    ``external`` is True when the model is scored on another index than the one it was trained on, and then
    the report says so in its first lines."""
    test = {"index": str(labels.path) if labels.path else labels.meta.get("labels"),
            "format": labels.meta.get("format")}
    train_index = _training_index(preds, run_dir)
    training = {"index": train_index, "format": None}
    if train_index:
        path = Path(train_index)
        meta = path / "index.json" if path.is_dir() else path.with_suffix(".json")
        if meta.is_file():
            training["format"] = read_json(meta, kind=dict).get("format")
    same = bool(train_index and test["index"]) and _same_index(train_index, test["index"])
    return {"training": training, "test": test, "external": bool(train_index and test["index"]) and not same}


def _training_index(preds: Predictions, run_dir: Path | None) -> str | None:
    from cxrlab.rundir import RunDir

    run = RunDir(run_dir or Path(preds.meta["run_dir"])) if run_dir or preds.meta.get("run_dir") else None
    if run is None or not run.config_path.is_file():
        return None
    index = run.data_path("index")  # relative to the run, never the current directory
    return str(index) if index is not None else None


def _same_index(a: str, b: str) -> bool:
    def csv(p: str) -> Path:
        path = Path(p)
        return (path / "index.csv" if path.is_dir() else path).resolve()

    return csv(a) == csv(b)
