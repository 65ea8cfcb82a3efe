"""Line predictions up with labels: classes by name, images by id, patients from the labels.

Every problem a user can cause gets one line naming the file, the row or column, and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np
import pandas as pd

from cxrlab.data.index import Index
from cxrlab.errors import CxrlabError
from cxrlab.predictions import Predictions, read_predictions


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

    @property
    def n_patients(self) -> int:
        return int(self.patients.max()) + 1 if len(self.patients) else 0


def load_scored(
    path: str | Path, labels: Index, prefix: str | None = None, logits: bool = False
) -> tuple[Scored, Predictions]:
    """Read a predictions CSV and match it to ``labels``."""
    preds = read_predictions(path, classes=list(labels.classes), prefix=prefix, logits=logits)
    return match_predictions(preds, labels, logits=logits), preds


def match_predictions(preds: Predictions, labels: Index, logits: bool = False) -> Scored:
    """Check ``preds`` and align them with ``labels`` (classes by name, images by id)."""
    where = str(preds.path) if preds.path else "predictions"
    _check_ids(preds, where)
    probs = _check_probs(np.asarray(preds.probs, dtype=np.float64), preds.classes, where, labels.task, logits)
    classes, notes = _match_classes(preds.classes, labels.classes, where)
    frame = labels.frame.drop_duplicates("image_id").set_index("image_id")
    known = _known_ids(preds, frame.index, where, notes)
    n_pred = len(preds.image_ids)
    ids = [i for i, k in zip(preds.image_ids, known) if k]
    if not known.all():
        notes.append(f"{n_pred - len(ids)} of {n_pred} predicted images have no label and are not scored")
    rows = frame.loc[ids]
    col = [preds.classes.index(c) for c in classes]
    p = probs[known][:, col]
    y = rows[classes].to_numpy(dtype=np.float64, na_value=np.nan)
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
    return Scored(ids, patients.astype(np.int64), y, p, classes, labels.task, notes, counts, patient_names)


def subset_scored(s: Scored, image_ids: list[str], classes: list[str]) -> Scored:
    """The rows of ``image_ids`` and columns of ``classes``, in that order (patients re-indexed)."""
    pos = {image_id: i for i, image_id in enumerate(s.image_ids)}
    rows = np.array([pos[i] for i in image_ids], dtype=np.int64)
    cols = [s.classes.index(c) for c in classes]
    names = s.patient_names[rows] if s.patient_names is not None else np.asarray(image_ids, dtype=object)
    _, patients = np.unique(names, return_inverse=True)
    counts = {**s.counts, "scored": len(rows), "patients": int(patients.max()) + 1 if len(rows) else 0}
    return Scored(list(image_ids), patients.astype(np.int64), s.y[rows][:, cols], s.p[rows][:, cols],
                  list(classes), s.task, list(s.notes), counts, names)


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
        if task == "multiclass":
            z = probs - probs.max(axis=1, keepdims=True)
            return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        return 1.0 / (1.0 + np.exp(-probs))
    out = np.argwhere((probs < 0) | (probs > 1))
    if len(out):
        r, c = out[0]
        raise CxrlabError(f"{where} row {r + 2}, column {classes[c]!r}: {probs[r, c]:g} is outside [0, 1]; "
                          "looks like logits; apply sigmoid/softmax or pass --logits")
    return probs


def _match_classes(pred_classes: list[str], label_classes: list[str], where: str) -> tuple[list[str], list[str]]:
    classes = [c for c in label_classes if c in pred_classes]
    if not classes:
        raise CxrlabError(f"{where}: no class in common with the labels (predictions: "
                          f"{', '.join(pred_classes[:5])}; labels: {', '.join(label_classes[:5])}); "
                          "rename the columns or pass --prefix")
    notes = []
    only_labels = [c for c in label_classes if c not in pred_classes]
    only_preds = [c for c in pred_classes if c not in label_classes]
    if only_labels:
        notes.append(f"classes in the labels but not predicted (not scored): {', '.join(only_labels)}")
    if only_preds:
        notes.append(f"predicted classes without labels (not scored): {', '.join(only_preds)}")
    return classes, notes


def check_fitting_allowed(val: Predictions | Path, test_path: Path | None, allow: bool, what: str,
                          how: str = "--val-predictions VAL.csv", labels: Index | None = None) -> dict | None:
    """Refuse to fit thresholds or temperatures on test data: by sidecar, by path, and by content (image ids and
    file hashes shared with the test predictions or the run's test split; see ``cxrlab.guards``).

    ``allow`` (``--allow-test-fitting``) overrides it loudly and returns a record for the output.
    """
    from cxrlab.guards import check_not_test, hashes_of, test_set_of_predictions, test_set_of_run

    preds = val if isinstance(val, Predictions) else read_predictions(val)
    path = Path(preds.path) if preds.path is not None else None
    same = test_path is not None and path is not None and path.resolve() == Path(test_path).resolve()
    tests = [test_set_of_run(preds.meta.get("run_dir"))]
    if test_path is not None and Path(test_path).is_file() and not same:
        test = read_predictions(test_path, classes=list(preds.classes))
        tests.insert(0, test_set_of_predictions(test, labels))
    return check_not_test(path, preds.image_ids, tests=tests, what=what, allow=allow,
                          hashes=hashes_of(preds.image_ids, labels), marked_split=preds.split, same_file=same, how=how)
