"""The comparison report: the seed paper's Table 2 done properly, plus paired tests and curves."""

from __future__ import annotations

from pathlib import Path

from cxrlab.evaluate import figures
from cxrlab.evaluate.definitions import DEFINITIONS, REFERENCE_NOTE, REFERENCES
from cxrlab.evaluate.document import Document
from cxrlab.evaluate.formatting import fmt_ci, fmt_count, fmt_number, fmt_p, fmt_p_adjusted, fmt_signed, too_few
from cxrlab.evaluate.report import collapse_warnings, definitions_section, reference_section, run_sections
from cxrlab.evaluate.stats.comparison import Comparison, ComparisonTest, ModelFacts, ModelResult
from cxrlab.evaluate.subgroups_report import subgroup_section
from cxrlab.evaluate.trouble import below_chance


def write_comparison_report(result: Comparison, models: list, out: Path,
                            appendix: list[tuple[str, str]] | None = None) -> tuple[Path, Path]:
    """Write ``out/report.html`` and ``out/report.md`` for a ``compare_runs`` result.

    ``appendix``: (text, relative href) links to companion reports (the demo's study report, per-model
    evaluations), listed at the end so one report stays the report."""
    doc = Document("cxrlab comparison")
    headline = "macro AUROC" if result.headline_metric == "macro_auroc" else "macro F1"
    doc.heading("Summary")
    doc.warnings([w for r in result.models for w in _chance(result, r)]
                 + [w for model in models for w in collapse_warnings(model.source, model.name)])
    doc.bullets([
        f"{len(result.models)} models on the same {result.n_images} images ({result.n_patients} patients); "
        + _best_line(result, headline),
        f"95% CIs from {result.replicates} patient-level bootstrap replicates, stratified by each patient's rarest "
        f"positive class (seed {result.seed}); p-values Holm-adjusted over all {len(result.tests)} tests",
        f"{headline} averaged over: {', '.join(result.macro_classes)}"
        + (f"; excluded: {', '.join(result.excluded)}" if result.excluded else "")
        + (f"; flagged, fewer than {result.min_patients} positive or negative patients (no interval, no star): "
           f"{', '.join(result.flagged)}" if result.flagged else ""),
        *[f"note: {n}" for n in result.notes],
    ])
    _model_table(doc, result, headline)
    _counts_table(doc, result)
    _groups_table(doc, result, headline)
    _seed_paper_table(doc, result)
    _tests_table(doc, result)
    doc.figure("comparison", figures.comparison_figure(
        [r.name for r in result.models], [r.headline.value for r in result.models],
        [r.headline.ci for r in result.models], headline), f"{headline} per model with 95% CI")
    macro = result.macro_tests()
    doc.figure("differences", figures.forest_figure(
        [f"{t.a} - {t.b} ({t.metric})" for t in macro], [t.delta for t in macro],
        [t.delta_ci for t in macro], "paired difference (95% CI, patient bootstrap)", 0.0),
        "Paired differences of the macro metrics")
    _per_model(doc, result, models)
    reference_section(doc, {"note": REFERENCE_NOTE, "anchors": REFERENCES}, result.dataset_format)
    definitions_section(doc, DEFINITIONS)
    if appendix:
        doc.heading("Appendix")
        for text, href in appendix:
            doc.link(text, href)
    return doc.write(out)


def _per_model(doc: Document, result: Comparison, models: list) -> None:
    """Each model's curves, training facts (a collapse in words), split audit and subgroups, nested under it."""
    doc.heading("Per model")
    for model in models:
        doc.heading(f"Model: {model.name}", 3)
        doc.figure(f"roc_{_slug(model.name)}", figures.roc_figure(model.scored, list(result.macro_classes)),
                   f"ROC curves, {model.name}")
        doc.figure(f"reliability_{_slug(model.name)}", figures.reliability_figure(model.scored),
                   f"Reliability diagram, {model.name}")
        run_sections(doc, model.source, level=4, fig=f"training_{_slug(model.name)}")
        subgroup_section(doc, (result.subgroups or {}).get(model.name), model.name, level=4)


def _chance(result: Comparison, row: ModelResult) -> list[str]:
    """Below-chance AUROCs with their intervals; thin classes (flagged) get a note, not a warning."""
    if result.per_class_metric != "auroc":
        return []
    cis = dict(row.per_class_ci) | {"macro": row.headline.ci}
    return below_chance(row.name, row.per_class, row.headline.value, cis, thin=result.flagged)


def _best_line(result: Comparison, headline: str) -> str:
    if result.best:
        return f"best by {headline}: {result.best} (its lead over every other model is significant after Holm)"
    if result.not_separated:
        return (f"no best model: {', '.join(result.not_separated)} are not separated by {headline} "
                "(Holm-adjusted p >= 0.05)")
    return "no model has a defined headline"


