"""Patient-level splits: stratified train/val/test, k-fold, NIH official lists and given folder splits.

A split never separates the images of one patient: stratification works on patients, each carrying the
aggregated label counts of their images (iterative stratification, Sechidis et al. 2011, as in
scikit-multilearn, for multi-label; the same algorithm on one-hot majority classes for multi-class).

``split.csv``: ``image_id, split`` (train/val/test) [, ``fold`` 0..K-1, empty for test]; sidecar
``split.json``: method, seed, index_sha256, fractions, folds, audit summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlab.data.audit import audit, audit_summary
from cxrlab.data.index import Index
from cxrlab.data.merge_splits import hold_out_source_split, official_by_source, source_strata, sources_of
from cxrlab.data.split_csv import SPLIT_ALIASES, SPLITS, patient_ids, read_split_csv
from cxrlab.errors import CxrlabError
from cxrlab.utils import atomic_write_text, write_json

__all__ = ["SPLITS", "SPLIT_ALIASES", "patient_ids", "read_split_csv"]  # re-exported: callers import them from here


# ----------------------------------------------------------------------------- stratification core
def _patient_table(index: Index) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per patient: ids (P,), image counts (P,), label counts (P, C) used for stratification."""
    labels = np.nan_to_num(index.labels(), nan=0.0)  # unknown counts as not positive
    if index.task == "multiclass":  # one class per image: one-hot of the class index
        labels = np.eye(len(index.classes), dtype=np.float32)[index.class_indices()]
    else:  # a merged index: balance each source and each source's findings too
        labels = source_strata(index, labels)
    patients = patient_ids(index).to_numpy()
    ids, inverse = np.unique(patients, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(ids)).astype(np.float64)
    label_counts = np.zeros((len(ids), labels.shape[1]), dtype=np.float64)
    np.add.at(label_counts, inverse, labels)
    if index.task == "multiclass":  # a patient belongs to their majority class
        majority = label_counts.argmax(axis=1)
        label_counts = np.zeros_like(label_counts)
        label_counts[np.arange(len(ids)), majority] = counts
    return ids, counts, label_counts


def iterative_stratification(
    label_counts: np.ndarray, sizes: np.ndarray, ratios: list[float], seed: int = 0
) -> np.ndarray:
    """Assign each sample (here: patient) to a fold so every label's positives follow ``ratios``.

    Args:
        label_counts: (P, C) positives per label per sample (image counts for a patient).
        sizes: (P,) weight of each sample (its number of images).
        ratios: desired fraction per fold, summing to 1.
        seed: tie-breaking and visiting order.

    Returns:
        (P,) int fold per sample.
    """
    rng = np.random.default_rng(seed)
    ratios_arr = np.asarray(ratios, dtype=np.float64)
    n = len(sizes)
    order = rng.permutation(n)  # random visiting order, so equal patients are not split by id order
    label_counts, sizes = label_counts[order], sizes[order]
    want_label = ratios_arr[None, :] * label_counts.sum(axis=0)[:, None]  # (C, F)
    desired_label = want_label.copy()
    want_total = ratios_arr * sizes.sum()  # (F,)
    fold = np.full(n, -1, dtype=np.int64)
    positive = label_counts > 0
    remaining = positive.sum(axis=0).astype(np.int64)  # unassigned positive samples per label
    while (remaining > 0).any():
        # the rarest label first: its few positives decide, the frequent labels balance themselves later
        label = int(np.where(remaining > 0, remaining, np.iinfo(np.int64).max).argmin())
        for i in np.flatnonzero(positive[:, label] & (fold < 0)):
            # the fold missing the largest share of what it should get of this label: a fold asked for little
            # (val) still gets its first positive patient early, instead of after train has had its fill
            f = _best_fold(_share_missing(want_label[label], desired_label[label]), want_total, rng)
            fold[i] = f
            want_label[:, f] -= label_counts[i]
            want_total[f] -= sizes[i]
            remaining -= positive[i]
    for i in np.flatnonzero(fold < 0):  # samples with no positive label: balance sizes only
        f = _best_fold(want_total, want_total, rng)
        fold[i] = f
        want_total[f] -= sizes[i]
    out = np.empty(n, dtype=np.int64)
    out[order] = fold
    return out


