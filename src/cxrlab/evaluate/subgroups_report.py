"""Report sections for subgroup analysis and for the datasets an evaluation crosses (external validation)."""

from __future__ import annotations

from cxrlab.evaluate import figures
from cxrlab.evaluate.document import Document
from cxrlab.evaluate.formatting import fmt_ci as _fmt
from cxrlab.evaluate.stats.evaluation import results_from_dict

RESERVED = ("gaps", "worst_group", "settings")


def datasets_section(doc: Document, result: dict) -> None:
    """Training and test dataset; an external evaluation says so plainly."""
    d = result.get("datasets") or {}
    train, test = d.get("training") or {}, d.get("test") or {}
    if not train.get("index") and not test.get("index"):
        return
    doc.heading("Datasets")
    items = [f"training: {train.get('index') or 'unknown (no run directory)'}"
             + (f" (format {train['format']})" if train.get("format") else ""),
             f"test: {test.get('index')}" + (f" (format {test['format']})" if test.get("format") else "")]
    if d.get("external"):
        items.append("EXTERNAL evaluation: the model is scored on another dataset than it was trained on; a "
                     "comparison with its internal results is unpaired (different images): use a bootstrap CI "
                     "of the difference, not DeLong's paired test")
    match = result.get("matching") or {}
    pairs = match.get("pairs") or []
    renamed = [p for p in pairs if p["kind"] != "same name"]
    if renamed:
        items.append("classes matched through the shared findings table: " + ", ".join(
            f"{p['model']} {'=' if p['kind'] == 'exact' else '~'} {p['labels']}" for p in renamed))
    if match.get("approximate_not_scored"):
        items.append("approximate, not scored (--match approximate): " + ", ".join(
            f"{p['model']} ~ {p['labels']}" for p in match["approximate_not_scored"]))
    if match.get("model_unmatched"):
        items.append(f"model classes without labels here: {', '.join(match['model_unmatched'])}")
    doc.bullets(items)


def subgroup_section(doc: Document, subgroups: dict | None, model: str | None = None, level: int = 2) -> None:
    """One table, gap list and forest plot per ``--by`` column (``model``: compare's per-model tables, whose
    headings sit at ``level`` under the model's)."""
    if not subgroups:
        return
    for column, block in subgroups.items():
        settings = block["settings"]
        metric = settings["metric"]
        label = "macro AUROC" if metric == "macro_auroc" else "macro F1"
        doc.heading(f"Subgroups: {column}" + (f" ({model})" if model else ""), level)
        rows, names, values, cis = [], [], [], []
        for group in settings["groups"]:
            g = block[group]
            if g.get("too_small") or g.get("undefined"):
                rows.append([group, g["n_images"], g["n_patients"], g.get("note") or g.get("undefined"), "", ""])
                continue
            typed = results_from_dict(g, path=f"subgroups.{column}.{group}")
            _, macro = typed.headline()  # macro AUROC (multi-label) or macro F1 (multi-class), as settings.metric
            ece = typed.calibration.ece()
            under = _fmt(g.get("underdiagnosis"), g.get("underdiagnosis_ci"))
            ci = None if macro.ci is None else list(macro.ci)
            rows.append([group, g["n_images"], g["n_patients"], _fmt(macro.value, ci),
                         "" if ece is None else f"{ece:.4f}", under])
            names.append(f"{group} (n={g['n_images']})")
            values.append(macro.value)
            cis.append(ci)
        doc.table(["group", "images", "patients", f"{label} [95% CI]", "ECE", "underdiagnosis [95% CI]"], rows)
        worst = block.get("worst_group")
        notes = [f"underdiagnosis: {settings['underdiagnosis']}",
                 f"groups under {settings['min_group']} images are not scored (--min-group)"]
        if settings.get("age_bands"):
            notes.append(f"age band edges: {', '.join(f'{e:g}' for e in settings['age_bands'])}")
        if worst:
            gap = worst["gap_to_best"]
            notes.insert(0, f"worst group: {worst['group']} ({label} {worst[metric]:.3f}); gap to the best "
                            f"({worst['best_group']}): {_fmt(gap['difference'], gap['ci'])} (paired patient bootstrap)")
        for name, gap in block["gaps"].items():
            g = gap[metric]
            extra = ""
            if "underdiagnosis" in gap:
                u = gap["underdiagnosis"]
                extra = f"; underdiagnosis {_fmt(u['difference'], u['ci'])}"
            notes.append(f"gap {name}: {label} {_fmt(g['difference'], g['ci'])}{extra}")
        doc.bullets(notes)
        name = f"subgroups_{_safe(model) + '_' if model else ''}{_safe(column)}"
        doc.figure(name, figures.forest_figure(names, values, cis, f"{label} (95% CI)", None),
                   f"{label} per {column} group with 95% patient-bootstrap intervals")


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


def internal_external_section(doc: Document, block: dict | None) -> None:
    """Internal vs external results of the model: unpaired differences with bootstrap intervals."""
    if not block or not block.get("classes"):
        return
    doc.heading("Internal vs external (unpaired)")
    doc.text(block["method"])
    metric = block["metric"].upper() if block["metric"] == "auroc" else "F1"
    rows = [[c, _fmt(v["internal"], v["internal_ci"]), _fmt(v["external"], v["external_ci"]),
             _fmt(v["difference"], v["difference_ci"])] for c, v in block["classes"].items()]
    mac = block["macro"]
    rows.append(["macro", _fmt(mac["internal"], mac["internal_ci"]), _fmt(mac["external"], mac["external_ci"]),
                 _fmt(mac.get("difference"), mac.get("difference_ci"))])
    doc.table(["class", f"internal {metric} [95% CI]", f"external {metric} [95% CI]",
               "external - internal [95% CI]"], rows)
    doc.text(f"internal: {block['internal_images']} images; external: {block['external_images']} images")
