"""CLI verb ``cxrlab cv``: k-fold patient-grouped cross-validation of a recipe (one library call)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction, data_sub: argparse._SubParsersAction) -> None:  # noqa: ARG001
    """Add the verbs to the ``cxrlab`` group (no ``data`` verbs here)."""
    _register_cv(sub)


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