def _share_missing(want: np.ndarray, desired: np.ndarray) -> np.ndarray:
    """(F,) fraction of each fold's desired count still wanted; -inf for folds that want none (e.g. val=0)."""
    return np.divide(want, desired, out=np.full_like(want, -np.inf), where=desired > 0)


def _best_fold(primary: np.ndarray, secondary: np.ndarray, rng: np.random.Generator) -> int:
    """Fold wanting the most of ``primary``; ties broken by ``secondary``, then at random."""
    cand = np.flatnonzero(np.isclose(primary, primary.max()))
    if len(cand) > 1:
        cand = cand[np.isclose(secondary[cand], secondary[cand].max())]
    return int(cand[0] if len(cand) == 1 else rng.choice(cand))


def _check_fractions(val: float, test: float) -> None:
    for name, v in (("val", val), ("test", test)):
        if not 0.0 <= v < 1.0:
            raise CxrlabError(f"--{name} {v} must be a fraction in [0, 1)")
    if val + test >= 1.0:
        raise CxrlabError(f"--val {val} + --test {test} leaves no training data; make them sum to less than 1")


def _require_nonempty(frame: pd.DataFrame, names: list[str], fractions: dict[str, float]) -> None:
    n_patients = frame["patient_id"].nunique()
    for name in names:
        if fractions.get(name, 0) > 0 and not (frame["split"] == name).any():
            raise CxrlabError(
                f"the {name} split came out empty ({n_patients} patients, --{name} {fractions[name]}); "
                f"use more data or a larger --{name} fraction"
            )


def _base_frame(index: Index) -> pd.DataFrame:
    return pd.DataFrame({"image_id": index.frame["image_id"].astype(str), "patient_id": patient_ids(index)})


# ----------------------------------------------------------------------------- split makers
def patient_level_split(index: Index, val: float = 0.1, test: float = 0.2, seed: int = 0) -> pd.DataFrame:
    """Stratified patient-level train/val/test split.

    Returns:
        DataFrame ``image_id, split`` in index order.
    """
    _check_fractions(val, test)
    ids, counts, label_counts = _patient_table(index)
    folds = iterative_stratification(label_counts, counts, [1.0 - val - test, val, test], seed)
    by_patient = dict(zip(ids, np.asarray(SPLITS)[folds]))
    frame = _base_frame(index)
    frame["split"] = frame["patient_id"].map(by_patient)
    _require_nonempty(frame, ["train", "val", "test"], {"train": 1 - val - test, "val": val, "test": test})
    return frame[["image_id", "split"]]


def kfold_split(index: Index, k: int, test: float = 0.2, seed: int = 0) -> pd.DataFrame:
    """Patient-grouped stratified k folds after carving a stratified test set.

    Returns:
        DataFrame ``image_id, split, fold``: split is train (fold 0..k-1) or test (fold empty).
    """
    if k < 2:
        raise CxrlabError(f"--folds {k} must be at least 2")
    _check_fractions(0.0, test)
    ids, counts, label_counts = _patient_table(index)
    is_test = iterative_stratification(label_counts, counts, [1.0 - test, test], seed) == 1
    if test == 0:
        is_test[:] = False
    fold = np.full(len(ids), -1, dtype=np.int64)
    keep = ~is_test
    if keep.sum() < k:
        raise CxrlabError(f"only {int(keep.sum())} non-test patients for --folds {k}; use more data or fewer folds")
    fold[keep] = iterative_stratification(label_counts[keep], counts[keep], [1.0 / k] * k, seed + 1)
    frame = _base_frame(index)
    pos = pd.Series(np.arange(len(ids)), index=ids)[frame["patient_id"]].to_numpy()
    frame["split"] = np.where(is_test[pos], "test", "train")
    frame["fold"] = pd.array(np.where(fold[pos] >= 0, fold[pos], 0), dtype="Int64")
    frame.loc[is_test[pos], "fold"] = pd.NA
    if test > 0:
        _require_nonempty(frame, ["test"], {"test": test})
    empty = sorted(set(range(k)) - set(frame["fold"].dropna().astype(int)))
    if empty:
        raise CxrlabError(f"fold(s) {empty} came out empty; use more data or fewer --folds")
    return frame[["image_id", "split", "fold"]]


