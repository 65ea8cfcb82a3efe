"""The paired tests of ``compare`` and who may be called best.

Per class: ``stats.choose.auroc_pair_test`` (patient-clustered DeLong with at least ``MIN_PATIENTS`` positive
and negative patients, the paired permutation test below). Macro AUROC and macro F1: the paired bootstrap test
of the difference (percentile-interval inversion; a Monte Carlo p-value never below 2/(B+1)). All p-values of a
comparison are Holm-adjusted together. A model is "best" only when its headline lead over every other model is
significant after Holm; otherwise the models not separated from the leader are named.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import combinations

import numpy as np

from cxrlab.evaluate import metrics as m
from cxrlab.evaluate.formatting import fmt_p  # noqa: F401  (re-exported: callers import it from here)
from cxrlab.evaluate.stats.bootstrap import bootstrap_test, percentile_ci
from cxrlab.evaluate.stats.choose import MIN_PATIENTS, auroc_pair_test
from cxrlab.evaluate.stats.comparison import ClassCounts, ComparisonTest, ModelResult
from cxrlab.evaluate.stats.multiple import holm_adjust
from cxrlab.evaluate.stats.permutation import PERMUTATIONS

SIGNIFICANT = 0.05
BOOTSTRAP_TEST = "paired bootstrap (percentile-interval inversion)"


def pairwise_tests(models: list, seed: int = 0, minimum: int = MIN_PATIENTS,
                   permutations: int = PERMUTATIONS) -> list[ComparisonTest]:
    """One test per (pair, class) and per (pair, macro metric), Holm-adjusted over all of them."""
    tests = []
    s = models[0].scored
    counts = [ClassCounts(*m.class_counts(s, i)) for i in range(len(s.classes))]
    for a, b in combinations(models, 2):
        for i, c in enumerate(s.classes):
            known = ~np.isnan(a.scored.y[:, i])
            t = auroc_pair_test(a.scored.p[known, i], b.scored.p[known, i], a.scored.y[known, i],
                                a.scored.patients[known], minimum, permutations, seed=seed + i)
            tests.append(ComparisonTest(a.name, b.name, c, "auroc", t.test, _f(t.delta), _f(t.p_value), t.p_floor,
                                        counts[i].enough(minimum), se=_f(t.se), counts=counts[i]))
        for metric in ("macro_auroc", "macro_f1"):
            d = a.arrays[metric] - b.arrays[metric]
            p, floor = bootstrap_test(d[1:])
            ci = percentile_ci(d[1:])
            tests.append(ComparisonTest(a.name, b.name, "macro", metric.removeprefix("macro_"),
                                        f"{BOOTSTRAP_TEST}, {len(d) - 1} replicates", _f(d[0]), _f(p), _f(floor),
                                        True, delta_ci=(_f(ci[0]), _f(ci[1])),
                                        n_undefined_replicates=int(np.isnan(d[1:]).sum())))
    adjusted = holm_adjust([np.nan if t.p_value is None else t.p_value for t in tests])
    return [replace(t, p_adjusted=_f(p), significant=bool(t.enough_patients and _f(p) is not None
                                                          and p < SIGNIFICANT))
            for t, p in zip(tests, adjusted, strict=True)]


def best_model(rows: list[ModelResult], tests: list[ComparisonTest], headline: str) -> tuple[str | None, list[str]]:
    """(best, not_separated): the leader by ``headline`` is best only when its paired test against every other
    model is significant after Holm and in its favour; otherwise best is None and ``not_separated`` lists the
    leader and every model its lead over is not significant."""
    finite = [r.headline.value if r.headline.value is not None else -np.inf for r in rows]
    if not rows or not np.isfinite(max(finite)):
        return None, []
    leader = rows[int(np.argmax(finite))].name
    metric = headline.removeprefix("macro_")
    tied = []
    for r in rows:
        if r.name == leader:
            continue
        t = next(t for t in tests if t.is_macro and t.metric == metric and t.pair() == {leader, r.name})
        favours = (t.delta or 0) > 0 if t.a == leader else (t.delta or 0) < 0
        if not (t.significant and favours):
            tied.append(r.name)
    return (leader, []) if not tied else (None, [leader, *tied])


def _f(x) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)
