"""``compare_runs``: several models on the same images, with paired tests.

Per class: the paired AUROC test of ``cxrlab.evaluate.pairwise`` (patient-clustered DeLong, Obuchowski 1997,
with enough positive and negative patients; the paired permutation test below the minimum). Macro AUROC and
(macro) F1: paired bootstrap test of the difference, both models scored on the same patient resamples (patient
bootstrap stratified by each patient's rarest positive class). Classes with fewer positive or negative
patients than the minimum are flagged (no interval, no star; ``evaluate`` also reports the macro without them).
All p-values of one comparison are
Holm-adjusted together; a model is called best only when its lead over every other model is significant.
Runs that are seeds of one recipe are also aggregated as mean and standard deviation: run directories whose
resolved ``config.yaml`` files differ in ``train.seed`` alone (``name`` and ``source`` are labels, not settings:
ignored, as in a study's config diff). A predictions file without its run's config.yaml is never grouped:
nothing proves it differs only by seed.
"""

from __future__ import annotations

from pathlib import Path

from cxrlab.errors import CxrlabError
from cxrlab.evaluate import metrics as m
from cxrlab.evaluate.evaluate import check_out, fmt_ci, make_out_dir
from cxrlab.evaluate.inputs import load_labels, refuse_duplicates, resolve_source
from cxrlab.evaluate.options import EvalOptions
from cxrlab.evaluate.pairwise import best_model, pairwise_tests
from cxrlab.evaluate.scoring import (
    Model,
    align_models,
    finite_or_none,
    load_models,
    mean_sd,
    score_model,
    seed_paper,
    uncertainty_info,
)
from cxrlab.evaluate.stats.bootstrap import undefined_replicates
from cxrlab.evaluate.subgroups import model_subgroups, parse_age_bands
from cxrlab.evaluate.summary import est
from cxrlab.utils import atomic_write_text, write_json


def compare_runs(
    inputs: list[str | Path],
    labels: str | Path | None = None,
    out: str | Path | None = None,
    options: EvalOptions | None = None,
    report: bool = True,
    appendix: list[tuple[str, str]] | None = None,
    **option_overrides,
) -> dict:
    """Compare run directories or predictions files scored on the same images (``options``: ``EvalOptions``,
    or its fields by keyword; ``by``: one subgroup table per model, see ``cxrlab.evaluate.subgroups``;
    ``appendix``: (text, href) links the report ends with).

    Writes ``out/comparison.json``, ``out/comparison.csv``, ``out/report.md`` and ``out/report.html``.
    Returns the comparison dictionary.
    """
    opts = EvalOptions.of(options, **option_overrides)
    bootstrap, seed, exclude, threshold_method = opts.bootstrap, opts.seed, opts.exclude, opts.threshold_method
    if len(inputs) < 2:
        raise CxrlabError("compare needs at least two run directories or predictions files")
    check_out(out)
    sources = [resolve_source(x) for x in inputs]
    refuse_duplicates([Path(s.test) for s in sources], "compare")
    index = load_labels(labels, sources[0])
    models = load_models(sources, index, opts)
    models, notes = align_models(models)
    for model in models:
        uncertainty_info(model)
    ref = models[0].scored
    weights = m.bootstrap_weights(ref, bootstrap, seed)
    keep, excluded, undefined = m.averaged_classes(ref, tuple(exclude))
    # one macro everywhere (training's, evaluate's, the study's); thin classes are flagged, not dropped
    flagged = m.headline_classes(ref, keep, opts.exact_below)[1] if ref.task == "multilabel" else []
    for model in models:
        score_model(model, weights, keep, threshold_method)
    tests = pairwise_tests(models, seed, minimum=opts.exact_below)
    if 2 * len(tests) / (bootstrap + 1) >= 0.05:  # the smallest bootstrap p, Holm-adjusted, is at least this
        notes.append(f"with {bootstrap} bootstrap replicates no macro difference can be significant after Holm over "
                     f"{len(tests)} tests; use --bootstrap {40 * len(tests)} or more")
    result = _assemble(models, tests, keep, excluded, undefined, notes, bootstrap, seed)
    result["flagged"] = flagged
    result["min_patients"] = opts.exact_below
    result["options"] = opts.to_dict()
    result["dataset_format"] = index.meta.get("format")  # the report shows NIH's published anchors only on NIH
    if opts.by:
        result["subgroups"] = model_subgroups(models, index, list(opts.by), weights, exclude=tuple(exclude),
                                              method=threshold_method, age_bands=parse_age_bands(opts.age_bands),
                                              min_group=opts.min_group)
    if out is not None:
        write_comparison(result, models, Path(out), report, appendix)
    return result


