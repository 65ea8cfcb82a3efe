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
from cxrlab.evaluate.stats.comparison import ClassCounts, Comparison, ModelFacts, ModelResult, SeedGroup
from cxrlab.evaluate.stats.evaluation import SeedPaper
from cxrlab.evaluate.stats.results import Metric
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
) -> Comparison:
    """Compare run directories or predictions files scored on the same images (``options``: ``EvalOptions``,
    or its fields by keyword; ``by``: one subgroup table per model, see ``cxrlab.evaluate.subgroups``;
    ``appendix``: (text, href) links the report ends with).

    Writes ``out/comparison.json`` (``Comparison.to_dict``), ``out/comparison.csv``, ``out/tests.csv``,
    ``out/report.md`` and ``out/report.html``. Returns the ``Comparison``.
    """
    opts = EvalOptions.of(options, **option_overrides)
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
    weights = m.bootstrap_weights(ref, opts.bootstrap, opts.seed)
    keep, excluded, undefined = m.averaged_classes(ref, tuple(opts.exclude))
    # one macro everywhere (training's, evaluate's, the study's); thin classes are flagged, not dropped
    flagged = m.headline_classes(ref, keep, opts.exact_below)[1] if ref.task == "multilabel" else []
    for model in models:
        score_model(model, weights, keep, opts.threshold_method)
    tests = pairwise_tests(models, opts.seed, minimum=opts.exact_below)
    if 2 * len(tests) / (opts.bootstrap + 1) >= 0.05:  # the smallest bootstrap p, Holm-adjusted, is at least this
        notes.append(f"with {opts.bootstrap} bootstrap replicates no macro difference can be significant after Holm "
                     f"over {len(tests)} tests; use --bootstrap {40 * len(tests)} or more")
    headline = "macro_auroc" if ref.task == "multilabel" else "macro_f1"
    rows = [_model_result(model, headline, flagged) for model in models]
    best, not_separated = best_model(rows, tests, headline)
    subgroups = None
    if opts.by:
        subgroups = model_subgroups(models, index, list(opts.by), weights, exclude=tuple(opts.exclude),
                                    method=opts.threshold_method, age_bands=parse_age_bands(opts.age_bands),
                                    min_group=opts.min_group)
    result = Comparison(
        task=ref.task, headline_metric=headline, classes=tuple(ref.classes),
        macro_classes=tuple(ref.classes[i] for i in keep) if ref.task == "multilabel" else tuple(ref.classes),
        excluded=tuple(excluded), undefined=tuple(undefined), n_images=len(ref.image_ids), n_patients=ref.n_patients,
        replicates=int(opts.bootstrap), seed=int(opts.seed),
        class_counts={c: ClassCounts(*m.class_counts(ref, i)) for i, c in enumerate(ref.classes)},
        models=tuple(rows), tests=tuple(tests), groups=tuple(_groups(rows)), best=best,
        not_separated=tuple(not_separated), flagged=tuple(flagged), min_patients=opts.exact_below, notes=tuple(notes),
        options=opts.to_dict(),
        dataset_format=index.meta.get("format"),  # the report shows NIH's published anchors only on NIH
        subgroups=subgroups)
    if out is not None:
        write_comparison(result, models, Path(out), report, appendix)
    return result


def _model_result(model: Model, headline: str, flagged: list[str]) -> ModelResult:
    """A model's typed row; a flagged (thin) class gets no per-class interval, as in ``evaluate``."""
    s = model.scored
    per = model.arrays["auroc"] if s.task == "multilabel" else model.arrays["f1"]
    values, cis = est(per)
    facts = ModelFacts(**{k: v for k, v in model.info.items() if k in ModelFacts.__dataclass_fields__})
    return ModelResult(
        name=model.name, facts=facts, headline=_metric(model.arrays[headline]),
        macro_auroc=_metric(model.arrays["macro_auroc"]), macro_f1=_metric(model.arrays["macro_f1"]),
        per_class={c: finite_or_none(per[0, i]) for i, c in enumerate(s.classes)},
        per_class_ci={c: tuple(cis[i]) if cis[i] is not None and c not in flagged else None
                      for i, c in enumerate(s.classes)},
        seed_paper=SeedPaper(**paper, classes=tuple(s.classes)) if (paper := seed_paper(s)) else None,
        predictions=str(model.source.test))


