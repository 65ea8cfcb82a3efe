"""Patient-level bootstrap as a weight matrix.

A bootstrap replicate draws P patients with replacement from the P patients scored; every image of a drawn
patient comes along. Drawing P patients uniformly with replacement is one multinomial draw of how many times
each patient is picked, so R replicates are an (R, P) integer matrix ``W``. Metrics are then computed for all
replicates at once from per-patient sums (``W @ per_patient``) or per-patient weights (see ``ranking``).
Row 0 of the matrices returned by ``with_point`` is all ones: the point estimate on the data as observed.
"""

from __future__ import annotations

import numpy as np

CI_LEVEL = 0.95


def patient_weights(n_patients: int, replicates: int, seed: int = 0) -> np.ndarray:
    """(R, P) float64 counts: how many times each patient is drawn in each replicate."""
    if replicates <= 0 or n_patients == 0:
        return np.zeros((0, n_patients))
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_patients, np.full(n_patients, 1.0 / n_patients), size=replicates).astype(np.float64)


def with_point(weights: np.ndarray) -> np.ndarray:
    """Prepend a row of ones (the observed data) to a replicate weight matrix."""
    return np.vstack([np.ones((1, weights.shape[1])), weights])


def percentile_ci(replicates: np.ndarray, level: float = CI_LEVEL) -> np.ndarray:
    """Percentile interval over axis 0, ignoring NaN replicates: shape (2, ...) (NaN when none)."""
    replicates = np.asarray(replicates, dtype=np.float64)
    if replicates.shape[0] == 0:
        return np.full((2, *replicates.shape[1:]), np.nan)
    alpha = (1 - level) / 2
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, as wanted
            return np.nanquantile(replicates, [alpha, 1 - alpha], axis=0)


def per_patient_sums(values: np.ndarray, patients: np.ndarray, n_patients: int) -> np.ndarray:
    """Sum per-image ``values`` (N, K) into (P, K) per-patient totals."""
    values = np.asarray(values, dtype=np.float64).reshape(len(patients), -1)
    out = np.zeros((n_patients, values.shape[1]))
    np.add.at(out, patients, values)
    return out


def bootstrap_p_value(observed: float, deltas: np.ndarray) -> float:
    """Two-sided p-value for a paired difference: z = observed / bootstrap standard error (normal
    approximation); 1.0 when the difference is zero in every replicate."""
    d = np.asarray(deltas, dtype=np.float64)
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return float("nan")
    sd = d.std(ddof=1)
    if sd <= 1e-15:
        return 1.0 if abs(observed) <= 1e-15 else 0.0
    from scipy.stats import norm

    return float(2 * norm.sf(abs(observed) / sd))
