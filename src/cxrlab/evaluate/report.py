"""The evaluation report (``report.html`` + ``report.md``) built from the typed ``Evaluation`` and the scored data."""

from __future__ import annotations

import json
from pathlib import Path

from cxrlab.evaluate import figures
from cxrlab.evaluate.document import Document
from cxrlab.evaluate.formatting import fmt_ci, fmt_count, fmt_seconds, fmt_value, is_nih
from cxrlab.evaluate.inputs import Source
from cxrlab.evaluate.matching import Scored
from cxrlab.evaluate.stats.evaluation import Calibration, ClassCalibration, MulticlassResults, MultilabelResults
from cxrlab.evaluate.stats.metrics_file import Evaluation
from cxrlab.evaluate.stats.results import Metric
from cxrlab.evaluate.subgroups_report import datasets_section, internal_external_section, subgroup_section
from cxrlab.evaluate.trouble import below_chance, validation_collapse


def write_evaluation_report(ev: Evaluation, scored: Scored, source: Source, out: Path) -> tuple[Path, Path]:
    """Write ``out/report.html`` and ``out/report.md``."""
    name, model, r = ev.title, ev.model, ev.results
    doc = Document(f"cxrlab evaluation: {name}" + (f" ({model})" if model != name else ""))
    _summary(doc, ev, collapse_warnings(source, name))
    datasets_section(doc, {"datasets": ev.datasets, "matching": ev.matching})
    if isinstance(r, MultilabelResults):
        _multilabel_tables(doc, r)
        macro_classes, macro_auroc = list(r.macro.classes), r.macro.auroc
    else:
        _multiclass_tables(doc, r)
        macro_classes, macro_auroc = list(r.macro_f1.classes), r.macro_auroc_ovr
    doc.heading("Figures")
    aurocs = r.class_aurocs()
    doc.figure("auroc_ci", figures.forest_figure(
        [*aurocs, "macro"], [*(a.value for a in aurocs.values()), macro_auroc.value],
        [*(_ci(a) for a in aurocs.values()), _ci(macro_auroc)], "AUROC (95% CI)", 0.5),
        "AUROC per class and macro average with 95% patient-bootstrap intervals")
    doc.figure("roc", figures.roc_figure(scored, macro_classes), "ROC curves per class and macro average (test)")
    doc.figure("pr", figures.pr_figure(scored), "Precision-recall curves per class (test)")
    doc.figure("reliability", figures.reliability_figure(scored), "Reliability diagram (test, before scaling)")
    if isinstance(r, MulticlassResults):
        doc.figure("confusion", figures.confusion_figure([list(row) for row in r.confusion], list(r.macro_f1.classes)),
                   "Confusion matrix (test)")
    uncertainty_section(doc, ev.uncertainty)
    subgroup_section(doc, ev.subgroups)
    internal_external_section(doc, ev.internal_vs_external)
    run_sections(doc, source)
    if source.run_dir is not None:
        from cxrlab.evaluate.explain_section import explain_section

        explain_section(doc, source.run_dir / "explain", out)
    test_format = ((ev.datasets or {}).get("test") or {}).get("format")
    reference_section(doc, ev.references, test_format)
    definitions_section(doc, ev.definitions)
    return doc.write(out)


def _ci(x: Metric) -> list | None:
    return None if x.ci is None else list(x.ci)


def chance_warnings(ev: Evaluation, name: str = "this model") -> list[str]:
    """An evaluation's AUROCs below 0.5 (per class and macro), in words; thin classes get a note, not a warning."""
    r = ev.results
    aurocs = r.class_aurocs()
    macro = r.macro.auroc if isinstance(r, MultilabelResults) else r.macro_auroc_ovr
    cis = {c: _ci(a) for c, a in aurocs.items()} | {"macro": _ci(macro)}
    thin = [c for c, k in r.per_class.items() if not k.enough_patients] if isinstance(r, MultilabelResults) else []
    return below_chance(name, {c: a.value for c, a in aurocs.items()}, macro.value, cis, thin=thin)


def collapse_warnings(source: Source, name: str) -> list[str]:
    """The run's validation metric collapsing during training (its ``metrics.csv``), in words."""
    if source.run_dir is None or not (source.run_dir / "metrics.csv").exists():
        return []
    info = source.manifest().get("val_metric")
    metric = info.get("name", "macro_auroc") if isinstance(info, dict) else "macro_auroc"
    return validation_collapse(source.run_dir / "metrics.csv", metric, name)


