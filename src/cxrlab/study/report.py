"""``cxrlab study report DIR``: one report per study (HTML, Markdown, JSON) from the finished runs.

Leaderboard (mean ± sd over seeds, patient-bootstrap CI, per-class columns), paired tests against the
reference or between all pairs (Holm), measured costs, training curves on shared axes, sweeps, differences
from the reference with CIs, and the provenance needed to rerun the study from its folder alone.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from cxrlab.errors import CxrlabError
from cxrlab.evaluate import figures as efig
from cxrlab.evaluate.document import Document
from cxrlab.evaluate.formatting import fmt_ci, fmt_p, fmt_p_adjusted, fmt_value, too_few
from cxrlab.evaluate.trouble import CHANCE, below_chance, validation_collapse
from cxrlab.rundir import RunDir
from cxrlab.study import collect
from cxrlab.study import figures as sfig
from cxrlab.study.leaderboard import (
    ArmDifference,
    ArmRow,
    ExternalResult,
    Leaderboard,
    SeedTest,
    StudyResults,
)
from cxrlab.study.scores import arm_rows, arm_tests, score_runs
from cxrlab.study.spec import evaluate_options
from cxrlab.utils import atomic_write_text, available_cores, read_json, write_json

HEADLINE_NAMES = {"macro_auroc": "macro AUROC", "macro_f1": "macro F1"}


def _pm(mean: float | None, sd: float | None) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.3f} ± {sd:.3f}" if sd is not None else f"{mean:.3f}"


def _num(v: Any, fmt: str = "{:.3g}") -> str:
    return "n/a" if v is None else fmt.format(v)


def _labels(plan: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    if plan.get("data", {}).get("index"):
        return plan["data"]["index"]
    index = RunDir(Path(runs[0]["dir"])).data_path("index")  # relative to the run, never the current directory
    if index is None:
        raise CxrlabError(f"{runs[0]['dir']}/config.yaml names no data.index; give the study's data.index")
    return str(index)


def study_results(out: str | Path) -> StudyResults:
    """Score the finished runs (and ensembles) of the study in ``out``; the report's content."""
    out = Path(out)
    if not (out / "plan.json").exists():
        raise CxrlabError(f"{out} holds no study (no plan.json); run `cxrlab study run STUDY.yaml --out {out}` first")
    plan = read_json(out / "plan.json", kind=dict, required=("study", "runs", "arms", "evaluate"),
                     fix=f"rerun `cxrlab study run STUDY.yaml --out {out}` to rewrite it")
    runs = collect.finished_runs(out, plan)
    if not runs:
        raise CxrlabError(f"{out}: no run has finished yet; see `cxrlab study status {out}`")
    labels = _labels(plan, runs)
    runs += collect.build_ensembles(out, plan, runs, labels)
    ev = plan["evaluate"]
    options = evaluate_options(ev)  # the EvalOptions `cxrlab evaluate` and `compare` take, recorded as theirs
    scores = score_runs(runs, labels, options.bootstrap, options.seed, options.threshold_method, ev["split"])
    reference = plan.get("reference")
    tests = arm_tests(scores, reference if reference in scores.arms else None)
    costs = collect.arm_costs(out, runs)
    arms = [_with_plan(row, plan, costs) for row in arm_rows(scores)]
    return StudyResults(plan["study"], plan.get("description", ""), plan["budget"], reference,
                        plan.get("smoke", False), options.to_dict(), len(plan["runs"]),
                        sum(r["kind"] == "arm" for r in runs), scores.class_counts(), options.exact_below,
                        scores.board.with_arms(arms, tests), _external(plan, runs), available_cores(),
                        collect.arm_curves(runs), plan, tuple(runs))


def _with_plan(row: ArmRow, plan: dict[str, Any], costs: dict[str, Any]) -> ArmRow:
    """The row with its measured cost, sweep values, config differences and training strategy."""
    if row.kind == "seed_ensemble":  # costs what all its seeds cost (latency: one after another)
        return replace(row, cost=_summed([costs.get(row.of, {})] * row.n_seeds), swept={}, diff={},
                       strategy=f"mean of the probabilities of {row.of}'s {row.n_seeds} seeds")
    info = next((a for a in plan["arms"] if a["name"] == row.arm), None)
    if info:
        return replace(row, cost=costs.get(row.arm, {}), kind="arm", swept=info["swept"], diff=info["diff"],
                       strategy=info.get("freeze"))
    ens = next(e for e in plan["ensembles"] if e["name"] == row.arm)
    # an ensemble costs what its members cost together (latency: run one after another)
    return replace(row, cost=_summed([costs.get(m, {}) for m in ens["members"]]), kind="ensemble", swept={}, diff={},
                   strategy=f"{ens['method']} ensemble of {', '.join(ens['members'])}")


