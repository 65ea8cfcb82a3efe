"""Benchmark (statistical): calibration of the study's two-level bootstrap of a difference of seed means.

    .venv/bin/python benchmarks/bench_seed_bootstrap.py [--quick] [--sims 1000]

Simulates studies of two arms scored on the same patients: per-patient values = arm effect + seed effect
(sd ``tau``) + patient effect (shared by every run) + arm x patient effect (sd ``gamma``, shared by the arm's
seeds) + seed x patient noise (sd ``sigma``); a run's metric is its patient mean, the estimand the arms'
difference. For each regime it measures, over ``--sims`` simulated studies, the coverage of the 95% CI and the
rejection rate at 0.05 under no difference, for ``cxrlab.evaluate.stats.seeds.seed_mean_difference`` (patients
paired, seeds resampled) and, for contrast, for a patient-only bootstrap of the same seed-mean difference
(seeds held fixed: ignores seed-to-seed variance). Writes ``benchmarks/results/seed_bootstrap.json``.
Pure NumPy on one thread; the regimes run one after another (interleaving is irrelevant: nothing is timed).
"""

from __future__ import annotations

import argparse

import numpy as np
from results_io import Figure, write_results

from cxrlab.evaluate.stats.bootstrap import patient_weights, with_point
from cxrlab.evaluate.stats.seeds import seed_mean_difference

# name: (seeds per arm, tau: seed sd, sigma: seed x patient sd, gamma: arm x patient sd)
REGIMES = {
    "balanced_5_seeds": (5, 0.01, 0.05, 0.1),
    "interaction_dominated_5_seeds": (5, 0.005, 0.2, 0.05),
    "seed_dominated_3_seeds": (3, 0.02, 0.02, 0.05),
    "seed_dominated_10_seeds": (10, 0.02, 0.02, 0.05),
}


def _arm(rng, mu, shared, seeds, tau, sigma, gamma):
    per_arm = rng.normal(0, gamma, len(shared))
    return mu + rng.normal(0, tau, (seeds, 1)) + shared + per_arm + rng.normal(0, sigma, (seeds, len(shared)))


def _patient_only(a: np.ndarray, b: np.ndarray, delta: float) -> tuple[bool, bool]:
    """(CI covers ``delta``, p < 0.05 for H0: 0) from patient resamples alone (seeds fixed)."""
    reps = a[:, 1:].mean(0) - b[:, 1:].mean(0)
    observed = a[:, 0].mean() - b[:, 0].mean()
    lo, hi = np.percentile(reps, [2.5, 97.5])
    p = (1 + np.sum(np.abs(reps - observed) >= abs(observed))) / (len(reps) + 1)
    return bool(lo <= delta <= hi), bool(p < 0.05)


def simulate(regime: tuple, delta: float, sims: int, patients: int, reps: int, seed: int) -> dict[str, float]:
    seeds, tau, sigma, gamma = regime
    rng = np.random.default_rng(seed)
    hits = {"two_level_cover": 0, "two_level_reject": 0, "patient_only_cover": 0, "patient_only_reject": 0}
    for i in range(sims):
        shared = rng.normal(0, 0.3, patients)
        xa = _arm(rng, delta, shared, seeds, tau, sigma, gamma)
        xb = _arm(rng, 0.0, shared, seeds, tau, sigma, gamma)
        w = with_point(patient_weights(patients, reps, seed=int(rng.integers(1 << 30))))
        a, b = xa @ w.T / w.sum(1), xb @ w.T / w.sum(1)  # (S, R+1) per-seed metric on each patient resample
        res = seed_mean_difference(a, b, seed=i)
        hits["two_level_cover"] += res.ci[0] <= delta <= res.ci[1]
        hits["two_level_reject"] += res.p_value < 0.05
        cover, reject = _patient_only(a, b, delta)
        hits["patient_only_cover"] += cover
        hits["patient_only_reject"] += reject
    return {k: v / sims for k, v in hits.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few simulations (seconds), results/quick/")
    parser.add_argument("--sims", type=int, default=1000)
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--replicates", type=int, default=500)
    args = parser.parse_args()
    sims, patients, reps = (60, 60, 100) if args.quick else (args.sims, args.patients, args.replicates)
    figures = {}
    for k, (name, regime) in enumerate(REGIMES.items()):
        effect = simulate(regime, 0.01, sims, patients, reps, seed=2 * k)
        null = simulate(regime, 0.0, sims, patients, reps, seed=2 * k + 1)
        for method in ("two_level", "patient_only"):
            figures[f"{name}_{method}_coverage"] = Figure.of(
                [effect[f"{method}_cover"]], unit="fraction", note=f"95% CI covers the true difference ({sims} sims)")
            figures[f"{name}_{method}_null_rejection"] = Figure.of(
                [null[f"{method}_reject"]], unit="fraction", note=f"p < 0.05 with no difference ({sims} sims)")
        print(name, {k: round(v, 3) for k, v in effect.items() if k.endswith("cover")},
              {k: round(v, 3) for k, v in null.items() if k.endswith("reject")}, flush=True)
    write_results("seed_bootstrap", inputs={"sims": sims, "patients": patients, "replicates": reps,
                                            "regimes": {k: dict(zip(("seeds", "tau", "sigma", "gamma"), v))
                                                        for k, v in REGIMES.items()}},
                  figures=figures, quick=args.quick)


if __name__ == "__main__":
    main()
