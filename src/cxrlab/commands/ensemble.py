"""CLI verb ``cxrlab ensemble``: combine predictions files or runs (one library call)."""

from __future__ import annotations

import argparse

from cxrlab.commands import args as A


def register(sub: argparse._SubParsersAction, data_sub: argparse._SubParsersAction) -> None:  # noqa: ARG001
    """Add the verbs to the ``cxrlab`` group (no ``data`` verbs here)."""
    _register_ensemble(sub)


def _register_ensemble(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ensemble", help="combine predictions files or runs (weights fitted on validation)")
    p.add_argument("members", nargs="+", help="test predictions CSVs or run directories")
    p.add_argument("--val", nargs="+", help="validation predictions, one per member (run dirs: automatic)")
    p.add_argument("--labels", help="index or labels file with the validation labels (fitted methods)")
    p.add_argument("--method", default="mean", choices=["mean", "weighted", "class", "rank", "stack"])
    p.add_argument("--allow-test-fitting", action="store_true",
                   help="fit on test predictions anyway (biased; logged and recorded in the sidecar)")
    A.add_allow_unverified(p)
    p.add_argument("--out", required=True, help="output predictions CSV (+ .json sidecar)")
    p.add_argument("--force", action="store_true", help="replace an --out whose .json is another kind of artifact")
    p.set_defaults(func=_ensemble)


def _ensemble(args: argparse.Namespace) -> int:
    from cxrlab.ensemble import ensemble_predictions
    from cxrlab.outputs import check_out_file

    check_out_file(args.out, verb="ensemble", inputs=[*args.members, *(args.val or []), args.labels],
                   force=args.force)
    out = ensemble_predictions(args.members, out=args.out, method=args.method, val=args.val, labels=args.labels,
                               allow_test_fitting=args.allow_test_fitting, allow_unverified=args.allow_unverified)
    print(f"wrote {out}")
    return 0