def _summed(costs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("parameters", "gflops_per_image", "train_seconds", "cpu_latency_ms_b1", "gpu_latency_ms_b1")
    out: dict[str, Any] = {k: sum(c[k] for c in costs) if all(isinstance(c.get(k), (int, float)) for c in costs)
                           else None for k in keys}
    out["device"] = "sum of members"
    return out


def _external(plan: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, ExternalResult]:
    """Per external test set: the arms' seed mean ± sd and CI on it (runs that predicted it)."""
    ev, result = plan["evaluate"], {}
    for ext in ev.get("external") or []:
        split = f"external_{ext['name']}"
        have = [r for r in runs if r["kind"] == "arm" and (Path(r["dir"]) / "predictions" / f"{split}.csv").exists()]
        if not have:
            continue
        scores = score_runs(have, ext["index"], ev["bootstrap"], ev["seed"], ev["threshold_method"], split)
        result[ext["name"]] = ExternalResult(scores.board.headline, scores.board.images, scores.board.patients,
                                             tuple(arm_rows(scores)))
    return result


def build_report(out: str | Path, announce: bool = True) -> Path:
    """Write ``DIR/report/{report.html, report.md, study_report.json, leaderboard.csv}``; returns report.html
    (``announce``: print its path; the demo, whose one report is the comparison, links it instead)."""
    out = Path(out)
    res = study_results(out)
    folder = out / "report"
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "study_report.json", res.to_dict())
    _leaderboard_csv(res.board, folder)
    doc = Document(f"cxrlab study: {res.study}")
    _summary(doc, res)
    _leaderboard(doc, res.board)
    _per_class(doc, res)
    _seed_paper(doc, res.board)
    _external_tables(doc, res)
    _tests(doc, res)
    _costs(doc, res.board, res.cores)
    _curves(doc, res)
    _sweeps(doc, res)
    _provenance(doc, res, out)
    html, _ = doc.write(folder)
    if announce:
        print(f"study report: {html.resolve()}")
    return html


def _leaderboard_csv(board: Leaderboard, folder: Path) -> None:
    import pandas as pd

    rows = [{"arm": a.arm, "kind": a.kind, "seeds": a.n_seeds, f"{board.headline}_mean": a.mean,
             f"{board.headline}_sd": a.sd, "ci_low": (a.ci or [None])[0], "ci_high": (a.ci or [None, None])[1],
             **{f"cost:{k}": v for k, v in a.cost.items()}} for a in board.arms]
    atomic_write_text(folder / "leaderboard.csv", pd.DataFrame(rows).to_csv(index=False, lineterminator="\n"))


def _summary(doc: Document, res: StudyResults) -> None:
    board = res.board
    h = HEADLINE_NAMES[board.headline]
    doc.heading("Summary")
    if res.description:
        doc.text(res.description)
    doc.warnings(_trouble(res))
    items = [
        f"{res.finished_runs} of {res.planned_runs} runs finished"
        + (" (smoke mode: 1 epoch, first seed)" if res.smoke else ""),
        f"budget: {fmt_value(res.budget)}",
        f"scored on {board.images} images ({board.patients} patients), the same for every run; "
        f"{h} averaged over {', '.join(board.macro_classes)}",
        f"mean ± sd over seeds; 95% CI of the seed-mean from a two-level bootstrap: "
        f"{board.bootstrap.replicates} patient resamples (seed {board.bootstrap.seed}), the same for every "
        "run, each with the arm's seeds resampled",
        f"differences {'from ' + res.reference if res.reference else 'between all pairs'} are differences of "
        "the seed means above (two-level bootstrap CI and p-value: patients paired, seeds resampled within each "
        f"arm), Holm-adjusted over all {len(board.tests)} tests; each seed's own paired test is shown beside them",
        "a 'seed ensemble' row is the mean of an arm's seeds' probabilities scored as one model: a different "
        "(usually stronger) model than the arm's seeds, never the arm's headline",
        *[f"note: {n}" for n in board.notes],
    ]
    doc.bullets(items)


