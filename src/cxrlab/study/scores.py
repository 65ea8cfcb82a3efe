"""Score a study's runs with ``cxrlab.evaluate.compare``'s own machinery, then aggregate seeds into arms.

Per run: the headline metric (macro AUROC multi-label, macro-F1 multi-class) with a patient-bootstrap CI and
per-class values, exactly as ``compare_runs`` computes them (same bootstrap weights, same thresholds).
Per arm: mean and sample sd over seeds of the point values, and the CI of that seed mean from the two-level
bootstrap of ``cxrlab.evaluate.stats.seeds`` (the runs' shared patient resamples x the arm's seeds resampled).
Differences between arms (against the reference, or every pair) are differences of seed means, exactly the
leaderboard's means subtracted, with a two-level bootstrap CI and p-value (patients paired across arms, seeds
resampled within each arm); beside each macro difference, the paired bootstrap test of every seed both arms
share (``compare``'s test on that seed's two runs). All p-values are Holm-adjusted together. A training arm
with several seeds also gets a *seed ensemble* row (mean of its seeds' probabilities, scored as one model): a
different, stronger model than any one seed, so never the arm's headline.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from cxrlab.evaluate import metrics as m
from cxrlab.evaluate.inputs import Source, load_labels
from cxrlab.evaluate.matching import Scored
from cxrlab.evaluate.scoring import (
    Model,
    align_models,
    finite_or_none,
    load_models,
    mean_sd,
    score_model,
    seed_paper,
)
from cxrlab.evaluate.stats.bootstrap import bootstrap_test
from cxrlab.evaluate.stats.multiple import holm_adjust
from cxrlab.evaluate.stats.seeds import SeedEstimate, seed_mean, seed_mean_difference
from cxrlab.evaluate.summary import est
from cxrlab.study.leaderboard import (
    ArmDifference,
    ArmRow,
    Bootstrap,
    ClassCounts,
    Interval,
    Leaderboard,
    RunScore,
    SeedTest,
)

THREADS = 2
TWO_LEVEL = "two-level bootstrap (patients paired, seeds resampled)"


@dataclass
class Arm:
    """One arm's runs (one per seed), each a ``compare`` Model with metric arrays on the shared resamples."""

    name: str
    seeds: list[int]
    members: list[Model]
    trained: bool  # a training arm (not a study ensemble)
    seed_paper: dict | None = None

    def stack(self, key: str, column: int | None = None) -> np.ndarray:
        """(S, R+1) metric arrays of every seed (``column``: one class of a per-class metric)."""
        return np.stack([m.arrays[key] if column is None else m.arrays[key][:, column] for m in self.members])


def _source(run_dir: Path, split: str) -> Source:
    test = run_dir / "predictions" / f"{split}.csv"
    val = run_dir / "predictions" / "val.csv"
    # thresholds are fitted on validation predictions, so a leaderboard on val has none to fit them on
    return Source(test, val if split == "test" and val.exists() else None, run_dir)


@dataclass
class StudyScores:
    """``score_runs``' result: the leaderboard's scoring part (runs, classes, bootstrap; no arms yet) and the
    scored models the arm rows and differences are computed from."""

    board: Leaderboard
    arms: dict[str, Arm]
    seed_ensembles: dict[str, Model]
    reference: Scored  # the first run's scored test split (labels, patients: the same for every run)

    def class_counts(self) -> dict[str, ClassCounts]:
        """Positive images and positive / negative patients of every class on the scored split."""
        return {c: ClassCounts(*m.class_counts(self.reference, i)) for i, c in enumerate(self.reference.classes)}