def _assemble(models, tests, keep, excluded, undefined, notes, bootstrap, seed) -> dict:
    ref = models[0].scored
    headline = "macro_auroc" if ref.task == "multilabel" else "macro_f1"
    rows = []
    for model in models:
        value, ci = est(model.arrays[headline])
        f1, f1_ci = est(model.arrays["macro_f1"])
        auc, auc_ci = est(model.arrays["macro_auroc"])
        per = model.arrays["auroc"] if ref.task == "multilabel" else model.arrays["f1"]
        rows.append({"name": model.name, **model.info, "headline": value, "headline_ci": ci,
                     "headline_undefined_replicates": undefined_replicates(model.arrays[headline][1:]),
                     "macro_auroc": auc, "macro_auroc_ci": auc_ci, "macro_f1": f1, "macro_f1_ci": f1_ci,
                     "per_class": {c: finite_or_none(per[0, i]) for i, c in enumerate(ref.classes)},
                     "seed_paper": seed_paper(model.scored), "predictions": str(model.source.test)})
    best, not_separated = best_model(rows, tests, headline)
    return {
        "schema": "cxrlab.comparison/1",
        "task": ref.task,
        "headline": headline,
        "per_class_metric": "auroc" if ref.task == "multilabel" else "f1",
        "classes": list(ref.classes),
        "macro_classes": [ref.classes[i] for i in keep] if ref.task == "multilabel" else list(ref.classes),
        "excluded": excluded,
        "undefined": undefined,
        "counts": {"images": len(ref.image_ids), "patients": ref.n_patients},
        "bootstrap": {"replicates": int(bootstrap), "seed": int(seed), "unit": "patient", "level": 0.95},
        "best": best,
        "not_separated": not_separated,
        "class_counts": {c: dict(zip(("n_pos_images", "n_pos_patients", "n_neg_patients"), m.class_counts(ref, i)))
                         for i, c in enumerate(ref.classes)},
        "models": rows,
        "groups": _groups(rows),
        "tests": tests,
        "adjustment": "holm",
        "notes": notes,
    }


def _groups(rows: list[dict]) -> list[dict]:
    """Seeds of one recipe (``seed_group``: resolved configs equal but for the seed) aggregated: mean and sample
    sd of the headline metric."""
    by_config: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("seed_group"):
            by_config.setdefault(r["seed_group"], []).append(r)
    out = []
    for key, members in by_config.items():
        if len(members) < 2:
            continue
        name = str(members[0]["model"]) + (f" ({members[0]['recipe']})" if members[0].get("recipe") else "")
        mean, sd = mean_sd([r["headline"] for r in members])
        per = {c: mean_sd([r["per_class"][c] for r in members]) for c in members[0]["per_class"]}
        out.append({"model": name, "runs": [r["name"] for r in members], "n": len(members), "config": key,
                    "rule": "resolved config.yaml equal except train.seed", "headline_mean": mean,
                    "headline_sd": sd, "per_class": per})
    return out


def write_comparison(result: dict, models: list[Model], out: Path, report: bool = True,
                     appendix: list[tuple[str, str]] | None = None) -> None:
    """``comparison.json``, ``comparison.csv`` and the reports."""
    import pandas as pd

    make_out_dir(out)
    write_json(out / "comparison.json", result)
    table = pd.DataFrame([{k: v for k, v in r.items() if k not in ("per_class", "headline_ci", "macro_auroc_ci",
                                                                     "macro_f1_ci", "seed_paper")}
                          | {f"{result['headline']}_ci_low": (r["headline_ci"] or [None])[0],
                             f"{result['headline']}_ci_high": (r["headline_ci"] or [None, None])[1]}
                          | {f"{result['per_class_metric']}:{c}": v for c, v in r["per_class"].items()}
                          for r in result["models"]])
    atomic_write_text(out / "comparison.csv", table.to_csv(index=False, lineterminator="\n"))
    atomic_write_text(out / "tests.csv", pd.DataFrame(result["tests"]).to_csv(index=False, lineterminator="\n"))
    if report:
        from cxrlab.evaluate.compare_report import write_comparison_report

        write_comparison_report(result, models, out, appendix)


def summary_lines(result: dict) -> list[str]:
    """What ``cxrlab compare`` tells a user about ``result``: each model's headline with its CI, and the notes."""
    name = "macro AUROC" if result["headline"] == "macro_auroc" else "macro F1"
    lines = [f"compared {len(result['models'])} models on {result['counts']['images']} images "
             f"({result['counts']['patients']} patients)"]
    for r in result["models"]:
        mark = "  <- best (lead significant after Holm)" if r["name"] == result["best"] else ""
        lines.append(f"  {r['name']}: {name} {fmt_ci(r['headline'], r['headline_ci'])}{mark}")
    if result["not_separated"]:
        lines.append(f"no best model: {', '.join(result['not_separated'])} are not separated by {name} "
                     "(paired bootstrap, Holm-adjusted p >= 0.05)")
    if result.get("flagged"):
        lines.append(f"thin classes, no interval or star (fewer than {result['min_patients']} positive or negative "
                     "patients): " + ", ".join(result["flagged"]))
    return lines + [f"note: {note}" for note in result["notes"]]