def _trouble(res: StudyResults) -> list[str]:
    """Arms worse than chance (seed-mean AUROCs) and runs whose validation metric collapsed, in words. A class
    with fewer positive or negative patients than the stats core's minimum is not called worse than chance (its
    AUROC is too noisy), nor is a macro over thin classes only: those are named once, as thin."""
    out, board = [], res.board
    if board.per_class_metric == "auroc":
        out += _below_chance(res)
    for r in res.run_records:
        if r["kind"] == "arm":
            out += validation_collapse(Path(r["dir"]) / "metrics.csv", board.headline, f"run {r['name']}")
    return out


def _below_chance(res: StudyResults) -> list[str]:
    board, out, thin_low = res.board, [], {}
    thin_macro = bool(board.macro_classes) and all(res.thin(c) for c in board.macro_classes)
    for a in board.arms:
        called = {c: v[0] for c, v in a.per_class.items() if not res.thin(c)}
        macro = a.mean if board.headline == "macro_auroc" else None
        out += below_chance(a.arm, called, None if thin_macro else macro, {"macro": a.ci})
        low = [c for c, v in a.per_class.items() if res.thin(c) and v[0] is not None and v[0] < CHANCE]
        for c in low + (["macro AUROC"] if thin_macro and macro is not None and macro < CHANCE else []):
            thin_low.setdefault(c, []).append(a.arm)
    if thin_low:
        out.append("thin, not called: AUROC below 0.5 for " + "; ".join(
            f"{c} ({_thin_why(res, c) if c in res.class_counts else 'every class thin'}) in {', '.join(arms)}"
            for c, arms in thin_low.items()) + ": too few patients to tell a flipped label from noise")
    return out


def _thin_why(res: StudyResults, cls: str) -> str:
    """``4 positive patients``: the side of a thin class below the minimum."""
    n = res.class_counts[cls]
    kind, k = ("positive", n.n_pos_patients) if n.n_pos_patients < res.min_patients else ("negative", n.n_neg_patients)
    return f"{k} {kind} patient{'s' if k != 1 else ''}"


def _floor(board: Leaderboard) -> float:
    """The smallest p-value the two-level bootstrap resolves: 1/(B+1)."""
    return 1 / (board.bootstrap.replicates + 1)


def _leaderboard(doc: Document, board: Leaderboard) -> None:
    h = HEADLINE_NAMES[board.headline]
    other = HEADLINE_NAMES[board.other_metric]
    doc.heading("Leaderboard")
    ranked = sorted(board.arms, key=lambda a: -(a.mean if a.mean is not None else -1))
    rows = [[a.arm, a.strategy, a.n_seeds, _pm(a.mean, a.sd), fmt_ci(a.mean, a.ci), _num(a.other_mean, "{:.3f}")]
            for a in ranked]
    doc.table(["arm", "training", "seeds", f"{h} mean ± sd", f"{h} seed-mean (95% CI)", f"{other} (mean)"], rows)
    doc.figure("leaderboard", efig.comparison_figure([a.arm for a in ranked], [a.mean for a in ranked],
                                                     [a.ci for a in ranked], h), f"{h} per arm (seed mean, 95% CI)")


def _per_class(doc: Document, res: StudyResults) -> None:
    board = res.board
    metric = board.per_class_metric.upper() if board.per_class_metric == "auroc" else "F1"
    doc.heading(f"Per class ({metric}, mean ± sd over seeds)")
    rows = [[a.arm, *[_pm(*a.per_class[c]) for c in board.classes]] for a in board.arms]
    doc.table(["arm", *[f"{c} (thin)" if res.thin(c) else c for c in board.classes]], rows)
    thin = res.thin_classes()
    if thin:
        doc.text(f"(thin): fewer than {res.min_patients} positive or negative patients, the stats core's minimum: "
                 + "; ".join(f"{c}: {_thin_why(res, c)}" for c in thin)
                 + ". Their values are shown but too noisy to call: no interval, no p-value, no below-chance warning.")


