"""Two-level bootstrap over patients and training seeds (pure NumPy, no I/O).

A study arm is a recipe trained with several seeds, every seed scored on the same patients. Its headline is
the *mean over seeds* of a metric, and a difference between arms is the difference of those means. Two sources
of variation matter: which patients were scored (shared by every run, so arms are paired on them) and which
seeds were drawn (independent between arms). One replicate of the two-level (crossed, "pigeonhole") bootstrap
(Owen 2007, Ann. Appl. Stat. 1(1); McCullagh 2000, Bernoulli 6(2)):

1. resample patients with replacement: the *same* resample for every run of every arm (patients paired);
2. resample each arm's seeds with replacement, independently per arm;
3. the replicate statistic is the mean over the drawn seeds of each drawn seed's metric on the resampled
   patients (or its difference between two arms).

Step 1 is done by the caller: its metric arrays have one row per seed and one column per patient resample
(column 0 = all patients, the observed value; ``cxrlab.evaluate.stats.bootstrap.with_point``), so this module only
draws seeds and averages. The CI is the percentile interval of the replicates. The p-value (H0: no difference)
is a Monte Carlo bootstrap test on the replicates re-centred on the null (Hall & Wilson 1991, Biometrics 47):
``p = (1 + #{|d*_r - d| >= |d|}) / (R + 1)``, the +1 counting the observed statistic (Davison & Hinkley
1997, ch. 4). Replicates whose statistic is undefined (NaN) are ignored, as elsewhere in cxrlab.

Resampling both crossed factors counts the seed-by-patient interaction twice, so the interval is mildly
conservative when that interaction dominates, and with very few seeds (resampling 2-3 values) it is liberal
about the seed part; ``tests/evaluate/test_seeds.py`` measures both by simulation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SeedEstimate:
    """A seed-mean (or a difference of seed means), its percentile CI and, for differences, the bootstrap
    p-value; ``replicates`` counts the defined replicates behind them."""

    estimate: float
    ci: tuple[float, float]
    p_value: float | None
    replicates: int


def seed_draws(n_seeds: int, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """(R, n_seeds) seed indices drawn with replacement: one row per replicate."""
    return rng.integers(0, n_seeds, size=(replicates, n_seeds))


def seed_mean_replicates(values: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """(R,) replicate seed-means: row r averages ``values[draws[r], r + 1]``.

    Args:
        values: (S, R+1) a metric per seed (rows) and patient resample (column 0 observed, 1.. replicates).
        draws: (R, S) seed indices (``seed_draws``).
    """
    values = np.asarray(values, dtype=np.float64)
    cols = np.arange(1, values.shape[1])[:, None]  # (R, 1): replicate r uses patient resample r
    picked = values[draws, cols]  # (R, S)
    finite = np.isfinite(picked)
    n = finite.sum(axis=1)
    total = np.where(finite, picked, 0.0).sum(axis=1)
    return np.divide(total, n, out=np.full(len(picked), np.nan), where=n > 0)


def _observed(values: np.ndarray) -> float:
    col = np.asarray(values, dtype=np.float64)[:, 0]
    col = col[np.isfinite(col)]
    return float(col.mean()) if len(col) else float("nan")


def _interval(reps: np.ndarray, level: float) -> tuple[float, float]:
    if not len(reps):
        return (float("nan"), float("nan"))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(reps, [tail, 100 - tail])
    return (float(low), float(high))


def seed_mean(values: np.ndarray, *, seed: int = 0, level: float = 0.95) -> SeedEstimate:
    """Mean over seeds of ``values[:, 0]`` with its two-level bootstrap CI (``values``: (S, R+1))."""
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    reps = seed_mean_replicates(values, seed_draws(values.shape[0], values.shape[1] - 1, rng))
    reps = reps[np.isfinite(reps)]
    return SeedEstimate(_observed(values), _interval(reps, level), None, int(len(reps)))


def seed_mean_difference(a: np.ndarray, b: np.ndarray, *, seed: int = 0, level: float = 0.95) -> SeedEstimate:
    """Difference of seed means, arm ``a`` minus arm ``b``, with two-level bootstrap CI and p-value.

    Args:
        a, b: (S_a, R+1) and (S_b, R+1) per-seed metric arrays whose column r is the *same* patient resample
            for both arms (paired); the arms may have different numbers of seeds.
        seed: seeds the seed draws (the patient resamples are the caller's).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"arms scored on different patient resamples: {a.shape[1]} vs {b.shape[1]} columns")
    rng = np.random.default_rng(seed)
    replicates = a.shape[1] - 1
    da, db = seed_draws(a.shape[0], replicates, rng), seed_draws(b.shape[0], replicates, rng)
    delta = _observed(a) - _observed(b)
    reps = seed_mean_replicates(a, da) - seed_mean_replicates(b, db)
    reps = reps[np.isfinite(reps)]
    p = None
    if len(reps) and np.isfinite(delta):
        p = float((1 + np.sum(np.abs(reps - delta) >= abs(delta))) / (len(reps) + 1))
    return SeedEstimate(delta, _interval(reps, level), p, int(len(reps)))
