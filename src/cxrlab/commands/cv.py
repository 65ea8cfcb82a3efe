"""CLI verbs ``cxrlab cv`` (k-fold patient-grouped cross-validation of a recipe) and ``cxrlab select`` (nested
cross-validation choosing among candidate recipes); one library call each."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cxrlab.commands import args as A


def register(sub: argparse._SubParsersAction, data_sub: argparse._SubParsersAction) -> None:  # noqa: ARG001
    """Add the verbs to the ``cxrlab`` group (no ``data`` verbs here)."""
    _register_cv(sub)
    _register_select(sub)


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


def _register_select(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("select", help="choose among candidate recipes by nested cross-validation (honest estimate)")
    p.add_argument("--candidate", action="append", required=True, dest="candidates", metavar="NAME=CONFIG[,K=V...]",
                   help="a candidate: a recipe file or built-in name, then its overrides, comma-separated; "
                   "tta=shifts predicts with shift TTA (shares the model of the same recipe without it); repeat")
    p.add_argument("--set", nargs="+", default=[], dest="overrides", metavar="KEY=VALUE",
                   help="overrides for every candidate (e.g. data.index=... data.split=... data.cache=...)")
    p.add_argument("--folds", type=A.folds, default=3, help="outer folds (default 3)")
    p.add_argument("--inner-val", type=A.fraction, default=0.2,
                   help="share of the training folds' patients held out (per outer fold) to choose the epoch and "
                   "the candidate on; the outer fold is scored once, for the winner only (default 0.2)")
    p.add_argument("--fold", type=A.non_negative_int, help="do outer fold K only and write no summary (spread the "
                   "folds over processes; rerun without --fold to write select.json from the finished folds)")
    p.add_argument("--no-resume", action="store_true", help="refuse to reuse an existing output folder")
    p.add_argument("--no-diagnostic", action="store_true",
                   help="skip scoring every candidate on the outer folds (the non-nested figure, for contrast)")
    p.add_argument("--out", required=True)
    p.add_argument("--force", action="store_true", help="write into a non-empty --out folder not made by select")
    p.set_defaults(func=_select)


def _select(args: argparse.Namespace) -> int:
    from cxrlab.outputs import output_folder
    from cxrlab.selection import parse_candidate, run_selection

    candidates = [parse_candidate(spec, args.overrides) for spec in args.candidates]
    d = candidates[0].config.data
    # the candidates' recipe files are inputs too: --out may not land on one
    recipes = [Path(spec.split("=", 1)[1].split(",", 1)[0]) for spec in args.candidates]
    inputs = [r for r in recipes if r.is_file()] + [d.index, d.split, d.cache]
    with output_folder(args.out, verb="select", inputs=inputs, force=args.force):
        summary = run_selection(candidates, folds=args.folds, out=args.out, resume=not args.no_resume,
                                inner_val=args.inner_val, progress=lambda line: print(line, flush=True),
                                diagnostic=not args.no_diagnostic, only_fold=args.fold)
    keys = ("fold",) if args.fold is not None else ("outer", "wins", "chosen")
    print(json.dumps({k: summary[k] for k in keys}, indent=2))
    return 0
