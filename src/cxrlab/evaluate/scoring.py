"""The public multi-model API that ``compare``, ``study`` and the demo share: load each model's predictions on
the same labels (``load_models``), restrict them to the images and classes all of them have (``align_models``),
and score each on one set of bootstrap weights (``score_model``: per-class AUROC and F1, macro AUROC and macro F1,
row 0 observed, rows 1.. replicates). The paired tests are ``cxrlab.evaluate.pairwise.pairwise_tests``; seed
aggregation is ``cxrlab.evaluate.stats.seeds``. Nothing here renders or writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cxrlab.errors import CxrlabError
from cxrlab.evaluate import metrics as m
from cxrlab.evaluate.inputs import Source
from cxrlab.evaluate.matching import Scored, check_fitting_allowed, load_scored, subset_scored
from cxrlab.evaluate.options import EvalOptions
from cxrlab.evaluate.stats.bootstrap import fixed_macro
from cxrlab.evaluate.thresholds import choose_thresholds


@dataclass
class Model:
    """One compared input: its scored data and metric arrays (row 0 observed, rows 1.. replicates)."""

    name: str
    source: Source
    scored: Scored
    info: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)


def load_models(sources: list[Source], index, options: EvalOptions | None = None) -> list[Model]:
    """One ``Model`` per source, scored against ``index``; a source's validation predictions (for thresholds)
    pass the test-data guard first (``options``: ``prefix``, ``logits``, ``allow_test_fitting``,
    ``allow_unverified``). Two sources with one name become ``name`` and ``name#2``."""
    opts = options or EvalOptions()
    prefix, logits = opts.prefix, opts.logits
    models, seen = [], {}
    for src in sources:
        scored, preds = load_scored(src.test, index, prefix, logits)
        name = src.name
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}#{seen[name]}"
        info = manifest_info(src)
        info["model"] = preds.meta.get("model") or info.get("model") or src.name
        model = Model(name, src, scored, info)
        model.arrays["predictions"] = preds  # uncertainty columns, read after alignment
        if src.val is not None:
            val, val_preds = load_scored(src.val, index, prefix, logits)
            record = check_fitting_allowed(val_preds, src.test, opts.allow_test_fitting, "thresholds",
                                           labels=index, allow_unverified=opts.allow_unverified,
                                           run_dir=src.run_dir, test_preds=preds)
            if record:  # --allow-test-fitting / --allow-unverified: recorded in the model's row of comparison.json
                model.info["fitted_on_test" if record.get("fitted_on_test") else "unverified"] = record["reason"]
            model.arrays["val"] = val
        models.append(model)
    return models


def manifest_info(src: Source) -> dict:
    from cxrlab.rundir import RunManifest

    manifest = RunManifest.from_dict(src.manifest())  # one manifest schema (cxrlab.rundir)
    info = {"params": manifest.parameters, "train_seconds": manifest.wall_seconds,
            "images_per_s": manifest.images_per_s, "model": manifest.model, "recipe": manifest.config}
    info["seed_group"] = seed_group(src.run_dir)
    metrics_csv = src.run_dir / "metrics.csv" if src.run_dir else None
    if info["images_per_s"] is None and metrics_csv is not None and metrics_csv.exists():
        import pandas as pd

        try:  # training throughput per epoch lives in metrics.csv
            ips = pd.read_csv(metrics_csv).get("images_per_s")
            info["images_per_s"] = float(ips.mean()) if ips is not None and ips.notna().any() else None
        except (OSError, ValueError, pd.errors.ParserError):
            pass
    return info


