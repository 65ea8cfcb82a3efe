"""Patient-level bootstrap as a weight matrix; percentile and BCa intervals; the bootstrap test of a difference.

A bootstrap replicate draws patients with replacement; every image of a drawn patient comes along. Drawing
P patients uniformly with replacement is one multinomial draw of how many times each patient is picked, so R
replicates are an (R, P) count matrix ``W``. Metrics are then computed for all replicates at once from
per-patient sums (``W @ per_patient``) or per-patient weights (see ``ranking``). Row 0 of the matrices
returned by ``with_point`` is all ones: the point estimate on the data as observed.

Stratified (``stratified_weights``): patients are grouped into strata and each stratum is resampled to its own
size. ``patient_strata`` puts each patient in the stratum of the rarest class it holds a positive image for
(patients without a positive form one more stratum), so every class keeps at least one positive patient in
every replicate whenever some patient's rarest positive is that class; the remaining cases (a class whose
positive patients are all positive for a rarer class too) are counted, never silently dropped: a macro
replicate in which one of its fixed classes is undefined is undefined (``fixed_macro``) and counted.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import norm

from cxrlab.evaluate.stats.results import Metric

CI_LEVEL = 0.95


def patient_weights(n_patients: int, replicates: int, seed: int = 0) -> np.ndarray:
    """(R, P) float64 counts: how many times each patient is drawn in each replicate (unstratified)."""
    if replicates <= 0 or n_patients == 0:
        return np.zeros((0, n_patients))
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_patients, np.full(n_patients, 1.0 / n_patients), size=replicates).astype(np.float64)


def patient_strata(y: np.ndarray, patients: np.ndarray, n_patients: int) -> np.ndarray:
    """(P,) stratum of each patient: the rarest class (fewest positive patients) it holds a positive image for;
    C (one past the last class) for patients without any positive. ``y``: (N, C) 1/0/NaN."""
    y = np.asarray(y, dtype=np.float64).reshape(len(patients), -1)
    pos = np.zeros((n_patients, y.shape[1]), dtype=bool)
    np.logical_or.at(pos, patients, y == 1)
    rarity = pos.sum(axis=0).astype(np.float64)  # positive patients per class
    rank = np.where(pos, rarity[None, :], np.inf)
    strata = np.argmin(rank, axis=1)
    strata[~pos.any(axis=1)] = y.shape[1]
    return strata


def stratified_weights(strata: np.ndarray, replicates: int, seed: int = 0) -> np.ndarray:
    """(R, P) counts: each stratum's patients resampled with replacement to that stratum's size."""
    strata = np.asarray(strata)
    out = np.zeros((max(replicates, 0), len(strata)))
    if replicates <= 0:
        return out
    rng = np.random.default_rng(seed)
    for s in np.unique(strata):
        members = np.flatnonzero(strata == s)
        k = len(members)
        out[:, members] = rng.multinomial(k, np.full(k, 1.0 / k), size=replicates)
    return out


def stratified_patient_weights(y: np.ndarray, patients: np.ndarray, n_patients: int, replicates: int,
                               seed: int = 0) -> np.ndarray:
    """(R+1, P) the one patient bootstrap of cxrlab, row 0 all ones: each patient in the stratum of its rarest
    positive class (``patient_strata``), each stratum resampled to its size (``stratified_weights``). evaluate,
    compare, study report and study matrix all draw their replicates here. ``y``: (N, C) 1/0/NaN."""
    return with_point(stratified_weights(patient_strata(y, patients, n_patients), replicates, seed))


def with_point(weights: np.ndarray) -> np.ndarray:
    """Prepend a row of ones (the observed data) to a replicate weight matrix."""
    return np.vstack([np.ones((1, weights.shape[1])), weights])


def per_patient_sums(values: np.ndarray, patients: np.ndarray, n_patients: int) -> np.ndarray:
    """Sum per-image ``values`` (N, K) into (P, K) per-patient totals."""
    values = np.asarray(values, dtype=np.float64).reshape(len(patients), -1)
    out = np.zeros((n_patients, values.shape[1]))
    np.add.at(out, patients, values)
    return out


def fixed_macro(values: np.ndarray) -> np.ndarray:
    """(R,) mean over the columns of (R, K): the class set is fixed, so a row where any class is undefined (NaN)
    is NaN (counted by ``undefined_replicates``), never an average over the classes that happened to be defined."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape[1] == 0:
        return np.full(len(values), np.nan)
    return values.mean(axis=1)


