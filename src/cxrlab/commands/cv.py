"""CLI verb ``cxrlab cv``: k-fold patient-grouped cross-validation of a recipe (one library call)."""

from __future__ import annotations

import argparse
import json

from cxrlab.commands import args as A


def register(sub: argparse._SubParsersAction, data_sub: argparse._SubParsersAction) -> None:  # noqa: ARG001
    """Add the verbs to the ``cxrlab`` group (no ``data`` verbs here)."""
    _register_cv(sub)


def _register_cv(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cv", help="k-fold patient-grouped cross-validation of a recipe")
    p.add_argument("--config", required=True)
    p.add_argument("--set", nargs="+", default=[], dest="overrides", metavar="KEY=VALUE")
    p.add_argument("--folds", type=A.folds, default=5)
    p.add_argument("--no-resume", action="store_true",
                   help="refuse to reuse an existing output folder (default: skip finished folds)")
    p.add_argument("--no-test-ensemble", action="store_true", help="skip the fold-model ensemble on test")
    p.add_argument("--inner-val", type=float, default=0.2,
                   help="share of the training folds' patients held out (per fold) to select the checkpoint on; "
                        "the outer fold is scored once (default 0.2)")
    p.add_argument("--out", required=True)
    p.add_argument("--force", action="store_true", help="write into a non-empty --out folder not made by cv")
    p.set_defaults(func=_cv)


def _cv(args: argparse.Namespace) -> int:
    from cxrlab.config import load_config
    from cxrlab.cv import check_cv_options, run_cv
    from cxrlab.outputs import output_folder, require_inputs

    config = load_config(args.config, overrides=args.overrides)
    d = config.data
    check_cv_options(args.folds, args.inner_val)  # bad options first: they need no data to be refused
    require_inputs([d.index, d.split, d.cache], verb="cv")  # run_cv writes cv_settings.json before reading them
    with output_folder(args.out, verb="cv", inputs=[args.config, d.index, d.split, d.cache], force=args.force):
        summary = run_cv(config, folds=args.folds, out=args.out, resume=not args.no_resume,
                         test_ensemble=not args.no_test_ensemble, inner_val=args.inner_val,
                         progress=lambda line: print(line, flush=True))
    print(json.dumps(summary["aggregate"], indent=2))
    return 0