def official_split(index: Index, val: float = 0.1, seed: int = 0) -> pd.DataFrame:
    """Use the index's ``official_split`` column (train_val/test, NIH lists); carve val from train_val by patient."""
    if "official_split" not in index.frame.columns:
        raise CxrlabError(
            "the index has no official_split column; index an NIH download holding train_val_list.txt and "
            "test_list.txt, or drop --official"
        )
    official = index.frame["official_split"].astype("string").str.strip().str.lower()
    bad = official[~official.isin(["train_val", "test"])]
    if len(bad):
        row = bad.index[0]
        raise CxrlabError(
            f"{len(bad)} index rows have no usable official_split (e.g. row {row + 2}, image "
            f"{index.frame['image_id'].iloc[row]}: {bad.iloc[0]!r}); expected train_val or test"
        )
    _check_fractions(val, 0.0)
    frame = _base_frame(index)
    frame["split"] = np.where(official == "test", "test", "train")
    # only patients with every image in train_val may go to val, so val never shares a patient with test
    test_patients = set(frame.loc[frame["split"] == "test", "patient_id"].astype(str))
    eligible = (frame["split"] == "train") & ~frame["patient_id"].isin(test_patients)
    if val > 0 and eligible.any():
        sub = index.subset(frame.loc[eligible, "image_id"].tolist())
        ids, counts, label_counts = _patient_table(sub)
        folds = iterative_stratification(label_counts, counts, [1.0 - val, val], seed)
        val_patients = set(ids[folds == 1])
        frame.loc[eligible & frame["patient_id"].isin(val_patients), "split"] = "val"
    _require_nonempty(frame, ["val"], {"val": val})
    return frame[["image_id", "split"]]


def given_split(index: Index, column: str = "given_split") -> pd.DataFrame:
    """Keep a split the dataset came with (e.g. train/valid/test folders); audit it before trusting it."""
    if column not in index.frame.columns:
        raise CxrlabError(
            f"the index has no {column} column; index a folder dataset with its split folders kept "
            "(`cxrlab data index ROOT --format folder --keep-split`), or drop --keep-given"
        )
    frame = _base_frame(index)
    frame["split"] = normalize_split_names(index.frame[column], column)
    return frame[["image_id", "split"]]


def normalize_split_names(values: pd.Series, where: str, allowed: tuple[str, ...] = SPLITS) -> pd.Series:
    """Lower-case, map aliases (valid -> val) and check every value is in ``allowed``."""
    names = values.astype("string").str.strip().str.lower().replace(SPLIT_ALIASES)
    bad = names.isna() | ~names.isin(allowed)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise CxrlabError(
            f"{where}: row {row + 2} has split {values.iloc[row]!r}; expected one of {', '.join(allowed)}"
        )
    return names.astype(object)


