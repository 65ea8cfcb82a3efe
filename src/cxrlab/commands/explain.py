"""CLI verb ``cxrlab explain``: heat maps scored against boxes (one library call)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cxrlab.commands import args as A


def register(sub: argparse._SubParsersAction, data_sub: argparse._SubParsersAction) -> None:  # noqa: ARG001
    """Add the verbs to the ``cxrlab`` group (no ``data`` verbs here)."""
    _register_explain(sub)


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
    p.add_argument("--boxes-size", type=A.positive_int, help="the image size the box coordinates refer to (NIH: 1024)")
    p.add_argument("--classes", nargs="+", help="classes to explain (default: top predicted / boxed finding)")
    p.add_argument("--layer", help="module to hook instead of the model's cam_layer (e.g. layer3)")
    p.add_argument("--top-k", type=A.small_count, default=1, help="explain the k most probable classes per image")
    p.add_argument("--max-images", type=A.image_count, default=64, help="at most this many images (boxed ones first)")
    p.add_argument("--threshold", type=A.unit_interval, default=0.5,
                   help="map threshold for IoU / intersection-over-box")
    p.add_argument("--no-sanity", action="store_true", help="skip the model-randomisation check")
    p.add_argument("--json", action="store_true",
                   help="write peaks.json (raw maps' peak locations), localization.json and records.csv; "
                   "no PNGs or gallery")
    p.add_argument("--bootstrap", type=A.bootstrap, default=1000, help="bootstrap resamples for the intervals")
    p.add_argument("--batch-size", type=A.batch_size, default=8)
    p.add_argument("--out", help="output folder (default: RUN_DIR/explain, beside the run's report)")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out folder not made by explain")
    p.set_defaults(func=_explain)


def _explain(args: argparse.Namespace) -> int:
    from cxrlab.explain.run import ExplainOptions, explain_run
    from cxrlab.outputs import output_folder

    out = args.out or str(Path(args.run_dir) / "explain")
    options = ExplainOptions(
        images=args.images, index=args.index, split=args.split,
        methods=tuple(m.strip() for m in args.method.split(",") if m.strip()), boxes=args.boxes,
        boxes_size=args.boxes_size, classes=tuple(args.classes) if args.classes else None, top_k=args.top_k,
        max_images=args.max_images, threshold=args.threshold, sanity=not args.no_sanity, json_only=args.json,
        n_boot=args.bootstrap, batch_size=args.batch_size, layer=args.layer,
    )
    inputs = [args.run_dir, args.images, args.index, args.boxes]
    with output_folder(out, verb="explain", inputs=inputs, force=args.force):
        summary = explain_run(args.run_dir, out=out, options=options)
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
