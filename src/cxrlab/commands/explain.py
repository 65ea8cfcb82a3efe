"""CLI verbs: explain, ensemble, uncertainty, selective, cv, pseudo. Each handler calls one library function."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction, data_sub: argparse._SubParsersAction) -> None:
    _register_explain(sub)
    _register_ensemble(sub)
    _register_uncertainty(sub)
    _register_selective(sub)
    _register_cv(sub)
    _register_pseudo(sub)


# ----------------------------------------------------------------------------- explain
def _register_explain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="heat maps (Grad-CAM & co., attention rollout) scored against boxes")
    p.add_argument("run_dir", help="a run directory (or checkpoint file)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="an image file or a folder of images")
    src.add_argument("--index", help="an index (folder or index.csv); use with --split")
    p.add_argument("--split", help="with --index: train|val|test rows of the run's split.csv (default: all rows)")
    p.add_argument("--method", default="gradcam", help="gradcam, gradcam++, hirescam, eigencam, rollout; "
                   "comma-separated for several")
    p.add_argument("--boxes", help="boxes CSV (NIH BBox_List_2017 layout); default: the index's boxes")
    p.add_argument("--boxes-size", type=int, help="the image size the box coordinates refer to (NIH: 1024)")
    p.add_argument("--classes", nargs="+", help="classes to explain (default: top predicted / boxed finding)")
    p.add_argument("--layer", help="module to hook instead of the model's cam_layer (e.g. layer3)")
    p.add_argument("--top-k", type=int, default=1, help="explain the k most probable classes per image")
    p.add_argument("--max-images", type=int, default=64, help="at most this many images (boxed ones first)")
    p.add_argument("--threshold", type=float, default=0.5, help="map threshold for IoU / intersection-over-box")
    p.add_argument("--no-sanity", action="store_true", help="skip the model-randomisation check")
    p.add_argument("--json", action="store_true",
                   help="write peaks.json (raw maps' peak locations), localization.json and records.csv; "
                   "no PNGs or gallery")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--out", help="output folder (default: RUN_DIR/explain, beside the run's report)")
    p.set_defaults(func=_explain)


def _explain(args: argparse.Namespace) -> int:
    from cxrlab.explain.run import explain_run

    out = args.out or str(Path(args.run_dir) / "explain")
    summary = explain_run(
        args.run_dir, out, images=args.images, index=args.index, split=args.split,
        methods=[m.strip() for m in args.method.split(",") if m.strip()], boxes=args.boxes,
        boxes_size=args.boxes_size, classes=args.classes, top_k=args.top_k, max_images=args.max_images,
        threshold=args.threshold, sanity=not args.no_sanity, json_only=args.json, n_boot=args.bootstrap,
        batch_size=args.batch_size, layer=args.layer,
    )
    methods = summary.get("methods", {})
    brief = {m: {k: round(v["mean"], 3) for k, v in per["all"].items() if k != "n"} for m, per in methods.items()}
    print(json.dumps({"out": out, "scored": summary["n_scored_pairs"], "all_findings": brief,
                      "sanity": summary.get("sanity", {}).get("verdict")}, indent=2))
    _say_where(Path(args.run_dir), Path(out), args.json)
    return 0


def _say_where(run_dir: Path, out: Path, json_only: bool) -> None:
    """Where the gallery went, and whether the run's evaluation report will pick it up (stderr)."""
    import sys

    what = out / "localization.json" if json_only else out / "gallery.html"
    print(f"wrote {what}", file=sys.stderr)
    if run_dir.is_dir() and out.resolve() == (run_dir / "explain").resolve():
        print(f"`cxrlab evaluate {run_dir} --out DIR` includes these localization scores"
              + ("" if json_only else " and the gallery") + " in DIR/report.html", file=sys.stderr)
    elif run_dir.is_dir():
        print(f"to include it in the run's report, write it to {run_dir / 'explain'} (the default --out), then run "
              f"`cxrlab evaluate {run_dir} --out DIR`", file=sys.stderr)