def score_runs(runs: list[dict[str, Any]], labels: str | Path, bootstrap: int, seed: int, threshold_method: str,
               split: str = "test") -> StudyScores:
    """Score ``runs`` (dicts with ``name``, ``arm``, ``seed``, ``dir``): runs, classes and bootstrap, and the arms."""
    sources = [_source(Path(r["dir"]), split) for r in runs]
    index = load_labels(labels, sources[0])
    # runs are independent: two threads (NumPy and the CSV parser release the GIL) halve the wall time on 2 cores
    with ThreadPoolExecutor(THREADS) as pool:
        models = [m for part in pool.map(lambda s: load_models([s], index), sources)
                  for m in part]
    for model, r in zip(models, runs):
        model.name = r["name"]
    models, notes = align_models(models)
    ref = models[0].scored
    weights = m.bootstrap_weights(ref, bootstrap, seed)  # compare's stratified patient draws: the same numbers
    keep, excluded, undefined = m.averaged_classes(ref, tuple(m.DEFAULT_EXCLUDE))
    for model in models:
        model.arrays.pop("predictions", None)
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda model: score_model(model, weights, keep, threshold_method), models))
    headline = "macro_auroc" if ref.task == "multilabel" else "macro_f1"
    per_metric = "auroc" if ref.task == "multilabel" else "f1"
    run_rows = [_run_score(model, r, headline, per_metric) for model, r in zip(models, runs)]
    arms = _arms(models, runs)
    for arm in arms.values():  # the seed paper's metrics, averaged over seeds, for contrast
        papers = [r.seed_paper for r in run_rows if r.arm == arm.name and r.seed_paper]
        arm.seed_paper = {k: _mean_sd([p[k] for p in papers])[0] for k in papers[0]} if papers else None
    ensembles = {a.name: _seed_ensemble(a, weights, keep, threshold_method) for a in arms.values()
                 if a.trained and len(a.members) > 1}
    board = Leaderboard(ref.task, headline, per_metric, tuple(ref.classes),
                        tuple(ref.classes[i] for i in keep) if ref.task == "multilabel" else tuple(ref.classes),
                        tuple(excluded), tuple(undefined), tuple(notes), len(ref.image_ids), ref.n_patients,
                        Bootstrap(int(bootstrap), int(seed)), tuple(run_rows))
    return StudyScores(board, arms, ensembles, ref)


def _run_score(model: Model, r: dict[str, Any], headline: str, per_metric: str) -> RunScore:
    value, ci = est(model.arrays[headline])
    return RunScore(r["name"], r["arm"], r["seed"], value, _interval(ci), est(model.arrays["macro_auroc"])[0],
                    est(model.arrays["macro_f1"])[0],
                    {c: finite_or_none(model.arrays[per_metric][0, i]) for i, c in enumerate(model.scored.classes)},
                    model.info.get("thresholds"), seed_paper(model.scored))


def _arms(models: list[Model], runs: list[dict[str, Any]]) -> dict[str, Arm]:
    out: dict[str, Arm] = {}
    for model, r in zip(models, runs):
        arm = out.setdefault(r["arm"], Arm(r["arm"], [], [], r.get("kind", "arm") == "arm"))
        arm.seeds.append(r["seed"])
        arm.members.append(model)
    return out


def _seed_ensemble(arm: Arm, weights: np.ndarray, keep: list[int], method: str) -> Model:
    """The mean of the arm's seeds' probabilities, scored as one model (thresholds on its mean val output)."""
    first = arm.members[0]
    scored = dataclasses.replace(first.scored, p=np.mean([m.scored.p for m in arm.members], axis=0))
    model = Model(f"{arm.name} (seed ensemble)", first.source, scored, {})
    vals = [m.arrays.get("val") for m in arm.members]
    if all(v is not None and v.image_ids == vals[0].image_ids and v.classes == vals[0].classes for v in vals):
        model.arrays["val"] = dataclasses.replace(vals[0], p=np.mean([v.p for v in vals], axis=0))
    score_model(model, weights, keep, method)
    return model


def _ci(e: SeedEstimate) -> Interval:
    return finite_or_none(e.ci[0]), finite_or_none(e.ci[1])


def _interval(ci: list | None) -> Interval | None:
    return None if ci is None else (ci[0], ci[1])