def _external_tables(doc: Document, res: StudyResults) -> None:
    for name, ext in res.external.items():
        h = HEADLINE_NAMES[ext.headline]
        doc.heading(f"External test set: {name} ({ext.images} images, {ext.patients} patients)")
        doc.table(["arm", "seeds", f"{h} mean ± sd", f"{h} seed-mean (95% CI)"],
                  [[a.arm, a.n_seeds, _pm(a.mean, a.sd), fmt_ci(a.mean, a.ci)] for a in ext.arms])


def _seed_paper(doc: Document, board: Leaderboard) -> None:
    if board.task != "multilabel":
        return
    doc.heading("The seed paper's metrics beside the correct one")
    doc.text("S1 reported label-wise accuracy at 0.5 (dominated by negatives) and one AUROC over all labels "
             "flattened together (micro); macro AUROC is the correct headline for imbalanced multi-label data.")
    rows = [[a.arm, _num(a.mean, "{:.3f}"), _num((a.seed_paper or {}).get("flattened_auroc"), "{:.3f}"),
             _num((a.seed_paper or {}).get("labelwise_accuracy"), "{:.3f}")] for a in board.arms]
    doc.table(["arm", "macro AUROC (correct)", "flattened AUROC (paper)", "label-wise accuracy (paper)"], rows)


def _tests(doc: Document, res: StudyResults) -> None:
    board = res.board
    doc.heading("Paired tests and differences" + (f" from {res.reference}" if res.reference else ""))
    if not board.tests:
        doc.text("One arm only: nothing to compare.")
        return
    macro = [t for t in board.tests if t.macro]
    doc.table(["arm", "vs", "metric", "seeds", "difference of seed means (95% CI)", "p", "p (Holm)",
               "per seed: difference (p)"],
              [[t.a, t.b, t.metric, "/".join(map(str, t.n_seeds)), fmt_ci(t.delta, t.delta_ci),
                fmt_p(t.p_value, _floor(board)), fmt_p_adjusted(t.p_value, t.p_adjusted, _floor(board)),
                _per_seed_text(t.per_seed or (), board)] for t in macro])
    doc.figure("differences", efig.forest_figure(
        [f"{t.a} - {t.b} ({t.metric})" for t in macro], [t.delta for t in macro],
        [t.delta_ci for t in macro], "difference of seed means (95% CI, two-level bootstrap)", 0.0),
        "Differences between arms (ablations: each arm minus the reference)")
    per = [t for t in board.tests if not t.macro]
    doc.heading(f"Per-class differences of seed means ({board.per_class_metric}, two-level bootstrap)", 3)
    doc.table(["arm", "vs", "class", "difference (95% CI)", "p", "p (Holm)"], [_per_class_row(t, res) for t in per])
    doc.text(f"A class with fewer than {res.min_patients} positive (or negative) patients gets its difference "
             "without an interval or p-value (\"n/a\"): the stats core's minimum for an interval to hold.")


def _per_class_row(t: ArmDifference, res: StudyResults) -> list[str]:
    if res.thin(t.class_):
        n = res.class_counts[t.class_]
        why = too_few(n.n_pos_patients, n.n_neg_patients, res.min_patients)
        return [t.a, t.b, t.class_, fmt_ci(t.delta, None), why, why]
    floor = _floor(res.board)
    return [t.a, t.b, t.class_, fmt_ci(t.delta, t.delta_ci), fmt_p(t.p_value, floor),
            fmt_p_adjusted(t.p_value, t.p_adjusted, floor)]


def _per_seed_text(rows: tuple[SeedTest, ...], board: Leaderboard) -> str:
    """Each shared seed's paired difference and p-value (compare's test on that seed's two runs: floor 2/(B+1))."""
    floor = 2 / (board.bootstrap.replicates + 1)
    return "; ".join(f"s{r.seed}: {_num(r.delta, '{:+.3f}')} (p {fmt_p(r.p_value, floor)})" for r in rows) or "n/a"