# ----------------------------------------------------------------------------- ensemble
def _register_ensemble(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ensemble", help="combine predictions files or runs (weights fitted on validation)")
    p.add_argument("members", nargs="+", help="test predictions CSVs or run directories")
    p.add_argument("--val", nargs="+", help="validation predictions, one per member (run dirs: automatic)")
    p.add_argument("--labels", help="index or labels file with the validation labels (fitted methods)")
    p.add_argument("--method", default="mean", choices=["mean", "weighted", "class", "rank", "stack"])
    p.add_argument("--allow-test-fitting", action="store_true",
                   help="fit on test predictions anyway (biased; logged and recorded in the sidecar)")
    p.add_argument("--out", required=True, help="output predictions CSV (+ .json sidecar)")
    p.set_defaults(func=_ensemble)


def _ensemble(args: argparse.Namespace) -> int:
    from cxrlab.ensemble import ensemble_predictions

    out = ensemble_predictions(args.members, args.out, args.method, val=args.val, labels=args.labels,
                               allow_test_fitting=args.allow_test_fitting)
    print(f"wrote {out}")
    return 0


# ----------------------------------------------------------------------------- uncertainty
def _register_uncertainty(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("uncertainty", help="MC-dropout or TTA predictions with std/entropy/MI columns")
    p.add_argument("run_dir")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--method", default="mc_dropout", choices=["mc_dropout", "tta"])
    p.add_argument("--samples", type=int, default=30, help="MC-dropout samples (TTA: at most this many views)")
    p.add_argument("--tta-flip", action="store_true", help="add horizontal flips to TTA (not medically safe)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", required=True, help="output predictions CSV")
    p.set_defaults(func=_uncertainty)


def _uncertainty(args: argparse.Namespace) -> int:
    from cxrlab.uncertainty import uncertainty_predictions

    out = uncertainty_predictions(args.run_dir, args.split, args.method, args.out, samples=args.samples,
                                  batch_size=args.batch_size, tta_flip=args.tta_flip)
    print(f"wrote {out}")
    return 0


def _register_selective(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("selective", help="risk-coverage curve, abstention threshold from val, review CSV")
    p.add_argument("--val", required=True, help="validation predictions CSV")
    p.add_argument("--test", required=True, help="test predictions CSV")
    p.add_argument("--labels", required=True, help="index or labels file")
    p.add_argument("--coverage", type=float, default=0.9, help="target coverage in (0, 1]")
    p.add_argument("--score", default="auto", choices=["auto", "confidence", "std", "entropy", "mi"],
                   help="uncertainty score (auto: std columns when present, else confidence)")
    p.add_argument("--std-threshold", type=float, default=None,
                   help="also flag any image whose std exceeds this (S2's rule: 0.15)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=_selective)


def _selective(args: argparse.Namespace) -> int:
    from cxrlab.uncertainty import selective_prediction

    summary = selective_prediction(args.val, args.test, args.labels, args.out, coverage=args.coverage,
                                   score=args.score, std_threshold=args.std_threshold)
    print(json.dumps(summary["test"], indent=2))
    return 0


# ----------------------------------------------------------------------------- cv and pseudo
def _register_cv(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cv", help="k-fold patient-grouped cross-validation of a recipe")
    p.add_argument("--config", required=True)
    p.add_argument("--set", nargs="+", default=[], dest="overrides", metavar="KEY=VALUE")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--no-resume", action="store_true",
                   help="refuse to reuse an existing output folder (default: skip finished folds)")
    p.add_argument("--no-test-ensemble", action="store_true", help="skip the fold-model ensemble on test")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cv)


def _cv(args: argparse.Namespace) -> int:
    from cxrlab.config import load_config
    from cxrlab.cv import run_cv

    config = load_config(args.config, overrides=args.overrides)
    summary = run_cv(config, args.folds, args.out, resume=not args.no_resume,
                     test_ensemble=not args.no_test_ensemble)
    print(json.dumps(summary["aggregate"], indent=2))
    return 0


def _register_pseudo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pseudo", help="pseudo-label an unlabeled pool with class-aware thresholds")
    p.add_argument("run_dir")
    p.add_argument("--pool", required=True, help="a folder of images or an index (its labels are not used)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--thresholds", help="one confidence or one per class, comma-separated (e.g. 0.92,0.9,0.85,0.8)")
    g.add_argument("--quota", type=int, help="at most N most confident pseudo-labels per class (balanced)")
    p.add_argument("--weight", type=float, default=0.5, help="sample weight of pseudo-labelled rows")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_pseudo)


def _pseudo(args: argparse.Namespace) -> int:
    from cxrlab.pseudo import pseudo_label

    thresholds = [float(t) for t in args.thresholds.split(",")] if args.thresholds else None
    report = pseudo_label(args.run_dir, args.pool, args.out, thresholds=thresholds, quota=args.quota,
                          weight=args.weight, batch_size=args.batch_size)
    print(json.dumps(report, indent=2))
    return 0
