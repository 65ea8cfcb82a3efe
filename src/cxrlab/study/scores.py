"""Score a study's runs with ``cxrlab.evaluate.compare``'s own machinery, then aggregate seeds into arms.

Per run: the headline metric (macro AUROC multi-label, macro-F1 multi-class) with a patient-bootstrap CI and
per-class values, exactly as ``compare_runs`` computes them (same bootstrap weights, same thresholds).
Per arm: mean and sample sd over seeds of the point values; the CI of the seed-mean metric from the same
bootstrap replicates averaged over seeds (paired, because every run is scored on the same patient resamples).
Paired tests between arms (against the reference, or every pair) use ``compare``'s ``_pairwise_tests`` on
each arm's seed-averaged probabilities and bootstrap arrays; all p-values are Holm-adjusted together.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from cxrlab.evaluate import compare as cmp
from cxrlab.evaluate import metrics as m
from cxrlab.evaluate.bootstrap import patient_weights, with_point
from cxrlab.evaluate.delong import holm_adjust
from cxrlab.evaluate.inputs import Source, load_labels
from cxrlab.evaluate.summary import est

ARRAYS = ("auroc", "macro_auroc", "f1", "macro_f1")
THREADS = 2


def _source(run_dir: Path, split: str) -> Source:
    test = run_dir / "predictions" / f"{split}.csv"
    val = run_dir / "predictions" / "val.csv"
    # thresholds are fitted on validation predictions, so a leaderboard on val has none to fit them on
    return Source(test, val if split == "test" and val.exists() else None, run_dir)


def score_runs(runs: list[dict[str, Any]], labels: str | Path, bootstrap: int, seed: int, threshold_method: str,
               split: str = "test") -> dict[str, Any]:
    """Score ``runs`` (dicts with ``name``, ``arm``, ``seed``, ``dir``); returns runs, arms, tests and meta."""
    sources = [_source(Path(r["dir"]), split) for r in runs]
    index = load_labels(labels, sources[0])
    # runs are independent: two threads (NumPy and the CSV parser release the GIL) halve the wall time on 2 cores
    with ThreadPoolExecutor(THREADS) as pool:
        models = [m for part in pool.map(lambda s: cmp._load_models([s], index, None, False, False), sources)
                  for m in part]
    for model, r in zip(models, runs):
        model.name = r["name"]
    models, notes = cmp._align(models)
    ref = models[0].scored
    weights = with_point(patient_weights(ref.n_patients, bootstrap, seed))
    keep, excluded, undefined = m.averaged_classes(ref, tuple(m.DEFAULT_EXCLUDE))
    for model in models:
        model.arrays.pop("predictions", None)
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda model: cmp._metric_arrays(model, weights, keep, threshold_method), models))
    headline = "macro_auroc" if ref.task == "multilabel" else "macro_f1"
    per_metric = "auroc" if ref.task == "multilabel" else "f1"
    run_rows = []
    for model, r in zip(models, runs):
        value, ci = est(model.arrays[headline])
        run_rows.append({"name": r["name"], "arm": r["arm"], "seed": r["seed"], "headline": value,
                         "headline_ci": ci, "macro_auroc": est(model.arrays["macro_auroc"])[0],
                         "macro_f1": est(model.arrays["macro_f1"])[0],
                         "per_class": {c: cmp._f(model.arrays[per_metric][0, i]) for i, c in enumerate(ref.classes)},
                         "thresholds": model.info.get("thresholds"), "seed_paper": cmp._seed_paper(model.scored)})
    arms = _arm_models(models, runs)
    for arm, model in arms.items():  # the seed paper's metrics, averaged over seeds, for contrast
        papers = [r["seed_paper"] for r in run_rows if r["arm"] == arm and r["seed_paper"]]
        model.info["seed_paper"] = {k: _mean_sd([p[k] for p in papers])[0] for k in papers[0]} if papers else None
    return {"task": ref.task, "headline": headline, "per_class_metric": per_metric, "classes": list(ref.classes),
            "macro_classes": [ref.classes[i] for i in keep] if ref.task == "multilabel" else list(ref.classes),
            "excluded": excluded, "undefined": undefined, "notes": notes,
            "counts": {"images": len(ref.image_ids), "patients": ref.n_patients},
            "bootstrap": {"replicates": int(bootstrap), "seed": int(seed), "unit": "patient", "level": 0.95},
            "runs": run_rows, "_arm_models": arms, "_keep": keep}


def _arm_models(models: list[cmp.Model], runs: list[dict[str, Any]]) -> dict[str, cmp.Model]:
    """One Model per arm: seed-averaged probabilities and bootstrap arrays (the same patient resamples)."""
    by_arm: dict[str, list[cmp.Model]] = {}
    for model, r in zip(models, runs):
        by_arm.setdefault(r["arm"], []).append(model)
    out = {}
    for arm, members in by_arm.items():
        scored = dataclasses.replace(members[0].scored, p=np.mean([x.scored.p for x in members], axis=0))
        arrays = {k: np.mean([x.arrays[k] for x in members], axis=0) for k in ARRAYS}
        arrays["seed_values"] = {k: [x.arrays[k][0] for x in members] for k in ARRAYS}
        out[arm] = cmp.Model(arm, members[0].source, scored, dict(members[0].info), arrays)
    return out


def arm_rows(scores: dict[str, Any]) -> list[dict[str, Any]]:
    """Per arm: seeds, mean ± sd of the headline and per class, and the CI of the seed-mean headline."""
    headline, per = scores["headline"], scores["per_class_metric"]
    rows = []
    for arm, model in scores["_arm_models"].items():
        seeds = model.arrays["seed_values"]
        mean, sd = _mean_sd(seeds[headline])
        _, ci = est(model.arrays[headline])
        per_class = {c: _mean_sd([v[i] for v in seeds[per]]) for i, c in enumerate(scores["classes"])}
        other = "macro_f1" if headline == "macro_auroc" else "macro_auroc"
        rows.append({"arm": arm, "n_seeds": len(seeds[headline]), "mean": mean, "sd": sd, "ci": ci,
                     "per_class": per_class, "seed_paper": model.info.get("seed_paper"),
                     "other_mean": _mean_sd(seeds[other])[0]})
    return rows


def _mean_sd(values: list[float]) -> list[float | None]:
    return cmp._mean_sd([None if v is None or not np.isfinite(v) else float(v) for v in values])


def arm_tests(scores: dict[str, Any], reference: str | None) -> list[dict[str, Any]]:
    """Paired tests arm vs reference (delta = arm - reference), or every pair; Holm over all of them."""
    arms, keep = scores["_arm_models"], scores["_keep"]
    if len(arms) < 2:
        return []
    if reference is not None and reference in arms:
        pairs = [[arms[a], arms[reference]] for a in arms if a != reference]
        tests = [t for pair in pairs for t in cmp._pairwise_tests(pair, keep)]
    else:
        tests = cmp._pairwise_tests(list(arms.values()), keep)
    adjusted = holm_adjust([np.nan if t["p_value"] is None else t["p_value"] for t in tests])
    for t, p in zip(tests, adjusted):
        t["p_adjusted"] = cmp._f(p)
    return tests


def public(scores: dict[str, Any]) -> dict[str, Any]:
    """The JSON-friendly part of ``scores`` (no Model objects)."""
    return {k: v for k, v in scores.items() if not k.startswith("_")}
