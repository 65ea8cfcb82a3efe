"""``evaluate_predictions``: score one predictions file (or run) against labels, write metrics and a report."""

from __future__ import annotations

import time
from pathlib import Path

from cxrlab.data.index import Index
from cxrlab.errors import CxrlabError
from cxrlab.evaluate import metrics as m
from cxrlab.evaluate.definitions import DEFINITIONS, REFERENCE_NOTE, REFERENCES
from cxrlab.evaluate.external import internal_vs_external
from cxrlab.evaluate.formatting import fmt_ci, headline
from cxrlab.evaluate.inputs import Source, load_labels, refuse_duplicates, resolve_source
from cxrlab.evaluate.matching import Scored, check_fitting_allowed, datasets_block, load_scored
from cxrlab.evaluate.options import EvalOptions
from cxrlab.evaluate.report import write_evaluation_report
from cxrlab.evaluate.stats.evaluation import MultilabelResults
from cxrlab.evaluate.stats.metrics_file import SCHEMA, Evaluation
from cxrlab.evaluate.subgroups import parse_age_bands, subgroup_analysis
from cxrlab.evaluate.summary import multiclass_block, multilabel_block
from cxrlab.utils import read_json, write_json

__all__ = ["SCHEMA", "Evaluation", "evaluate_predictions", "fmt_ci", "headline", "read_evaluation", "uncertainty_block",
           "write_outputs"]


def evaluate_predictions(
    predictions: str | Path,
    labels: str | Path | Index | None = None,
    out: str | Path | None = None,
    val_predictions: str | Path | None = None,
    options: EvalOptions | None = None,
    report: bool = True,
    internal: str | Path | None = None,
    internal_labels: str | Path | None = None,
    **option_overrides,
) -> dict:
    """Score ``predictions`` (a CSV or a run directory) against ``labels``; write ``out/metrics.json`` and the
    reports when ``out`` is given. Returns the metrics dictionary (schema: README, "metrics.json schema").

    Args:
        predictions: predictions CSV (ours or another tool's) or a run directory.
        labels: index folder / index.csv / NIH Data_Entry CSV / labels CSV, or an ``Index``; None: the run's.
        val_predictions: validation predictions for thresholds and temperature (a run's own by default).
        options: how to score (``EvalOptions``: bootstrap, seed, exclude, threshold_method, exact_below, by,
            age_bands, min_group, match, prefix, logits, allow_*); recorded as ``options`` in metrics.json.
        internal, internal_labels: the same model's predictions (or run) on its internal test set and their
            labels (default: the run's index): adds ``internal_vs_external``, an unpaired comparison.
        **option_overrides: fields of ``options`` by keyword (``bootstrap=200``), for short library calls.
    """
    opts = EvalOptions.of(options, **option_overrides)
    bootstrap, seed, exclude, prefix, logits = opts.bootstrap, opts.seed, opts.exclude, opts.prefix, opts.logits
    start = time.perf_counter()
    check_out(out)
    by, age_bands = list(opts.by), parse_age_bands(opts.age_bands)
    source = resolve_source(predictions, val_predictions)
    _check_internal(source, internal, internal_labels)
    index = labels if isinstance(labels, Index) else load_labels(labels, source)
    scored, preds = load_scored(source.test, index, prefix, logits, match=opts.match)
    val = _load_val(source, index, prefix, logits, (opts.allow_test_fitting, opts.allow_unverified), scored.notes,
                    opts.match)
    weights = m.bootstrap_weights(scored, bootstrap, seed)
    if scored.task == "multilabel":
        results = multilabel_block(scored, weights, tuple(exclude), val, opts.threshold_method, opts.exact_below)
    else:
        results = multiclass_block(scored, weights, val)
    subgroups = subgroup_analysis(
        scored, index, by, weights, exclude=tuple(exclude), val=val, method=opts.threshold_method,
        age_bands=age_bands, min_group=opts.min_group,
        thresholds=getattr(results, "thresholds", None)) if by else None
    internal_external = None if internal is None else _internal_vs_external(
        scored, internal, internal_labels, prefix, logits, bootstrap, seed, exclude)
    evaluation = Evaluation(
        task=scored.task, classes=tuple(scored.classes), counts=scored.counts, notes=tuple(scored.notes),
        model=preds.meta.get("model") or source.name, name=source.name, results=results,
        inputs=_inputs(source, index, labels, val is not None), datasets=datasets_block(preds, index, source.run_dir),
        matching=scored.matching,
        bootstrap={"replicates": int(bootstrap), "seed": int(seed), "unit": "patient", "interval": "percentile",
                   "level": 0.95, "stratified": "by each patient's rarest positive class"},
        options=opts.to_dict(), subgroups=subgroups, internal_vs_external=internal_external,
        uncertainty=uncertainty_block(scored, preds).get("uncertainty"), definitions=DEFINITIONS,
        references={"note": REFERENCE_NOTE, "anchors": REFERENCES}, seconds=round(time.perf_counter() - start, 3))
    if out is not None:
        write_outputs(evaluation, scored, source, Path(out), report)
    return evaluation.to_dict()