# ----------------------------------------------------------------------------- files
def write_split(
    frame: pd.DataFrame,
    path: str | Path,
    method: str,
    seed: int | None,
    index: Index,
    fractions: dict[str, float] | None = None,
    folds: int | None = None,
    audit_summary: dict[str, Any] | None = None,
) -> Path:
    """Write ``split.csv`` and its ``split.json`` sidecar; returns the CSV path."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise CxrlabError(f"--out {path} must be a .csv file (split.json is written beside it)")
    columns = ["image_id", "split"] + (["fold"] if "fold" in frame.columns else [])
    atomic_write_text(path, frame[columns].to_csv(index=False, lineterminator="\n"))
    counts = frame["split"].value_counts()
    meta = {
        "method": method,
        "seed": seed,
        "index_sha256": index.sha256,
        "index_path": str(index.path) if index.path else None,
        "fractions_requested": fractions,
        "fractions": {s: round(float(counts.get(s, 0)) / max(len(frame), 1), 4) for s in SPLITS},
        "images": {s: int(counts.get(s, 0)) for s in SPLITS},
        "folds": folds,
        "fold_images": _fold_counts(frame) if "fold" in frame.columns else None,
        "audit": audit_summary,
    }
    write_json(path.with_suffix(".json"), meta)
    return path


def _fold_counts(frame: pd.DataFrame) -> dict[str, int]:
    counts = frame["fold"].dropna().astype(int).value_counts().sort_index()
    return {str(k): int(v) for k, v in counts.items()}


def load_split(path: str | Path) -> pd.DataFrame:
    """Read and validate a split CSV (``image_id`` or ``Image Index``, ``split`` [, ``fold``])."""
    path = Path(path)
    frame = read_split_csv(path, f"make one with `cxrlab data split INDEX --out {path.name}`")
    frame["split"] = normalize_split_names(frame["split"], str(path))
    dup = frame["image_id"].duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise CxrlabError(f"{path}: row {row + 2} repeats image_id {frame['image_id'].iloc[row]}; ids must be unique")
    columns = ["image_id", "split"]
    if "fold" in frame.columns:
        frame["fold"] = _parse_folds(frame, path)
        columns.append("fold")
    return frame[columns].reset_index(drop=True)


def _parse_folds(frame: pd.DataFrame, path: Path) -> pd.Series:
    raw = frame["fold"].str.strip()
    fold = pd.to_numeric(raw.replace("", None), errors="coerce")
    bad = (raw != "") & (fold.isna() | (fold < 0) | (fold % 1 != 0))
    bad |= (frame["split"] != "test") & fold.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise CxrlabError(
            f"{path}: row {row + 2} has fold {frame['fold'].iloc[row]!r}; non-test rows need a fold 0..K-1"
        )
    return fold.astype("Int64")


def split_ids(split: pd.DataFrame, name: str) -> list[str]:
    """Image ids of one split (``train``, ``val`` or ``test``)."""
    if name not in SPLITS:
        hint = " (a split name, not a file: the rows come from the run's own split.csv)" if "." in name else ""
        raise CxrlabError(f"split {name!r} is not one of {', '.join(SPLITS)}{hint}")
    return split.loc[split["split"] == name, "image_id"].astype(str).tolist()


def fold_view(split: pd.DataFrame, k: int) -> pd.DataFrame:
    """The same split with fold ``k`` as val and the other folds as train; test rows kept."""
    if "fold" not in split.columns:
        raise CxrlabError("this split has no fold column; make one with `cxrlab data split --folds K`")
    folds = sorted(int(f) for f in split["fold"].dropna().unique())
    if k not in folds:
        raise CxrlabError(f"fold {k} is not in this split; valid folds: {folds}")
    out = split.copy()
    has_fold = out["fold"].notna()
    out.loc[has_fold, "split"] = np.where(out.loc[has_fold, "fold"].astype(int) == k, "val", "train")
    return out


def make_split(
    index: Index,
    out: str | Path,
    val: float = 0.1,
    test: float = 0.2,
    folds: int | None = None,
    official: bool = False,
    keep_given: bool = False,
    seed: int = 0,
    hold_out_source: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Make the requested split, audit it and write ``out`` (+ ``.json``); returns (split, audit result).

    For a merged index, ``official`` honours the official test lists of the members that have one (the others
    are stratified) and ``hold_out_source`` puts that whole source in test."""
    if sum([bool(folds), official, keep_given, bool(hold_out_source)]) > 1:
        raise CxrlabError("choose one of --folds, --official, --keep-given and --hold-out-source")
    stratified = lambda sub: patient_level_split(sub, val, test, seed)  # noqa: E731
    if hold_out_source:
        frame, method = hold_out_source_split(index, hold_out_source, stratified), f"hold_out:{hold_out_source}"
        fractions = {"val": val, "test": test}
    elif official and sources_of(index):
        frame, how = official_by_source(index, lambda sub: official_split(sub, val, seed), stratified)
        method, fractions = "official_by_source:" + ",".join(f"{k}={v}" for k, v in how.items()), {"val": val}
    elif keep_given:
        frame, method, fractions = given_split(index), "given", None
    elif official:
        frame, method, fractions = official_split(index, val, seed), "official", {"val": val}
    elif folds:
        frame, method, fractions = kfold_split(index, folds, test, seed), "kfold", {"test": test}
    else:
        frame = patient_level_split(index, val, test, seed)
        method, fractions = "patient_stratified", {"val": val, "test": test}
    result = audit(index, frame)
    write_split(frame, out, method, seed, index, fractions, folds, audit_summary(result))
    return frame, result
