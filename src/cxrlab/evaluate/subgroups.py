"""Subgroup analysis (``evaluate --by sex,age,view``): per-group metrics, gaps between groups, underdiagnosis.

For each ``--by`` column of the labels index, the scored images are grouped (ages into bands with
configurable edges) and every group large enough (``min_group`` images) gets the same block as the top level
of ``metrics.json`` (``n_images``, ``n_patients``, ``per_class``, ``macro`` ... with patient-bootstrap CIs)
plus its calibration (ECE) and, when a ``No Finding`` class exists, its underdiagnosis rate (Seyyed-Kalantari
et al., Nature Medicine 2021: among images with a finding, the share predicted ``No Finding`` at the
threshold chosen on validation). Groups are compared on the *same* bootstrap replicates: one draw of patients
for the whole test set, each group's metric computed on its own patients of that draw, so a gap's interval
comes from paired resampling of patients. Groups below ``min_group`` are listed as too small and left out
of gaps and of the worst group. The ``missing`` group (no value in the column) is reported, never compared.
"""

from __future__ import annotations

import warnings
from itertools import combinations

import numpy as np
import pandas as pd

from cxrlab.data.index import Index
from cxrlab.errors import CxrlabError
from cxrlab.evaluate import metrics as m
from cxrlab.evaluate.matching import Scored, subset_scored
from cxrlab.evaluate.stats.bootstrap import per_patient_sums
from cxrlab.evaluate.stats.evaluation import Thresholds
from cxrlab.evaluate.summary import est, multiclass_block, multilabel_block, threshold_block

DEFAULT_AGE_BANDS = (40, 60, 80)
MIN_AGE, MAX_AGE = 0.0, 120.0  # plausible ages in years; others are data errors
DEFAULT_MIN_GROUP = 30
MAX_GROUPS = 20  # gaps are pairwise: --by is for a few groups (sex, age bands, view, site), not for ids
MISSING = "missing"
NO_FINDING = "No Finding"


def parse_by(text: str | list[str] | None) -> list[str]:
    """``sex,age`` -> ``["sex", "age"]``."""
    if not text:
        return []
    items = text.split(",") if isinstance(text, str) else list(text)
    return [c.strip() for c in items if c.strip()]


def parse_age_bands(text: str | list | tuple | None) -> list[float]:
    """``40,60,80`` -> [40, 60, 80] (strictly increasing); a one-line error otherwise."""
    if text is None or text == "":
        return list(DEFAULT_AGE_BANDS)
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        edges = [float(x) for x in items]
    except ValueError:
        raise CxrlabError(f"--age-bands {text!r}: give increasing ages separated by commas, e.g. 40,60,80") from None
    if not all(MIN_AGE < e <= MAX_AGE for e in edges):  # NaN too
        raise CxrlabError(f"--age-bands {text!r}: every edge must be an age in ({MIN_AGE:g}, {MAX_AGE:g}], "
                          "e.g. 40,60,80")
    if not edges or any(b <= a for a, b in zip(edges, edges[1:])):
        raise CxrlabError(f"--age-bands {text!r}: the edges must increase, e.g. 40,60,80")
    return edges


def age_band_labels(ages: pd.Series, edges: list[float]) -> pd.Series:
    """Ages -> ``<40``, ``40-59``, ``60-79``, ``>=80`` (integer edges shown as integers); NaN -> ``missing``."""
    values = pd.to_numeric(ages, errors="coerce")
    implausible = values.notna() & ~values.between(MIN_AGE, MAX_AGE)
    if implausible.any():  # -5 or 200 is a data error, not an age band: counted as missing, and said
        first = implausible.idxmax()
        warnings.warn(f"{int(implausible.sum())} ages outside {MIN_AGE:g}..{MAX_AGE:g} (e.g. {values[first]:g} for "
                      f"{first}) are counted as {MISSING!r}", UserWarning, stacklevel=2)
        values = values.where(~implausible)
    fmt = [f"{e:g}" for e in edges]
    names = [f"<{fmt[0]}"] + [f"{a}-{float(b) - 1:g}" if float(b).is_integer() else f"{a}-<{b}"
                              for a, b in zip(fmt, edges[1:])] + [f">={fmt[-1]}"]
    codes = np.searchsorted(np.asarray(edges), values.to_numpy(dtype=float), side="right")
    out = pd.Series([names[c] for c in codes], index=ages.index, dtype=object)
    out[values.isna()] = MISSING
    return out


