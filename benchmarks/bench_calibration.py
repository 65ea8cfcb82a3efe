"""Calibration of the AUROC tests and intervals under the null: the larger version of the fast test
``tests/evaluate/test_stats_calibration.py``.

Two models of equal true AUROC score patients that hold 1, 2 or 4 correlated images each (shared patient
effect; models correlated or independent, see ``cxrlab.evaluate.stats.simulate``). Measured per cell:

- the rejection rate at 5% of the patient-clustered DeLong test (forced, at every size) and of the permutation
  test (forced, at small sizes): the minimum number of positive patients for DeLong (``choose.MIN_PATIENTS``)
  is the smallest size from which every DeLong cell stays at or below ``MAX_REJECTION``;
- the coverage of the 95% stratified patient-bootstrap interval of one model's AUROC, percentile and BCa;
- for a macro average over three classes (the rarest at the minimum): the coverage of its interval, the
  rejection rate of the paired bootstrap test of the macro difference, and the replicates with an undefined class.

Writes ``benchmarks/results/calibration.json`` (``--quick``: results/quick/). Run:
``OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_calibration.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from results_io import Figure, write_results

from cxrlab.evaluate.stats.choose import MIN_PATIENTS
from cxrlab.evaluate.stats.simulate import Design, coverage, macro_check, rejection_rate

MAX_REJECTION = 0.06  # nominal 5% plus about two binomial standard errors at 2,000 trials
FULL = {"trials": 2000, "perm_trials": 800, "cov_trials": 600, "macro_trials": 400, "replicates": 300,
        "delong_pos": [5, 10, 15, 20, 25, 30, 40, 50, 100, 200], "perm_pos": [5, 10, 20],
        "cov_pos": [10, 25, 50, 200], "neg": 150, "cov_neg": 100, "permutations": 199, "jackknife": 30}
QUICK = FULL | {"trials": 60, "perm_trials": 20, "cov_trials": 20, "macro_trials": 10, "replicates": 100,
                "delong_pos": [5, 30], "perm_pos": [5], "cov_pos": [25]}


def _key(kind: str, pos: int, images: int, correlated: bool | None = None) -> str:
    corr = "" if correlated is None else ("_correlated" if correlated else "_independent")
    return f"{kind}_pos{pos}_img{images}{corr}"


def run(cfg: dict, seed: int) -> tuple[dict[str, Figure], dict]:
    figures: dict[str, Figure] = {}
    delong_rates: dict[int, list[float]] = {}
    for pos in cfg["delong_pos"]:
        for images in (1, 2, 4):
            for corr in (True, False):  # interleaved: each size runs every variant before the next size
                d = Design(pos, cfg["neg"], images, corr)
                rate, _ = rejection_rate(d, cfg["trials"], seed, cfg["permutations"], minimum=0)
                delong_rates.setdefault(pos, []).append(rate)
                figures[_key("delong_rejection", pos, images, corr)] = Figure.of([rate], unit="fraction")
        print(f"DeLong, {pos} positive patients: {np.round(delong_rates[pos], 3)}", flush=True)
    for pos in cfg["perm_pos"]:
        for images in (1, 4):
            for corr in (True, False):
                d = Design(pos, cfg["neg"], images, corr)
                rate, _ = rejection_rate(d, cfg["perm_trials"], seed, cfg["permutations"], minimum=10**9)
                figures[_key("permutation_rejection", pos, images, corr)] = Figure.of([rate], unit="fraction")
        print(f"permutation, {pos} positive patients done", flush=True)
    for pos in cfg["cov_pos"]:
        for images in (1, 4):
            cov = coverage(Design(pos, cfg["cov_neg"], images, True), cfg["cov_trials"], cfg["replicates"], seed,
                           jackknife=cfg["jackknife"])
            for method, value in cov.items():
                figures[_key(f"coverage_{method}", pos, images)] = Figure.of([value], unit="fraction")
            print(f"coverage, {pos} positive patients, {images} images: {cov}", flush=True)
    n_pat = 300
    macro = macro_check([Design(p, n_pat - p, 2, True) for p in (MIN_PATIENTS, 60, 150)], cfg["macro_trials"],
                        cfg["replicates"], seed)
    figures["macro_coverage"] = Figure.of([macro["coverage"]], unit="fraction")
    figures["macro_bootstrap_test_rejection"] = Figure.of([macro["rejection"]], unit="fraction")
    figures["macro_undefined_replicates"] = Figure.of([macro["undefined_replicates"]], unit="replicates")
    print(f"macro: {macro}", flush=True)
    ok = [pos for pos in cfg["delong_pos"] if all(max(delong_rates[q]) <= MAX_REJECTION
                                                  for q in cfg["delong_pos"] if q >= pos)]
    if ok:
        figures["delong_min_positive_patients"] = Figure.of([min(ok)], unit="patients",
                                                            note=f"smallest size from which every DeLong cell <= "
                                                                 f"{MAX_REJECTION}")
    else:  # (--quick: too few trials for any size to qualify)
        print(f"no size tested has every DeLong cell <= {MAX_REJECTION}: no minimum recorded", flush=True)
    return figures, {"delong_rates": delong_rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few trials per cell (seconds)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cfg = QUICK if args.quick else FULL
    load = list(os.getloadavg())
    start = time.perf_counter()
    figures, _ = run(cfg, args.seed)
    print(f"{time.perf_counter() - start:.0f} s")
    write_results("calibration", inputs=cfg | {"seed": args.seed, "max_rejection": MAX_REJECTION,
                                               "min_patients_in_code": MIN_PATIENTS},
                  figures=figures, quick=args.quick, load_before=load,
                  notes="fractions over trials; binomial SE at 5% is 0.49% with 2,000 trials, at 95% 0.89% with 600")


if __name__ == "__main__":
    main()
