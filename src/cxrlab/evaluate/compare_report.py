"""The comparison report: the seed paper's Table 2 done properly, plus paired tests and curves."""

from __future__ import annotations

from pathlib import Path

from cxrlab.evaluate import figures
from cxrlab.evaluate.definitions import DEFINITIONS, REFERENCE_NOTE, REFERENCES
from cxrlab.evaluate.document import Document
from cxrlab.evaluate.formatting import fmt_ci, fmt_count, fmt_number, fmt_p, fmt_p_adjusted, fmt_signed, too_few
from cxrlab.evaluate.report import collapse_warnings, definitions_section, reference_section, run_sections
from cxrlab.evaluate.subgroups_report import subgroup_section
from cxrlab.evaluate.trouble import below_chance


def write_comparison_report(result: dict, models: list, out: Path,
                            appendix: list[tuple[str, str]] | None = None) -> tuple[Path, Path]:
    """Write ``out/report.html`` and ``out/report.md`` for a ``compare_runs`` result.

    ``appendix``: (text, relative href) links to companion reports (the demo's study report, per-model
    evaluations), listed at the end so one report stays the report."""
    doc = Document("cxrlab comparison")
    headline = "macro AUROC" if result["headline"] == "macro_auroc" else "macro F1"
    doc.heading("Summary")
    doc.warnings([w for r in result["models"] for w in _chance(result, r)]
                 + [w for model in models for w in collapse_warnings(model.source, model.name)])
    doc.bullets([
        f"{len(result['models'])} models on the same {result['counts']['images']} images "
        f"({result['counts']['patients']} patients); " + _best_line(result, headline),
        f"95% CIs from {result['bootstrap']['replicates']} patient-level bootstrap replicates, stratified by each "
        "patient's rarest positive class "
        f"(seed {result['bootstrap']['seed']}); p-values Holm-adjusted over all {len(result['tests'])} tests",
        f"{headline} averaged over: {', '.join(result['macro_classes'])}"
        + (f"; excluded: {', '.join(result['excluded'])}" if result["excluded"] else "")
        + (f"; flagged, fewer than {result['min_patients']} positive or negative patients (no interval, no star): "
           f"{', '.join(result['flagged'])}" if result.get("flagged") else ""),
        *[f"note: {n}" for n in result["notes"]],
    ])
    _model_table(doc, result, headline)
    _counts_table(doc, result)
    _groups_table(doc, result, headline)
    _seed_paper_table(doc, result)
    _tests_table(doc, result)
    doc.figure("comparison", figures.comparison_figure(
        [r["name"] for r in result["models"]], [r["headline"] for r in result["models"]],
        [r["headline_ci"] for r in result["models"]], headline), f"{headline} per model with 95% CI")
    macro = [t for t in result["tests"] if t["class"] == "macro"]
    doc.figure("differences", figures.forest_figure(
        [f"{t['a']} - {t['b']} ({t['metric']})" for t in macro], [t["delta"] for t in macro],
        [t.get("delta_ci") for t in macro], "paired difference (95% CI, patient bootstrap)", 0.0),
        "Paired differences of the macro metrics")
    _per_model(doc, result, models)
    reference_section(doc, {"note": REFERENCE_NOTE, "anchors": REFERENCES}, result.get("dataset_format"))
    definitions_section(doc, DEFINITIONS)
    if appendix:
        doc.heading("Appendix")
        for text, href in appendix:
            doc.link(text, href)
    return doc.write(out)


def _per_model(doc: Document, result: dict, models: list) -> None:
    """Each model's curves, training facts (a collapse in words), split audit and subgroups, nested under it."""
    doc.heading("Per model")
    for model in models:
        doc.heading(f"Model: {model.name}", 3)
        doc.figure(f"roc_{_slug(model.name)}", figures.roc_figure(model.scored, result["macro_classes"]),
                   f"ROC curves, {model.name}")
        doc.figure(f"reliability_{_slug(model.name)}", figures.reliability_figure(model.scored),
                   f"Reliability diagram, {model.name}")
        run_sections(doc, model.source, level=4, fig=f"training_{_slug(model.name)}")
        subgroup_section(doc, (result.get("subgroups") or {}).get(model.name), model.name, level=4)


def _chance(result: dict, row: dict) -> list[str]:
    macro = row["headline"] if result["headline"] == "macro_auroc" else None
    per = row["per_class"] if result["per_class_metric"] == "auroc" else {}
    return below_chance(row["name"], per, macro)


def _best_line(result: dict, headline: str) -> str:
    if result["best"]:
        return f"best by {headline}: {result['best']} (its lead over every other model is significant after Holm)"
    if result["not_separated"]:
        return (f"no best model: {', '.join(result['not_separated'])} are not separated by {headline} "
                "(Holm-adjusted p >= 0.05)")
    return "no model has a defined headline"


