"""CLI verbs ``cxrlab uncertainty`` (MC dropout / TTA predictions) and ``cxrlab selective``
(risk-coverage and abstention)."""

from __future__ import annotations

import argparse
import json

from cxrlab.commands import args as A


def register(sub: argparse._SubParsersAction, data_sub: argparse._SubParsersAction) -> None:  # noqa: ARG001
    """Add the verbs to the ``cxrlab`` group (no ``data`` verbs here)."""
    _register_uncertainty(sub)
    _register_selective(sub)


def _register_uncertainty(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("uncertainty", help="MC-dropout or TTA predictions with std/entropy/MI columns")
    p.add_argument("run_dir")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--method", default="mc_dropout", choices=["mc_dropout", "tta"])
    p.add_argument("--samples", type=A.small_count, default=30,
                   help="MC-dropout samples (TTA: at most this many views)")
    p.add_argument("--tta-flip", action="store_true", help="add horizontal flips to TTA (not medically safe)")
    p.add_argument("--batch-size", type=A.batch_size, default=16)
    p.add_argument("--out", required=True, help="output predictions CSV")
    p.add_argument("--force", action="store_true", help="replace an --out whose .json is another kind of artifact")
    p.set_defaults(func=_uncertainty)


def _uncertainty(args: argparse.Namespace) -> int:
    from cxrlab.outputs import check_out_file
    from cxrlab.uncertainty import uncertainty_predictions

    check_out_file(args.out, verb="uncertainty", inputs=[args.run_dir], force=args.force)
    out = uncertainty_predictions(args.run_dir, split=args.split, method=args.method, out=args.out,
                                  samples=args.samples, batch_size=args.batch_size, tta_flip=args.tta_flip)
    print(f"wrote {out}")
    return 0


def _register_selective(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("selective", help="risk-coverage curve, abstention threshold from val, review CSV")
    p.add_argument("--val", required=True, help="validation predictions CSV")
    p.add_argument("--test", required=True, help="test predictions CSV")
    p.add_argument("--labels", required=True, help="index or labels file")
    p.add_argument("--coverage", type=A.probability, default=0.9, help="target coverage in (0, 1]")
    p.add_argument("--score", default="auto", choices=["auto", "confidence", "std", "entropy", "mi"],
                   help="uncertainty score (auto: std columns when present, else confidence)")
    p.add_argument("--std-threshold", type=A.non_negative_float, default=None,
                   help="also flag any image whose std exceeds this (S2's rule: 0.15)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out folder not made by selective")
    A.add_allow_unverified(p)
    p.set_defaults(func=_selective)


def _selective(args: argparse.Namespace) -> int:
    from cxrlab.evaluate.selective import selective_prediction
    from cxrlab.outputs import output_folder

    with output_folder(args.out, verb="selective", inputs=[args.val, args.test, args.labels], force=args.force):
        summary = selective_prediction(args.val, test=args.test, labels=args.labels, out=args.out,
                                       coverage=args.coverage, score=args.score, std_threshold=args.std_threshold,
                                       allow_unverified=args.allow_unverified)
    print(json.dumps(summary["test"], indent=2))
    return 0