def _counts_table(doc: Document, result: Comparison) -> None:
    if not result.class_counts:
        return
    doc.table(["class", "positive images", "positive patients", "negative patients", "per-class test"],
              [[c, v.n_pos_images, v.n_pos_patients, v.n_neg_patients,
                "permutation (flagged: no star)" if c in result.flagged else "DeLong"]
               for c, v in result.class_counts.items()])
    doc.text(f"Each AUROC rests on its positive patients: classes with fewer than {result.min_patients} positive "
             "(or negative) patients are tested by the paired permutation test and get no significance star; they "
             "stay in the macro average (the one definition training selects on).")


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def _model_table(doc: Document, result: Comparison, headline: str) -> None:
    doc.heading("Models")
    per = "AUROC" if result.per_class_metric == "auroc" else "F1"
    aurc = any(r.facts.aurc is not None for r in result.models)  # a column only when some model has it
    headers = ["model", "params", "train s", "images/s", f"{headline} [95% CI]", "macro F1",
               *(["AURC"] if aurc else []), *result.classes]
    rows = []
    for r in result.models:
        f = r.facts
        name = r.name + (" (best)" if r.name == result.best else "")
        rows.append([name, fmt_count(f.params), fmt_number(f.train_seconds), fmt_number(f.images_per_s),
                     fmt_ci(r.headline.value, r.headline.ci), r.macro_f1.value,
                     *([_aurc(f)] if aurc else []), *[r.per_class[c] for c in result.classes]])
    doc.table(headers, rows)
    if aurc:
        doc.text("AURC: area under the risk-coverage curve from the model's uncertainty columns (score in brackets; "
                 "lower is better); n/a for models without them.")
    doc.text(f"Per-class columns: {per} on test. macro F1 at thresholds "
             f"{result.models[0].facts.thresholds or 'argmax'}.")


def _groups_table(doc: Document, result: Comparison, headline: str) -> None:
    if not result.groups:
        return
    doc.heading("Same model, several runs (mean ± sd)")
    rows = [[g.model, len(g.runs), _pm((g.headline_mean, g.headline_sd)),
             *[_pm(g.per_class[c]) for c in result.classes]] for g in result.groups]
    doc.table(["model", "runs", headline, *result.classes], rows)


def _seed_paper_table(doc: Document, result: Comparison) -> None:
    if result.task != "multilabel":
        return
    doc.heading("The seed paper's metrics, for contrast")
    doc.text("Label-wise accuracy (all cells at p >= 0.5) and flattened AUROC (all image-class pairs pooled, No "
             "Finding included) as the seed paper reported them: they flatter every model and hide per-finding "
             "differences. Use the macro AUROC and per-class columns above.")
    doc.table(["model", "label-wise accuracy", "flattened AUROC", "macro AUROC"],
              [[r.name, r.seed_paper.labelwise_accuracy, r.seed_paper.flattened_auroc, r.macro_auroc.value]
               for r in result.models])


def _tests_table(doc: Document, result: Comparison) -> None:
    doc.heading("Paired tests")
    rows = []
    for t in result.tests:
        counts = t.counts
        rows.append([f"{t.a} - {t.b}", t.class_name, t.metric, t.test, counts.n_pos_images if counts else "",
                     counts.n_pos_patients if counts else "", fmt_signed(t.delta), fmt_p(t.p_value, t.p_floor),
                     fmt_p_adjusted(t.p_value, t.p_adjusted, t.p_floor), _significance(result, t)])
    doc.table(["pair (a - b)", "class", "metric", "test", "pos. images", "pos. patients", "delta", "p",
               "p (Holm)", "significant"], rows)
    doc.text("* Holm-adjusted p < 0.05. A class below the minimum number of positive (or negative) patients the "
             "stats core needs for an interval and a star gets \"n/a\" there: its permutation p-value is valid but "
             "its effect is not estimated well enough to call. DeLong tests are patient-clustered when a patient has "
             "several images (Obuchowski 1997); permutation and bootstrap p-values are Monte Carlo values, never "
             "reported below their resolution (<=2/(B+1)).")


def _significance(result: Comparison, t: ComparisonTest) -> str:
    """``yes *`` / ``no``, or why a class cannot be called (too few patients for the stats core's rule)."""
    if not t.enough_patients and t.counts is not None:
        return too_few(t.counts.n_pos_patients, t.counts.n_neg_patients, result.min_patients)
    if t.p_adjusted is None:
        return "n/a"
    return "yes *" if t.significant else "no"


def _aurc(f: ModelFacts) -> str:
    return "n/a" if f.aurc is None else f"{f.aurc:.4f} ({f.aurc_score})"


def _pm(pair: tuple) -> str:
    return "n/a" if pair[0] is None else f"{pair[0]:.3f} ± {pair[1] or 0:.3f}"