def _metric(values) -> Metric:
    """Row 0 observed, rows 1.. replicates: the value, its percentile interval and the undefined replicates."""
    value, ci = est(values)
    return Metric(value=value, ci=tuple(ci) if ci is not None else None, replicates=len(values) - 1,
                  n_undefined_replicates=undefined_replicates(values[1:]))


def _groups(rows: list[ModelResult]) -> list[SeedGroup]:
    """Seeds of one recipe (``seed_group``: resolved configs equal but for the seed) aggregated: mean and sample
    sd of the headline metric and of each class."""
    by_config: dict[str, list[ModelResult]] = {}
    for r in rows:
        if r.facts.seed_group:
            by_config.setdefault(r.facts.seed_group, []).append(r)
    out = []
    for key, members in by_config.items():
        if len(members) < 2:
            continue
        first = members[0].facts
        name = str(first.model) + (f" ({first.recipe})" if first.recipe else "")
        mean, sd = mean_sd([r.headline.value for r in members])
        per = {c: tuple(mean_sd([r.per_class[c] for r in members])) for c in members[0].per_class}
        out.append(SeedGroup(name, tuple(r.name for r in members), key, "resolved config.yaml equal except train.seed",
                             mean, sd, per))
    return out


def write_comparison(result: Comparison, models: list[Model], out: Path, report: bool = True,
                     appendix: list[tuple[str, str]] | None = None) -> None:
    """``comparison.json``, ``comparison.csv``, ``tests.csv`` and the reports."""
    import pandas as pd

    make_out_dir(out)
    write_json(out / "comparison.json", result.to_dict())
    atomic_write_text(out / "comparison.csv", pd.DataFrame([_csv_row(result, r) for r in result.models])
                      .to_csv(index=False, lineterminator="\n"))
    atomic_write_text(out / "tests.csv", pd.DataFrame([t.to_dict() for t in result.tests])
                      .to_csv(index=False, lineterminator="\n"))
    if report:
        from cxrlab.evaluate.compare_report import write_comparison_report

        write_comparison_report(result, models, out, appendix)


def _csv_row(result: Comparison, r: ModelResult) -> dict:
    """One model's row of ``comparison.csv``: its facts, headline with interval, macros and per-class values."""
    low, high = r.headline.ci or (None, None)
    h = result.headline_metric
    return ({"name": r.name} | {k: getattr(r.facts, k) for k in ModelFacts.__dataclass_fields__}
            | {"headline": r.headline.value, "headline_undefined_replicates": r.headline.n_undefined_replicates,
               "macro_auroc": r.macro_auroc.value, "macro_f1": r.macro_f1.value, "predictions": r.predictions,
               f"{h}_ci_low": low, f"{h}_ci_high": high}
            | {f"{result.per_class_metric}:{c}": v for c, v in r.per_class.items()})


def summary_lines(result: Comparison) -> list[str]:
    """What ``cxrlab compare`` tells a user about ``result``: each model's headline with its CI, and the notes."""
    name = "macro AUROC" if result.headline_metric == "macro_auroc" else "macro F1"
    lines = [f"compared {len(result.models)} models on {result.n_images} images ({result.n_patients} patients)"]
    for r in result.models:
        mark = "  <- best (lead significant after Holm)" if r.name == result.best else ""
        lines.append(f"  {r.name}: {name} {fmt_ci(r.headline.value, r.headline.ci)}{mark}")
    if result.not_separated:
        lines.append(f"no best model: {', '.join(result.not_separated)} are not separated by {name} "
                     "(paired bootstrap, Holm-adjusted p >= 0.05)")
    if result.flagged:
        lines.append(f"thin classes, no interval or star (fewer than {result.min_patients} positive or negative "
                     "patients): " + ", ".join(result.flagged))
    return lines + [f"note: {note}" for note in result.notes]