def uncertainty_block(scored: Scored, preds) -> dict:
    """``{"uncertainty": {...}}`` when the predictions carry ``std:/entropy:/mi:<class>`` columns, else ``{}``
    (see ``cxrlab.evaluate.selective.summarize_uncertainty``); computed on the scored images only."""
    kinds = ("std:", "entropy:", "mi:")
    if preds.extra is None or not any(str(c).startswith(kinds) for c in preds.extra.columns):
        return {}
    import pandas as pd

    from cxrlab.evaluate.selective import summarize_uncertainty

    rows = pd.Index(preds.image_ids).get_indexer(scored.image_ids)  # ids are unique (checked when matching)
    extra = preds.extra.iloc[rows].reset_index(drop=True)
    block = summarize_uncertainty(scored.p, scored.y, extra, list(scored.classes), scored.task)
    if block is None:
        return {}
    return {"uncertainty": {"method": preds.meta.get("uncertainty") or preds.meta.get("method"),
                            "samples": preds.meta.get("samples"), **block}}


def _inputs(source: Source, index: Index, labels, used_val: bool) -> dict:
    from cxrlab.utils import sha256_file

    # the hashes say which files these metrics came from, whatever their paths become
    return {"predictions": str(source.test), "val_predictions": str(source.val) if used_val else None,
            "labels": str(getattr(index, "path", None) or labels), "run_dir": _str(source.run_dir),
            "predictions_sha256": sha256_file(source.test),
            "val_predictions_sha256": sha256_file(source.val) if used_val else None, "labels_sha256": index.sha256}


def check_out(out: str | Path | None) -> None:
    """Fail fast on ``--out`` before any file is read (the options are checked by ``EvalOptions``)."""
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise CxrlabError(f"--out {out} is a file; give a folder for the outputs")


def _check_internal(source: Source, internal: str | Path | None, internal_labels: str | Path | None) -> None:
    """``--internal-labels`` only with ``--internal``; ``--internal`` never the external predictions themselves."""
    if internal is None:
        if internal_labels is not None:
            raise CxrlabError(f"--internal-labels {internal_labels} is only read with --internal (the model's "
                              "predictions on its internal test set); pass both, or neither")
        return
    refuse_duplicates([Path(source.test), Path(resolve_source(internal).test)], "--internal")


def _internal_vs_external(external: Scored, internal, internal_labels, prefix, logits, bootstrap, seed,
                          exclude) -> dict:
    """Score the model's internal predictions and compare them with the external ones (unpaired)."""
    source = resolve_source(internal)
    scored, _ = load_scored(source.test, load_labels(internal_labels, source), prefix, logits)
    return internal_vs_external(external, scored, replicates=bootstrap, seed=seed, exclude=tuple(exclude))