def _counts_table(doc: Document, result: dict) -> None:
    counts = result.get("class_counts") or {}
    if not counts:
        return
    flagged = set(result.get("flagged") or [])
    doc.table(["class", "positive images", "positive patients", "negative patients", "per-class test"],
              [[c, v["n_pos_images"], v["n_pos_patients"], v["n_neg_patients"],
                "permutation (flagged: no star)" if c in flagged else "DeLong"]
               for c, v in counts.items()])
    doc.text(f"Each AUROC rests on its positive patients: classes with fewer than {result['min_patients']} positive "
             "(or negative) patients are tested by the paired permutation test and get no significance star; they "
             "stay in the macro average (the one definition training selects on).")


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def _model_table(doc: Document, result: dict, headline: str) -> None:
    doc.heading("Models")
    per = result["per_class_metric"].upper() if result["per_class_metric"] == "auroc" else "F1"
    aurc = any(r.get("aurc") is not None for r in result["models"])  # a column only when some model has it
    headers = ["model", "params", "train s", "images/s", f"{headline} [95% CI]", "macro F1",
               *(["AURC"] if aurc else []), *result["classes"]]
    rows = []
    for r in result["models"]:
        name = r["name"] + (" (best)" if r["name"] == result["best"] else "")
        rows.append([name, fmt_count(r.get("params")), fmt_number(r.get("train_seconds")),
                     fmt_number(r.get("images_per_s")),
                     fmt_ci(r["headline"], r["headline_ci"]), r["macro_f1"],
                     *([_aurc(r)] if aurc else []), *[r["per_class"][c] for c in result["classes"]]])
    doc.table(headers, rows)
    if aurc:
        doc.text("AURC: area under the risk-coverage curve from the model's uncertainty columns (score in brackets; "
                 "lower is better); n/a for models without them.")
    doc.text(f"Per-class columns: {per} on test. macro F1 at thresholds "
             f"{result['models'][0].get('thresholds', 'argmax')}.")


def _groups_table(doc: Document, result: dict, headline: str) -> None:
    if not result["groups"]:
        return
    doc.heading("Same model, several runs (mean ± sd)")
    rows = [[g["model"], g["n"], f"{g['headline_mean']:.3f} ± {g['headline_sd'] or 0:.3f}",
             *[_pm(g["per_class"][c]) for c in result["classes"]]] for g in result["groups"]]
    doc.table(["model", "runs", headline, *result["classes"]], rows)


def _seed_paper_table(doc: Document, result: dict) -> None:
    if result["task"] != "multilabel":
        return
    doc.heading("The seed paper's metrics, for contrast")
    doc.text("Label-wise accuracy (all cells at p >= 0.5) and flattened AUROC (all image-class pairs pooled, No "
             "Finding included) as the seed paper reported them: they flatter every model and hide per-finding "
             "differences. Use the macro AUROC and per-class columns above.")
    doc.table(["model", "label-wise accuracy", "flattened AUROC", "macro AUROC"],
              [[r["name"], r["seed_paper"]["labelwise_accuracy"], r["seed_paper"]["flattened_auroc"],
                r["macro_auroc"]] for r in result["models"]])


def _tests_table(doc: Document, result: dict) -> None:
    doc.heading("Paired tests")
    rows = []
    for t in result["tests"]:
        rows.append([f"{t['a']} - {t['b']}", t["class"], t["metric"], t["test"], t.get("n_pos_images", ""),
                     t.get("n_pos_patients", ""), fmt_signed(t["delta"]), fmt_p(t["p_value"], t.get("p_floor")),
                     fmt_p_adjusted(t["p_value"], t["p_adjusted"], t.get("p_floor")), _significance(result, t)])
    doc.table(["pair (a - b)", "class", "metric", "test", "pos. images", "pos. patients", "delta", "p",
               "p (Holm)", "significant"], rows)
    doc.text("* Holm-adjusted p < 0.05. A class below the minimum number of positive (or negative) patients the "
             "stats core needs for an interval and a star gets \"n/a\" there: its permutation p-value is valid but "
             "its effect is not estimated well enough to call. DeLong tests are patient-clustered when a patient has "
             "several images (Obuchowski 1997); permutation and bootstrap p-values are Monte Carlo values, never "
             "reported below their resolution (<=2/(B+1)).")


def _significance(result: dict, t: dict) -> str:
    """``yes *`` / ``no``, or why a class cannot be called (too few patients for the stats core's rule)."""
    if not t.get("enough_patients", True):
        return too_few(t.get("n_pos_patients", 0), t.get("n_neg_patients", 0), result["min_patients"])
    if t.get("p_adjusted") is None:
        return "n/a"
    return "yes *" if t.get("significant") else "no"


def _aurc(r: dict) -> str:
    return "n/a" if r.get("aurc") is None else f"{r['aurc']:.4f} ({r['aurc_score']})"


def _pm(pair: list) -> str:
    return "n/a" if pair[0] is None else f"{pair[0]:.3f} ± {pair[1] or 0:.3f}"
