"""Null data for the calibration checks (tests/evaluate/test_stats_calibration.py, benchmarks/bench_calibration.py).

Patients are wholly positive or wholly negative for a class and hold ``images`` images each. A score is
``separation * y + patient effect + image noise`` with patient-effect variance ``PATIENT_VAR`` and image-noise
variance 1, so images of one patient are correlated. ``correlated`` models share the patient effect and 70% of
the image-noise variance; independent ones draw their own. Both models have the same distribution, hence the
same true AUROC, Phi(separation / sqrt(2 (PATIENT_VAR + 1))) (positive and negative images never share a
patient).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from cxrlab.evaluate.stats.bootstrap import (
    bca_ci,
    bootstrap_test,
    fixed_macro,
    jackknife_weights,
    patient_strata,
    percentile_ci,
    stratified_weights,
    undefined_replicates,
    with_point,
)
from cxrlab.evaluate.stats.choose import auroc_pair_test
from cxrlab.evaluate.stats.ranking import auc_ap

PATIENT_VAR = 0.5
SHARED = 0.7


@dataclass(frozen=True)
class Design:
    """One simulation cell."""

    pos_patients: int
    neg_patients: int
    images: int
    correlated: bool
    separation: float = 1.0

    @property
    def true_auc(self) -> float:
        return float(norm.cdf(self.separation / np.sqrt(2 * (PATIENT_VAR + 1))))


def null_pair(design: Design, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(scores_a, scores_b, y, patients), each (N,), for two models of equal true AUROC."""
    n_pat = design.pos_patients + design.neg_patients
    patients = np.repeat(np.arange(n_pat), design.images)
    y = (patients < design.pos_patients).astype(np.int8)
    n = len(patients)
    u = rng.normal(0, np.sqrt(PATIENT_VAR), (2, n_pat))
    e = rng.normal(0, 1, (3, n))
    if design.correlated:
        u[1] = u[0]
        e[0] = np.sqrt(SHARED) * e[2] + np.sqrt(1 - SHARED) * e[0]
        e[1] = np.sqrt(SHARED) * e[2] + np.sqrt(1 - SHARED) * e[1]
    a = design.separation * y + u[0, patients] + e[0]
    b = design.separation * y + u[1, patients] + e[1]
    return a, b, y, patients


def null_multilabel(designs: list[Design], rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(scores_a (N, C), scores_b (N, C), y (N, C), patients (N,)) for two models of equal true AUROC on C
    classes of the same patients and images: class c has ``designs[c].pos_patients`` positive patients drawn at
    random (every design must have the same total patients and images)."""
    n_pat, images = designs[0].pos_patients + designs[0].neg_patients, designs[0].images
    patients = np.repeat(np.arange(n_pat), images)
    cols = []
    for d in designs:
        order = rng.permutation(n_pat)  # class c's positive patients: a random subset of the same patients
        a, b, y, _ = null_pair(d, rng)
        cols.append((a.reshape(n_pat, images)[order].ravel(), b.reshape(n_pat, images)[order].ravel(),
                     y.reshape(n_pat, images)[order].ravel()))
    a, b, y = (np.column_stack([c[i] for c in cols]) for i in range(3))
    return a, b, y.astype(np.float64), patients


def rejection_rate(design: Design, trials: int, seed: int, permutations: int, minimum: int) -> tuple[float, str]:
    """Fraction of ``trials`` null data sets in which the test ``choose`` picks rejects at 5%, and its name."""
    rng = np.random.default_rng(seed)
    rejected, name = 0, ""
    for t in range(trials):
        a, b, y, patients = null_pair(design, rng)
        res = auroc_pair_test(a, b, y, patients, minimum, permutations, seed=seed + t)
        rejected += res.p_value <= 0.05
        name = res.test
    return rejected / trials, name


def coverage(design: Design, trials: int, replicates: int, seed: int, jackknife: int = 0) -> dict[str, float]:
    """Coverage of the true AUROC by the stratified patient-bootstrap percentile interval (and the BCa one when
    ``jackknife`` > 0 groups) over ``trials`` null data sets."""
    rng = np.random.default_rng(seed)
    hits = {"percentile": 0, "bca": 0}
    n_pat = design.pos_patients + design.neg_patients
    strata = (np.arange(n_pat) >= design.pos_patients).astype(int)
    for t in range(trials):
        a, _, y, patients = null_pair(design, rng)
        w = with_point(stratified_weights(strata, replicates, seed + t))
        if jackknife:
            w = np.vstack([w, jackknife_weights(n_pat, jackknife, seed + t)])
        auc = auc_ap(a, y, patients, w)[0]
        reps = auc[1 : replicates + 1]
        low, high = percentile_ci(reps)
        hits["percentile"] += low <= design.true_auc <= high
        if jackknife:
            low, high = bca_ci(auc[0], reps, auc[replicates + 1 :])
            hits["bca"] += low <= design.true_auc <= high
    return {k: v / trials for k, v in hits.items() if jackknife or k == "percentile"}


def macro_check(designs: list[Design], trials: int, replicates: int, seed: int) -> dict[str, float]:
    """The macro AUROC over ``designs``' classes: coverage of model a's percentile interval, the rejection rate
    of the paired bootstrap test of macro(a) - macro(b), and the replicates with an undefined class."""
    rng = np.random.default_rng(seed)
    truth = float(np.mean([d.true_auc for d in designs]))
    covered = rejected = undefined = 0
    for t in range(trials):
        a, b, y, patients = null_multilabel(designs, rng)
        n_pat = int(patients.max()) + 1
        w = with_point(stratified_weights(patient_strata(y, patients, n_pat), replicates, seed + t))
        ma = fixed_macro(np.column_stack([auc_ap(a[:, c], y[:, c], patients, w)[0] for c in range(y.shape[1])]))
        mb = fixed_macro(np.column_stack([auc_ap(b[:, c], y[:, c], patients, w)[0] for c in range(y.shape[1])]))
        low, high = percentile_ci(ma[1:])
        covered += low <= truth <= high
        rejected += bootstrap_test(ma[1:] - mb[1:])[0] <= 0.05
        undefined += undefined_replicates(ma[1:])
    return {"coverage": covered / trials, "rejection": rejected / trials, "undefined_replicates": undefined}
