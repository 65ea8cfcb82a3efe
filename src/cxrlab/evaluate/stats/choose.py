"""Which paired AUROC test a class gets: DeLong (Obuchowski-clustered when a patient has several images) when
the class has at least ``MIN_PATIENTS`` positive and negative patients, the permutation test below that.

``MIN_PATIENTS`` comes from the calibration simulation (``benchmarks/bench_calibration.py``, table in
docs/evaluation.md): below it the clustered DeLong test rejects a true null well above its nominal 5% (its
normal approximation fails with few positive patients), while the permutation test keeps its level at every
size. Classes below the minimum are also flagged and left out of the headline macro average, and get no
bootstrap interval (its coverage is not measured to hold there).
"""

from __future__ import annotations

import numpy as np

from cxrlab.evaluate.stats.delong import delong_test, pair_counts
from cxrlab.evaluate.stats.permutation import PERMUTATIONS, permutation_test
from cxrlab.evaluate.stats.results import PairTest

MIN_PATIENTS = 25


def enough_patients(n_pos_patients: int, n_neg_patients: int, minimum: int = MIN_PATIENTS) -> bool:
    """Whether a class has enough positive and negative patients for DeLong, the macro and an interval."""
    return n_pos_patients >= minimum and n_neg_patients >= minimum


def auroc_pair_test(scores_a: np.ndarray, scores_b: np.ndarray, y: np.ndarray, patients: np.ndarray,
                    minimum: int = MIN_PATIENTS, permutations: int = PERMUTATIONS, seed: int = 0) -> PairTest:
    """The paired AUROC test the tool uses for one class (labels known on every image given).

    Args:
        scores_a, scores_b, y: (N,) scores of the two models and 0/1 labels.
        patients: (N,) patient ids; the DeLong covariance is clustered when some patient has several images.
        minimum: fewest positive (and negative) patients for DeLong; below it, the permutation test.
        permutations, seed: Monte Carlo size and seed of the permutation test.
    """
    patients = np.asarray(patients)
    _, n_pos, n_neg = pair_counts(y, patients)
    if not enough_patients(n_pos, n_neg, minimum):
        return permutation_test(scores_a, scores_b, y, patients, permutations, seed)
    clustered = len(np.unique(patients)) < len(patients)
    return delong_test(scores_a, scores_b, y, patients if clustered else None)
