"""``cxrlab study run|status|report``: declarative comparative studies (library: ``cxrlab.study``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction, data_sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="run a study (arms x seeds, sweeps, ensembles) and report it")
    verbs = p.add_subparsers(dest="study_command", metavar="VERB")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    r = verbs.add_parser("run", help="train every arm x seed of STUDY.yaml into DIR/runs/ and write the report")
    r.add_argument("study", type=Path, help="study file (or a shipped one: studies/cpu_small.yaml)")
    r.add_argument("--out", type=Path, required=True, help="study folder (rerun to resume)")
    r.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                   help="training-config keys for every arm, e.g. data.index=... train.device=cuda")
    r.add_argument("--shard", default=None, metavar="I/N", help="run the I-th of N deterministic shares (1-based)")
    r.add_argument("--arms", nargs="+", default=None, metavar="ARM",
                   help="run only these arms (e.g. one arm per GPU); --shard then splits their runs")
    r.add_argument("--dry-run", action="store_true", help="print the plan and an estimated cost; train nothing")
    r.add_argument("--smoke", action="store_true", help="one epoch per arm, first seed only (tests, CI)")
    r.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    r.add_argument("--no-cost", action="store_true",
                   help="skip measuring each arm's speed after training (the study file's `cost: false`)")
    r.add_argument("--force", action="store_true", help="write into a non-empty --out folder not made by a study")
    r.set_defaults(func=_run)
    s = verbs.add_parser("status", help="arms x seeds: done / running / failed (with the error) / to do")
    s.add_argument("dir", type=Path)
    s.set_defaults(func=_status)
    rep = verbs.add_parser("report", help="rebuild DIR/report/ (HTML, Markdown, JSON) from the finished runs")
    rep.add_argument("dir", type=Path)
    rep.set_defaults(func=_report)
    m = verbs.add_parser("matrix", help="cross-dataset matrix: train the recipe on each source of a merged index and "
                         "on the merge, test every model on every source (studies/cross_dataset.yaml)")
    m.add_argument("study", type=Path, help="study file whose data is a merged index and its split")
    m.add_argument("--out", type=Path, required=True, help="study folder (rerun to resume)")
    m.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                   help="config overrides for every run; data.index/data.split/data.cache set the study's data")
    m.add_argument("--smoke", action="store_true", help="one epoch per run (tests, CI)")
    m.add_argument("--force", action="store_true", help="write into a non-empty --out folder not made by a study")
    m.set_defaults(func=_matrix)


def _run(args: argparse.Namespace) -> int:
    from cxrlab.outputs import output_folder
    from cxrlab.study.runner import check_study_inputs, run_study

    check_study_inputs(args.study, args.out, args.overrides)
    with output_folder(args.out, verb="study run", inputs=[args.study], force=args.force, create=not args.dry_run):
        outcomes = run_study(args.study, args.out, args.overrides, args.shard, args.dry_run, args.smoke,
                             report=not args.no_report, arms=args.arms, cost=False if args.no_cost else None)
    return 1 if any(o == "failed" for o in outcomes.values()) else 0


def _matrix(args: argparse.Namespace) -> int:
    from cxrlab.outputs import output_folder
    from cxrlab.study.matrix_run import run_matrix

    with output_folder(args.out, verb="study matrix", inputs=[args.study], force=args.force):
        m = run_matrix(args.study, args.out, args.overrides, smoke=args.smoke)
    for r in m.trains:
        print(f"trained on {r:>10}: " + "  ".join(f"{t} {m.cell(r, t).macro:.3f}" for t in m.tests))
    print(f"wrote {args.out / 'matrix.json'} and {args.out / 'report' / 'report.html'}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from cxrlab.study.runner import study_status

    rows = study_status(args.dir)
    return 1 if any(r["state"] == "failed" for r in rows) else 0


def _report(args: argparse.Namespace) -> int:
    from cxrlab.study.report import build_report

    print(f"report: {build_report(args.dir).resolve()}")
    return 0
