"""Calibration under the null (seeded simulation; the larger version is benchmarks/bench_calibration.py).

Clustered data with equal true AUROC for both models, across 5-200 positive patients, 1, 2 or 4 images per
patient, correlated and independent models (``cxrlab.evaluate.stats.simulate``). Every per-class test the tool
chooses (``choose.auroc_pair_test``: clustered DeLong from ``MIN_PATIENTS`` up, the permutation test below)
must reject at 5% in [3%, 7%], and every interval it reports (per-class AUROC from the minimum up, the macro
average with a rare class at the minimum) must cover in 95% +- 2.5%; the paired bootstrap test of the macro
difference must also keep its level.

Trials: 1,500 per rejection cell (binomial SE 0.56% at 5%: the band is +-3.6 SE, and a test with a true size
of 8% fails it with probability ~0.99); 400 per coverage cell (SE 1.1% at 95%, the band is +-2.3 SE). The
permutation test runs with B = 19 here (its level is at most 5% for any B with 0.05 (B + 1) an integer, exactly
5% without ties; the tool uses 2,000 for precision, not validity). With strongly correlated models many patient
swaps leave the difference unchanged, so the test is slightly conservative there (4.5% over 3,000 trials at 10
positive patients x 4 images).
"""

from __future__ import annotations

import numpy as np

from cxrlab.evaluate.stats.choose import MIN_PATIENTS
from cxrlab.evaluate.stats.simulate import Design, coverage, macro_check, rejection_rate

POSITIVE_PATIENTS = (5, 10, 20, 50, 200)
NEGATIVE_PATIENTS = 60
IMAGES = (1, 2, 4)


def test_every_chosen_test_keeps_its_level():
    bad, tests = [], set()
    for i, pos in enumerate(POSITIVE_PATIENTS):
        for images in IMAGES:
            for corr in (True, False):
                design = Design(pos, NEGATIVE_PATIENTS, images, corr)
                rate, name = rejection_rate(design, 1500, seed=100 * i + 10 * images + corr, permutations=19,
                                            minimum=MIN_PATIENTS)
                tests.add(name.split(",")[0].split(" ")[0])
                if not 0.03 <= rate <= 0.07:
                    bad.append(f"{design}: {name} rejects {rate:.3f}")
    assert not bad, "; ".join(bad)
    assert tests == {"delong", "permutation"}  # both branches of the choice were exercised


def test_every_reported_interval_covers():
    bad = []
    for pos in [p for p in POSITIVE_PATIENTS if p >= MIN_PATIENTS]:  # intervals are reported from the minimum
        for images in IMAGES:
            design = Design(pos, NEGATIVE_PATIENTS, images, True)
            cov = coverage(design, 400, 200, seed=7 * pos + images)["percentile"]
            if not 0.925 <= cov <= 0.975:
                bad.append(f"{design}: coverage {cov:.3f}")
    assert not bad, "; ".join(bad)


def test_macro_with_a_rare_class_covers_and_its_test_keeps_its_level():
    n_patients = 160
    designs = [Design(p, n_patients - p, 2, True) for p in (MIN_PATIENTS, 50, 100)]  # rarest at the minimum
    result = macro_check(designs, 400, 200, seed=3)
    assert 0.925 <= result["coverage"] <= 0.975
    assert 0.03 <= result["rejection"] <= 0.07 or result["rejection"] < 0.03 and np.isfinite(result["rejection"])
    assert result["undefined_replicates"] == 0  # stratified: the rare class is defined in every replicate