def _summary(doc: Document, ev: Evaluation, warnings: list[str]) -> None:
    c, r = ev.counts, ev.results
    name, head = ev.headline()
    doc.heading("Summary")
    doc.warnings(chance_warnings(ev, ev.title) + warnings)
    items = [
        f"{name}: {fmt_ci(head.value, head.ci)} (95% CI from {ev.bootstrap['replicates']} patient-level bootstrap "
        f"replicates, seed {ev.bootstrap['seed']})",
        f"scored {c['scored']} of {c['predicted']} predicted images from {c['patients']} patients; "
        f"{len(ev.classes)} classes",
        f"predictions: {ev.inputs['predictions']}; labels: {ev.inputs['labels']}",
    ]
    if isinstance(r, MultilabelResults):
        m, t = r.macro, r.thresholds
        items += [
            f"macro AUPRC: {fmt_ci(m.auprc.value, m.auprc.ci)}",
            f"micro AUROC (pooled pairs): {fmt_ci(r.micro.value, r.micro.ci)}; prevalence-"
            f"weighted AUROC: {fmt_ci(r.weighted.value, r.weighted.ci)}",
            f"macro averaged over: {', '.join(m.classes)}; excluded: {', '.join(m.excluded) or 'none'}; "
            f"undefined (one label value): {', '.join(m.undefined) or 'none'}",
            f"macro F1 at thresholds ({t.method}, {t.chosen_on}): {fmt_ci(t.macro_f1.value, t.macro_f1.ci)}",
        ]
        if r.seed_paper is not None:
            items.append(f"seed paper's numbers, for contrast only: label-wise accuracy "
                         f"{r.seed_paper.labelwise_accuracy:.3f}, flattened AUROC "
                         f"{fmt_ci(r.seed_paper.flattened_auroc, None)} (see definitions)")
    else:
        items += [f"{k.replace('_', ' ')}: {fmt_ci(getattr(r, k).value, getattr(r, k).ci)}"
                  for k in ("accuracy", "balanced_accuracy", "weighted_f1", "kappa")]
    doc.bullets(items)
    if ev.notes:
        doc.text("Notes: " + "; ".join(ev.notes))
    _calibration(doc, r.calibration)


def _calibration(doc: Document, cal: Calibration) -> None:
    before, after = cal.before, cal.after
    if isinstance(before, ClassCalibration):
        text = f"Calibration (test): mean Brier {before.brier_mean:.4f}, mean ECE {before.ece_mean:.4f}"
        if after:
            text += f"; after per-class temperature scaling fitted on validation: Brier {after.brier_mean:.4f}, "
            text += f"ECE {after.ece_mean:.4f}"
    else:
        text = f"Calibration (test): Brier {before.brier:.4f}, top-label ECE {before.ece_top_label:.4f}"
        if after:
            text += f"; after temperature {cal.temperature:.3f}: Brier {after.brier:.4f}, "
            text += f"ECE {after.ece_top_label:.4f}"
    doc.text(text)


def _multilabel_tables(doc: Document, r: MultilabelResults) -> None:
    doc.heading("Per-class metrics (test)")
    rows = []
    for c, m in r.per_class.items():
        t = r.thresholds.per_class[c]
        in_macro = ("yes (too few patients: no interval)" if c in r.macro.flagged else "yes") if m.in_macro else "no"
        rows.append([c, m.n_positive, m.n_positive_patients, m.n_negative, m.prevalence,
                     fmt_ci(m.auroc.value, m.auroc.ci), fmt_ci(m.auprc.value, m.auprc.ci), m.sensitivity_at("0.9"),
                     t.threshold, fmt_ci(t.f1.value, t.f1.ci), in_macro])
    doc.table(["class", "positive images", "positive patients", "negatives", "prevalence", "AUROC [95% CI]",
               "AUPRC [95% CI]", "sens @ spec 0.9", "threshold", "F1 [95% CI]", "in macro"], rows)
    if r.macro.flagged:
        powered = r.macro.powered
        doc.text(f"Classes with fewer than {r.macro.min_patients} positive (or negative) patients get no "
                 f"AUROC interval: {', '.join(r.macro.flagged)}. They stay in the macro average; the macro "
                 f"over the other classes alone is {fmt_ci(powered.value, powered.ci)}.")


def _multiclass_tables(doc: Document, r: MulticlassResults) -> None:
    doc.heading("Per-class metrics (test)")
    rows = [[c, m.support, m.precision, m.recall, fmt_ci(m.f1.value, m.f1.ci),
             fmt_ci(m.auroc_ovr.value, m.auroc_ovr.ci)] for c, m in r.per_class.items()]
    doc.table(["class", "support", "precision", "recall", "F1 [95% CI]", "AUROC one-vs-rest [95% CI]"], rows)
    classes = list(r.macro_f1.classes)
    doc.text("Confusion matrix (rows: true class, columns: predicted class)")
    doc.table(["true \\ predicted", *classes], [[c, *row] for c, row in zip(classes, r.confusion)])