def _load_val(source: Source, index: Index, prefix: str | None, logits: bool, allow: tuple[bool, bool],
              notes: list[str], match: str = "exact") -> Scored | None:
    if source.val is None:
        return None
    val, val_preds = load_scored(source.val, index, prefix, logits, match=match)
    record = check_fitting_allowed(val_preds, source.test, allow[0], "thresholds and temperatures", labels=index,
                                   allow_unverified=allow[1], run_dir=source.run_dir)
    if record and record.get("fitted_on_test"):  # --allow-test-fitting: recorded in metrics.json and the report
        notes.append(f"BIASED: thresholds and temperatures were fitted on test data ({record['reason']})")
    elif record:  # --allow-unverified
        notes.append(f"UNVERIFIED: the test-set check of the validation predictions was incomplete "
                     f"({record['reason']})")
    return val


def write_outputs(evaluation: Evaluation | dict, scored: Scored, source: Source, out: Path,
                  report: bool = True) -> None:
    """``metrics.json`` (the one place it is serialised: ``Evaluation.to_dict()``) and, with ``report``,
    ``report.html`` + ``report.md`` in ``out``."""
    if isinstance(evaluation, dict):
        evaluation = Evaluation.from_dict(evaluation, "the evaluation result")
    make_out_dir(out)
    write_json(out / "metrics.json", evaluation.to_dict())
    if report:
        write_evaluation_report(evaluation, scored, source, out)


def read_evaluation(path: str | Path) -> Evaluation:
    """A ``metrics.json`` written by ``cxrlab evaluate`` (or the folder holding it), typed; a missing, corrupt or
    malformed file is a one-line ``CxrlabError`` naming it."""
    path = Path(path)
    path = path / "metrics.json" if path.is_dir() else path
    if not path.is_file():
        raise CxrlabError(f"{path} does not exist; give the metrics.json written by cxrlab evaluate (or its folder)")
    return Evaluation.from_dict(read_json(path, dict, fix="rebuild it with cxrlab evaluate"), str(path))


def make_out_dir(out: Path) -> None:
    """Create the output folder, with a one-line error when that is impossible."""
    if out.exists() and not out.is_dir():
        raise CxrlabError(f"--out {out} is a file; give a folder for the outputs")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CxrlabError(f"cannot create output folder {out}: {exc.strerror}") from None


def _str(x: Path | None) -> str | None:
    return str(x) if x is not None else None


def summary_lines(result: dict | Evaluation) -> list[str]:
    """What ``cxrlab evaluate`` tells a user about ``result``: counts, notes, the headline with its CI."""
    ev = result if isinstance(result, Evaluation) else Evaluation.from_dict(result, "the evaluation result")
    counts, r = ev.counts, ev.results
    name, head = ev.headline()
    lines = [f"scored {counts['scored']} of {counts['predicted']} predicted images ({counts['patients']} patients), "
             f"{len(ev.classes)} classes"]
    lines += [f"note: {note}" for note in ev.notes]
    lines.append(f"{name}: {fmt_ci(head.value, head.ci)} (95% CI, {ev.bootstrap['replicates']} patient bootstrap "
                 "replicates)")
    unc = ev.uncertainty
    if unc:
        review = unc["review"]
        lines.append(f"uncertainty ({unc['score']}): AURC {unc['aurc']:.4f} (confidence: "
                     f"{unc['aurc_by_score']['confidence']:.4f})"
                     + (f"; {review['n_flagged']} images flagged by {review['rule']}" if review else ""))
    if isinstance(r, MultilabelResults) and r.macro.undefined:
        lines.append(f"undefined (one label value, not averaged): {', '.join(r.macro.undefined)}")
    if isinstance(r, MultilabelResults) and r.macro.flagged:
        powered = r.macro.powered
        value = "undefined" if powered.value is None else fmt_ci(powered.value, powered.ci)
        lines.append(f"thin classes, no interval (fewer than {r.macro.min_patients} positive or negative "
                     f"patients): {', '.join(r.macro.flagged)}; macro AUROC without them: {value}")
    return lines