def align_models(models: list[Model]) -> tuple[list[Model], list[str]]:
    """Restrict every model to the images and classes all of them have."""
    ids = set(models[0].scored.image_ids)
    classes = list(models[0].scored.classes)
    for model in models[1:]:
        ids &= set(model.scored.image_ids)
        classes = [c for c in classes if c in model.scored.classes]
    if not ids:
        raise CxrlabError("the compared predictions share no image; score the same test split with every model")
    if not classes:
        raise CxrlabError("the compared predictions share no class; check their column names")
    order = [i for i in models[0].scored.image_ids if i in ids]
    notes = []
    every = list(dict.fromkeys(c for model in models for c in model.scored.classes))
    for c in [c for c in every if c not in classes]:  # a class one model lacks is named, never dropped silently
        lacking = [m.name for m in models if c not in m.scored.classes]
        notes.append(f"class {c} is left out of the comparison: {', '.join(lacking)} does not predict it")
    for model in models:
        dropped = len(model.scored.image_ids) - len(order)
        if dropped:
            notes.append(f"{model.name}: {dropped} images not predicted by every model are left out")
        model.scored = subset_scored(model.scored, order, classes)
    return models, notes


def uncertainty_info(model: Model) -> None:
    """``aurc`` (and the score it used) of a model whose predictions carry uncertainty columns, on the aligned
    images; None otherwise."""
    from cxrlab.evaluate.evaluate import uncertainty_block

    block = uncertainty_block(model.scored, model.arrays.pop("predictions")).get("uncertainty")
    model.info["aurc"] = block["aurc"] if block else None
    model.info["aurc_score"] = block["score"] if block else None


def score_model(model: Model, weights: np.ndarray, keep: list[int], method: str) -> None:
    s = model.scored
    aucs = m.class_auroc(s, weights)
    with np.errstate(invalid="ignore"):
        macro_cols = keep if s.task == "multilabel" else list(range(len(s.classes)))
        model.arrays["auroc"], model.arrays["macro_auroc"] = aucs, fixed_macro(aucs[:, macro_cols])
    if s.task == "multiclass":
        r = m.multiclass_from_confusion(m.confusion(s, weights))
        model.arrays["f1"], model.arrays["macro_f1"] = r["f1"], r["macro_f1"]
        return
    val = model.arrays.get("val")
    if val is not None and all(c in val.classes for c in s.classes):
        cols = [val.classes.index(c) for c in s.classes]
        thr = choose_thresholds(val.y[:, cols], val.p[:, cols], method)
        model.info["thresholds"] = f"{method} on validation"
    else:
        thr = np.full(len(s.classes), 0.5)
        model.info["thresholds"] = "fixed 0.5 (no validation predictions)"
    f1 = m.rates_from_counts(m.binary_counts(s, thr, weights))["f1"]
    with np.errstate(invalid="ignore"):
        macro = fixed_macro(f1[:, keep])
    model.arrays["f1"], model.arrays["macro_f1"] = f1, macro


def finite_or_none(x) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def seed_paper(s: Scored) -> dict | None:
    """The seed paper's label-wise accuracy and flattened AUROC (all classes), for contrast only."""
    if s.task != "multilabel":
        return None
    flat = m.micro_auc(s, list(range(len(s.classes))), np.ones((1, s.n_patients)))[0]
    return {"labelwise_accuracy": m.labelwise_accuracy(s), "flattened_auroc": finite_or_none(flat)}


SEED_GROUP_IGNORED = ("name", "source", "train.seed")  # the keys a study's config diff leaves out too


def seed_group(run_dir: Path | None) -> str | None:
    """A key shared exactly by runs whose resolved ``config.yaml`` differs only in ``SEED_GROUP_IGNORED``
    (sha256 of the rest, 12 hex digits); None without a readable config.yaml (never grouped)."""
    import hashlib
    import json

    from cxrlab.rundir import RunDir

    run = RunDir(Path(run_dir)) if run_dir is not None else None
    if run is None or not run.config_path.is_file():
        return None
    config = run.config()  # a garbled one is the one run-file error (resolve_source checked it already)
    flat = {k: v for k, v in _flatten(config).items() if k not in SEED_GROUP_IGNORED}
    return hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def mean_sd(values: list) -> list:
    """[mean, sample sd] of the finite values (sd None for one value; both None for none)."""
    v = np.array([np.nan if x is None else x for x in values], dtype=float)
    v = v[np.isfinite(v)]
    return [finite_or_none(v.mean()), finite_or_none(v.std(ddof=1)) if len(v) > 1 else None] if len(v) else [None, None]