def uncertainty_section(doc: Document, unc: dict | None) -> None:
    """Mean uncertainty per class, AURC and the risk-coverage plot, when the predictions carried the columns."""
    if not unc:
        return
    doc.heading("Uncertainty")
    by = unc["aurc_by_score"]
    samples = f", {unc['samples']} samples" if unc.get("samples") else ""
    items = [f"method: {unc.get('method') or 'unknown'}{samples}",
             f"AURC ({unc['score']}): {unc['aurc']:.4f}; risk at full coverage {unc['risk_at_full']:.4f}",
             "AURC by score: " + ", ".join(f"{k} {v:.4f}" for k, v in by.items()) + " (lower is better)"]
    if unc.get("review"):
        r = unc["review"]
        items.append(f"flagged for review ({r['rule']}): {r['n_flagged']} of {unc['n_images']} images "
                     f"({100 * r['fraction']:.1f}%)")
    doc.bullets(items)
    kinds = unc["kinds"]
    doc.table(["class", *[f"mean {k}" for k in kinds]],
              [[c, *[m[f"mean_{k}"] for k in kinds]] for c, m in unc["per_class"].items()])
    curves = {unc["score"]: {**unc["curve"], "aurc": unc["aurc"]},
              "confidence": {**unc["curve_confidence"], "aurc": by["confidence"]}}
    doc.figure("risk_coverage", figures.risk_coverage_figure(curves),
               "Risk-coverage: error of the kept images when abstaining on the most uncertain first")
    doc.text(unc["error"])


RUN_FACTS = {"config": ("config", str), "model": ("model", str), "parameters": ("parameters", fmt_count),
             "params": ("parameters", fmt_count), "wall_seconds": ("training time", fmt_seconds),
             "wall_time_s": ("training time", fmt_seconds), "best_epoch": ("best epoch", str), "seed": ("seed", str),
             "device": ("device", str)}


def run_sections(doc: Document, source: Source, level: int = 2, fig: str = "training") -> None:
    """Training facts and curves and the split audit, when a run directory is known (a collapse is said in the
    summary: ``collapse_warnings``).

    ``level``: the heading level of "Training" (the audit sits one below it); ``fig``: the figure's file name."""
    if source.run_dir is None:
        return
    run = source.run_dir
    doc.heading("Training", level)
    manifest = source.manifest()
    facts = [f"{label}: {fmt(manifest[k])}" for k, (label, fmt) in RUN_FACTS.items() if manifest.get(k) is not None]
    if facts:
        doc.bullets(facts)
    if (run / "metrics.csv").exists():
        doc.figure(fig, figures.training_figure(run / "metrics.csv"), "Training curves (metrics.csv)")
    split_json = _split_json(run, manifest)
    if split_json is not None:
        doc.heading("Split audit", level + 1)
        try:
            split = json.loads(split_json.read_text())
        except (OSError, ValueError):
            split = {}
        split = split if isinstance(split, dict) else {"unreadable": f"{split_json} is not a JSON object"}
        doc.bullets([f"{k.replace('_', ' ')}: {_short(v)}" for k, v in split.items() if k != "audit"]
                    + [f"audit, {k.replace('_', ' ')}: {_short(v)}" for k, v in (split.get("audit") or {}).items()])


def _split_json(run: Path, manifest: dict) -> Path | None:
    """The split's audit sidecar: in the run directory, else beside the split file the manifest names."""
    candidates = [run / "split.json"]
    split = (manifest.get("data") or {}).get("split") if isinstance(manifest.get("data"), dict) else None
    if split:
        from cxrlab.utils import recorded_path

        candidates.append(recorded_path(split, run).with_suffix(".json"))  # relative to the run, never the cwd
    return next((p for p in candidates if p.is_file()), None)


def _short(v, limit: int = 200) -> str:
    text = fmt_value(v)
    return text if len(text) <= limit else text[:limit] + "..."


def reference_section(doc: Document, references: dict, dataset_format: str | None) -> None:
    """Published NIH ChestX-ray14 macro AUROCs beside ours: only when the labels are NIH's (the index's format)."""
    if not is_nih(dataset_format):
        return
    doc.heading("Reference anchors (NIH ChestX-ray14, other splits)")
    doc.text(references["note"])
    doc.table(["reference", "macro AUROC", "split"],
              [[a["name"], a["macro_auroc"], a["split"]] for a in references["anchors"]])


def definitions_section(doc: Document, definitions: dict) -> None:
    doc.heading("Metric definitions")
    doc.bullets([f"{k}: {v}" for k, v in definitions.items()])