def group_labels(index: Index, image_ids: list[str], column: str, edges: list[float]) -> pd.Series:
    """The group of each scored image under ``column`` (ages banded); one-line errors for unusable columns."""
    frame = index.frame.drop_duplicates("image_id").set_index("image_id")
    if column not in frame.columns or column in index.classes:
        usable = [c for c in frame.columns if c not in index.classes and c not in ("path", "sha256")]
        raise CxrlabError(f"--by {column}: not a column of the labels index (columns: {', '.join(usable)}); "
                          "index the dataset with an adapter that keeps it, or choose another column")
    values = frame.loc[image_ids, column]
    if column == "age":
        return age_band_labels(values, edges).reset_index(drop=True)
    text = values.astype("string").str.strip().fillna("")
    return text.where(text != "", MISSING).astype(object).reset_index(drop=True)


def _replicates(sub: Scored, weights: np.ndarray, exclude: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(macro metric (R+1,), per-class metric (R+1, C)) on the given replicate weights."""
    if sub.task == "multilabel":
        aucs, _ = m.class_auc_ap(sub, weights)
        keep, _, _ = m.averaged_classes(sub, exclude)
        return m.nanmean_rows(aucs[:, keep]) if keep else np.full(len(weights), np.nan), aucs
    r = m.multiclass_from_confusion(m.confusion(sub, weights))
    return r["macro_f1"], r["f1"]


def _underdiagnosis(sub: Scored, weights: np.ndarray, threshold: float | None) -> np.ndarray | None:
    """(R+1,) share of images with a finding (No Finding label 0) whose No Finding score >= threshold."""
    if threshold is None or NO_FINDING not in sub.classes:
        return None
    i = sub.classes.index(NO_FINDING)
    has_finding = sub.y[:, i] == 0
    flagged = has_finding & (sub.p[:, i] >= threshold)
    sums = weights @ per_patient_sums(np.column_stack([flagged, has_finding]), sub.patients, sub.n_patients)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums[:, 0] / sums[:, 1]


def _patient_columns(s: Scored, sub: Scored) -> np.ndarray:
    """Column of each of ``sub``'s patients in the full weight matrix (paired resampling)."""
    full = np.unique(s.patient_names)
    return np.searchsorted(full, np.unique(sub.patient_names))


def _group_block(sub: Scored, weights: np.ndarray, exclude, val, method) -> dict:
    if sub.task == "multilabel":
        results = multilabel_block(sub, weights, exclude, val, method, minimum=0, seed_paper=False)
    else:
        results = multiclass_block(sub, weights, val)
    return {"n_images": len(sub.image_ids), "n_patients": sub.n_patients, **results.to_dict()}


def subgroup_analysis(s: Scored, index: Index, by: list[str], weights: np.ndarray, *, exclude: tuple[str, ...] = (),
                      val: Scored | None = None, method: str = "youden", age_bands: list[float] | None = None,
                      min_group: int = DEFAULT_MIN_GROUP, thresholds: Thresholds | None = None) -> dict:
    """``{column: {group: block, ..., "gaps": {...}, "worst_group": ..., "settings": ...}}`` for ``by`` columns.

    ``weights``: the top level's (R+1, P) patient weights (row 0 = observed), reused so that every group and
    every gap sees the same draws. ``thresholds``: the top level's thresholds (for underdiagnosis).
    """
    edges = list(age_bands) if age_bands else list(DEFAULT_AGE_BANDS)
    if thresholds is None and s.task == "multilabel" and NO_FINDING in s.classes:
        thresholds = threshold_block(s, weights[:1], val, method, [])  # only the thresholds are used
    if s.patient_names is None:
        s.patient_names = np.asarray(s.image_ids, dtype=object)
    out = {}
    for column in by:
        out[column] = _one_column(s, index, column, weights, exclude, val, method, edges, min_group, thresholds)
    return out


def _one_column(s, index, column, weights, exclude, val, method, edges, min_group, thresholds) -> dict:
    groups = group_labels(index, s.image_ids, column, edges)
    names = sorted(groups.unique(), key=_group_order)
    if len([g for g in names if g != MISSING]) < 2:
        raise CxrlabError(f"--by {column}: the scored images have a single group ({names[0] if names else 'none'}); "
                          "nothing to compare, drop it from --by")
    if len(names) > MAX_GROUPS:
        raise CxrlabError(f"--by {column}: {len(names)} groups (e.g. {', '.join(names[:3])}); --by compares a few "
                          f"groups (at most {MAX_GROUPS}): choose a coarser column, or bands with --age-bands")
    nf = thresholds.per_class[NO_FINDING].threshold if thresholds and NO_FINDING in thresholds.per_class else None
    metric = "macro_auroc" if s.task == "multilabel" else "macro_f1"
    result, reps = {}, {}
    for g in names:
        ids = [i for i, x in zip(s.image_ids, groups) if x == g]
        sub = subset_scored(s, ids, s.classes)
        if len(ids) < min_group:
            result[g] = {"n_images": len(ids), "n_patients": sub.n_patients, "too_small": True,
                         "note": f"fewer than {min_group} images (--min-group): not scored, not compared"}
            continue
        w = weights[:, _patient_columns(s, sub)]
        try:
            block = _group_block(sub, w, exclude, val, method)
        except CxrlabError as exc:  # e.g. every class has one label value in this group
            result[g] = {"n_images": len(ids), "n_patients": sub.n_patients, "undefined": str(exc)}
            continue
        macro, per_class = _replicates(sub, w, exclude)
        under = _underdiagnosis(sub, w, nf) if s.task == "multilabel" else None
        if under is not None:
            block["underdiagnosis"], block["underdiagnosis_ci"] = est(under)
        result[g] = block
        if g != MISSING:
            reps[g] = {"macro": macro, "per_class": per_class, "underdiagnosis": under}
    result["gaps"] = _gaps(reps, s.classes, metric)
    unlabelled = _unlabelled(s, groups, names) if s.task == "multilabel" else {}
    result["worst_group"] = _worst(reps, metric)
    result["settings"] = {"metric": metric, "min_group": min_group, "groups": names,
                          "age_bands": edges if column == "age" else None,
                          "underdiagnosis": (f"share of images with a finding predicted '{NO_FINDING}' at its "
                                             f"threshold {nf:.4g} ({thresholds.chosen_on})")
                          if nf is not None and s.task == "multilabel" else
                          f"undefined: no '{NO_FINDING}' class scored" if s.task == "multilabel" else
                          "undefined for multi-class tasks",
                          "not_labelled": unlabelled, "not_labelled_rule": UNLABELLED_RULE if unlabelled else None}
    return result


UNLABELLED_RULE = ("a finding with no known label in a group (a source of merged data that does not label it) is "
                   "left out of that group's macro average and of its per-class gaps; it is not scored as negative")


def _unlabelled(s: Scored, groups: pd.Series, names: list[str]) -> dict[str, list[str]]:
    """{group: classes whose labels are all unknown in that group} (only groups that have some)."""
    out = {}
    for g in names:
        rows = (groups == g).to_numpy()
        missing = [c for i, c in enumerate(s.classes) if np.isnan(s.y[rows, i]).all()]
        if missing:
            out[g] = missing
    return out


def model_subgroups(models: list, index: Index, by: list[str], weights: np.ndarray, **kwargs) -> dict:
    """``{model name: subgroup_analysis(...)}`` for ``compare``: the models are scored on the same images, so
    the same replicate draws serve every model and their group tables are comparable."""
    return {model.name: subgroup_analysis(model.scored, index, by, weights, val=model.arrays.get("val"), **kwargs)
            for model in models}


def _group_order(name: str) -> tuple:
    """Age bands in age order, ``missing`` last, the rest alphabetically."""
    if name == MISSING:
        return (2, 0.0, name)
    digits = name.lstrip("<>=").split("-")[0]
    try:
        shift = 0.5 if name.startswith(">=") else -0.5 if name.startswith("<") else 0.0
        return (0, float(digits) + shift, name)
    except ValueError:
        return (1, 0.0, name)


def _diff(a: np.ndarray, b: np.ndarray) -> dict:
    value, ci = est(a - b)
    return {"difference": value, "ci": ci}


def _gaps(reps: dict, classes: list[str], metric: str) -> dict:
    """Pairwise differences (first minus second) with paired-bootstrap CIs."""
    out = {}
    for a, b in combinations(reps, 2):
        ra, rb = reps[a], reps[b]
        gap = {metric: _diff(ra["macro"], rb["macro"]),
               "per_class": {c: _diff(ra["per_class"][:, i], rb["per_class"][:, i]) for i, c in enumerate(classes)}}
        if ra["underdiagnosis"] is not None and rb["underdiagnosis"] is not None:
            gap["underdiagnosis"] = _diff(ra["underdiagnosis"], rb["underdiagnosis"])
        out[f"{a} - {b}"] = gap
    return out


def _worst(reps: dict, metric: str) -> dict | None:
    scored = {g: r["macro"][0] for g, r in reps.items() if np.isfinite(r["macro"][0])}
    if not scored:
        return None
    worst, best = min(scored, key=scored.get), max(scored, key=scored.get)
    return {"group": worst, metric: float(scored[worst]), "best_group": best,
            "gap_to_best": _diff(reps[best]["macro"], reps[worst]["macro"])}