def _costs(doc: Document, board: Leaderboard, cores: int | None) -> None:
    doc.heading("Cost (measured)")
    doc.text("Parameters and GFLOPs per image at the arm's input size (torch.utils.flop_counter: multiply-adds "
             "count 2); training wall time and images/s from the runs (mean over seeds); inference latency at "
             "batch 1 and throughput at batch 32 measured on this machine's CPU after training, forward pass only, "
             "one torch thread (and on the GPU when the run trained on one). The load columns are the machine's "
             "1-minute load average at the end of training and after the CPU timings: a load near or above the "
             "core count means other work shared the machine and the timings are slower than an idle machine's.")
    rows = []
    for a in board.arms:
        c = a.cost
        rows.append([a.arm, _num(c.get("parameters") and c["parameters"] / 1e6, "{:.2f}M"),
                     _num(c.get("gflops_per_image"), "{:.3g}"), _num(c.get("train_seconds"), "{:.0f}"),
                     _num(c.get("train_images_per_s"), "{:.3g}"), _num(c.get("cpu_latency_ms_b1"), "{:.1f}"),
                     _num(c.get("cpu_images_per_s_b32"), "{:.3g}"), _num(c.get("gpu_latency_ms_b1"), "{:.2f}"),
                     _num(c.get("gpu_images_per_s_b32"), "{:.3g}"), c.get("device") or "n/a",
                     _num(c.get("train_load"), "{:.2f}"), _num(c.get("cost_load"), "{:.2f}")])
    doc.table(["arm", "params", "GFLOPs/image", "train s", "train img/s", "CPU ms (b1)", "CPU img/s (b32)",
               "GPU ms (b1)", "GPU img/s (b32)", "trained on", "load (train)", "load (timings)"], rows)
    doc.text(f"Machine: {cores or '?'} CPU cores.")


def _curves(doc: Document, res: StudyResults) -> None:
    doc.heading("Training curves")
    metric = HEADLINE_NAMES[res.board.headline]
    doc.figure("curves", sfig.curves_figure(res.curves, metric),
               "Every arm on shared axes (seed mean): a train metric far above the val metric is overfitting")


def _sweeps(doc: Document, res: StudyResults) -> None:
    keys = res.plan.get("sweep") or []
    if not keys:
        return
    doc.heading("Sweeps")
    metric = HEADLINE_NAMES[res.board.headline]
    for key in keys:
        points = []
        for a in res.board.arms:
            if key in a.swept:
                rest = {k: v for k, v in a.swept.items() if k != key}
                series = ",".join([a.arm.split(",")[0]] if not a.arm.split(",")[0].count("=") else [])
                series = ",".join(filter(None, [series, *[f"{k}={v}" for k, v in rest.items()]]))
                points.append({"value": a.swept[key], "series": series, "mean": a.mean, "sd": a.sd})
        doc.figure(f"sweep_{key.replace('.', '_')}", sfig.sweep_figure(key, points, metric),
                   f"{metric} against {key} (mean ± sd over seeds)")


def _provenance(doc: Document, res: StudyResults, out: Path) -> None:
    plan = res.plan
    doc.heading("Provenance")
    first = {}
    for r in res.run_records:
        if r["kind"] == "arm":
            first.setdefault(r["arm"], r)
    versions = {(a.cost.get("cxrlab_version"), a.cost.get("git_commit")) for a in res.board.arms
                if a.cost.get("cxrlab_version")}  # ensembles' summed costs name no version
    from cxrlab.study.data import data_hashes

    hashes = data_hashes(plan.get("data") or {})
    doc.bullets([f"study file sha256: {plan['study_sha256']} (a copy: study.yaml)",
                 "code: " + ("; ".join(f"cxrlab {v} commit {c or 'n/a'}" for v, c in sorted(versions, key=str))
                             or "n/a"),
                 f"command-line --set: {' '.join(plan.get('cli_set') or []) or 'none'}"])
    doc.table(["data", "path", "sha256"],
              [[k, fmt_value(v), hashes.get(f"{k}_sha256") or hashes.get(f"{k}_meta_sha256") or "n/a"]
               for k, v in (plan.get("data") or {}).items()])
    study_yaml = out / "study.yaml"
    if study_yaml.exists():
        doc.heading("Study file", 3)
        doc.code(study_yaml.read_text(encoding="utf-8"), "yaml")
    doc.heading("Resolved configs (differences from the base; full config.yaml in each run folder)", 3)
    items = []
    for a in plan["arms"]:
        run = first.get(a["name"])
        where = f"runs/{run['name']}/config.yaml" if run else "not trained yet"
        diff = "; ".join(f"{k}: {fmt_value(v[0])} -> {fmt_value(v[1])}" for k, v in a["diff"].items())
        items.append(f"{a['name']} ({where}): {diff or 'same as base'}")
    doc.bullets(items)