def arm_rows(scores: StudyScores) -> list[ArmRow]:
    """Per arm: seeds, mean ± sd of the headline and per class, and the two-level CI of the seed-mean headline;
    then one row per seed ensemble (its own model: point value and patient-bootstrap CI, no sd)."""
    board = scores.board
    headline, per, other, seed = board.headline, board.per_class_metric, board.other_metric, board.bootstrap.seed
    rows = []
    for arm in scores.arms.values():
        values = arm.stack(headline)
        mean, sd = _mean_sd(list(values[:, 0]))
        per_class = {c: tuple(_mean_sd(list(arm.stack(per, i)[:, 0]))) for i, c in enumerate(board.classes)}
        rows.append(ArmRow(arm.name, len(arm.members), tuple(arm.seeds), mean, sd, _ci(seed_mean(values, seed=seed)),
                           TWO_LEVEL, per_class, arm.seed_paper, _mean_sd(list(arm.stack(other)[:, 0]))[0]))
    for name, model in scores.seed_ensembles.items():
        value, ci = est(model.arrays[headline])
        per_class = {c: (finite_or_none(model.arrays[per][0, i]), None) for i, c in enumerate(board.classes)}
        arm = scores.arms[name]
        rows.append(ArmRow(model.name, len(arm.members), tuple(arm.seeds), value, None, _interval(ci),
                           "patient bootstrap", per_class, seed_paper(model.scored), est(model.arrays[other])[0],
                           kind="seed_ensemble", of=name))
    return rows


def _mean_sd(values: list[float]) -> list[float | None]:
    return mean_sd([None if v is None or not np.isfinite(v) else float(v) for v in values])


def _per_seed(a: Arm, b: Arm, metric: str) -> tuple[SeedTest, ...]:
    """``compare``'s paired bootstrap test of ``metric`` on each seed both arms ran (same patient resamples)."""
    out = []
    for s in sorted(set(a.seeds) & set(b.seeds)):
        d = a.members[a.seeds.index(s)].arrays[metric] - b.members[b.seeds.index(s)].arrays[metric]
        delta, ci = est(d)
        out.append(SeedTest(s, delta, _interval(ci), finite_or_none(bootstrap_test(d[1:])[0])))
    return tuple(out)


def _difference(a: Arm, b: Arm, cls: str, metric: str, arrays: tuple[np.ndarray, np.ndarray], seed: int,
                per_seed: tuple[SeedTest, ...] | None = None) -> ArmDifference:
    e = seed_mean_difference(*arrays, seed=seed)
    return ArmDifference(a.name, b.name, cls, metric, TWO_LEVEL, finite_or_none(e.estimate), _ci(e), e.p_value,
                         (len(a.members), len(b.members)), per_seed)


def arm_tests(scores: StudyScores, reference: str | None) -> list[ArmDifference]:
    """Differences of seed means between arms (delta = a - b: the leaderboard's means subtracted) against the
    reference, or every pair: macro AUROC and macro F1 (with the per-seed paired tests beside them) and each
    class; two-level bootstrap CI and p-value; Holm over all of them."""
    arms, seed = scores.arms, scores.board.bootstrap.seed
    if len(arms) < 2:
        return []
    if reference is not None and reference in arms:
        pairs = [(arms[a], arms[reference]) for a in arms if a != reference]
    else:
        pairs = list(combinations(arms.values(), 2))
    tests = []
    for a, b in pairs:
        for metric in ("macro_auroc", "macro_f1"):
            tests.append(_difference(a, b, "macro", metric.removeprefix("macro_"), (a.stack(metric), b.stack(metric)),
                                     seed, _per_seed(a, b, metric)))
        per = scores.board.per_class_metric
        for i, c in enumerate(scores.board.classes):
            tests.append(_difference(a, b, c, per, (a.stack(per, i), b.stack(per, i)), seed))
    adjusted = holm_adjust([np.nan if t.p_value is None else t.p_value for t in tests])
    return [dataclasses.replace(t, p_adjusted=finite_or_none(p)) for t, p in zip(tests, adjusted)]