def undefined_replicates(replicates: np.ndarray) -> np.ndarray | int:
    """Number of NaN replicates along axis 0 (per column for 2-D input)."""
    count = np.isnan(np.asarray(replicates, dtype=np.float64)).sum(axis=0)
    return int(count) if np.ndim(count) == 0 else count


def bootstrap_metric(values: np.ndarray, classes: tuple[str, ...] = (), level: float = CI_LEVEL) -> Metric:
    """``Metric`` from (R+1,) values, row 0 observed: percentile interval over the defined replicates, and the
    number of undefined ones (a macro's ``classes`` are its fixed class set)."""
    values = np.asarray(values, dtype=np.float64)
    low, high = percentile_ci(values[1:], level)
    ci = (float(low), float(high)) if np.isfinite(low) and np.isfinite(high) else None
    return Metric(float(values[0]), ci, undefined_replicates(values[1:]), len(values) - 1, "percentile",
                  tuple(classes))


def percentile_ci(replicates: np.ndarray, level: float = CI_LEVEL) -> np.ndarray:
    """Percentile interval over axis 0, ignoring NaN replicates: shape (2, ...) (NaN when none)."""
    replicates = np.asarray(replicates, dtype=np.float64)
    if replicates.shape[0] == 0:
        return np.full((2, *replicates.shape[1:]), np.nan)
    alpha = (1 - level) / 2
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, as wanted
        return np.nanquantile(replicates, [alpha, 1 - alpha], axis=0)


def bca_ci(point: float, replicates: np.ndarray, jackknife: np.ndarray, level: float = CI_LEVEL) -> np.ndarray:
    """Efron's (1987) bias-corrected and accelerated interval of one statistic: (2,) [low, high].

    Args:
        point: the statistic on the observed data.
        replicates: (R,) bootstrap replicates (NaN ignored).
        jackknife: (J,) leave-one-(group-)out values, for the acceleration.
    """
    reps = np.asarray(replicates, dtype=np.float64)
    reps = reps[np.isfinite(reps)]
    jack = np.asarray(jackknife, dtype=np.float64)
    jack = jack[np.isfinite(jack)]
    if len(reps) < 2 or not np.isfinite(point):
        return np.full(2, np.nan)
    frac = (np.sum(reps < point) + 0.5 * np.sum(reps == point)) / len(reps)
    z0 = norm.ppf(np.clip(frac, 0.5 / len(reps), 1 - 0.5 / len(reps)))
    dev = jack.mean() - jack if len(jack) > 1 else np.zeros(1)
    denom = 6.0 * np.sum(dev**2) ** 1.5
    a = float(np.sum(dev**3) / denom) if denom > 0 else 0.0
    z = norm.ppf([(1 - level) / 2, 1 - (1 - level) / 2])
    adjusted = norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z)))
    return np.quantile(reps, adjusted)


def jackknife_weights(n_patients: int, groups: int = 100, seed: int = 0) -> np.ndarray:
    """(G, P) delete-a-group jackknife weights: patients split at random into G groups, group g left out of
    row g (G = P gives the ordinary leave-one-patient-out jackknife)."""
    groups = min(groups, n_patients)
    rng = np.random.default_rng(seed)
    member = rng.permutation(n_patients) % groups
    return (member[None, :] != np.arange(groups)[:, None]).astype(np.float64)


def bootstrap_test(deltas: np.ndarray) -> tuple[float, float]:
    """Paired bootstrap test of a difference by inverting its percentile interval: (p, p_floor).

    p = min(1, 2 min(1 + #{d* <= 0}, 1 + #{d* >= 0}) / (B + 1)) over the B defined replicates: the smallest
    two-sided level at which the percentile interval excludes 0, a Monte Carlo value that is never below
    ``p_floor`` = 2/(B+1). NaN when fewer than two replicates are defined."""
    d = np.asarray(deltas, dtype=np.float64)
    d = d[np.isfinite(d)]
    b = len(d)
    if b < 2:
        return float("nan"), float("nan")
    tail = min(1 + int(np.sum(d <= 0)), 1 + int(np.sum(d >= 0)))
    return float(min(1.0, 2 * tail / (b + 1))), 2 / (b + 1)
