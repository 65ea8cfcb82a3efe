"""CLI verbs ``cxrlab evaluate``, ``cxrlab compare`` and ``cxrlab calibrate``."""

from __future__ import annotations

import argparse
import sys

from cxrlab.commands import args as A


def register(subparsers, data_subparsers) -> None:  # noqa: ARG001 - no `data` verbs here
    p = subparsers.add_parser("evaluate", help="score predictions against labels: metrics.json + report")
    p.add_argument("predictions", help="predictions CSV (ours or another tool's) or a run directory")
    p.add_argument("--labels", help="index folder, index.csv, NIH Data_Entry CSV or labels CSV (default: the run's)")
    p.add_argument("--out", required=True, help="output folder for metrics.json, report.html, report.md")
    p.add_argument("--val-predictions", help="validation predictions for thresholds and temperature scaling")
    p.add_argument("--threshold-method", default="youden", help="youden | max_f1 | sens:X | spec:X | fixed:X")
    p.add_argument("--by", help="subgroup analysis over index columns, e.g. sex,age,view (age in --age-bands)")
    p.add_argument("--age-bands", help="age band edges for --by age (default 40,60,80)")
    p.add_argument("--min-group", type=A.positive_int, default=30, help="smallest group scored by --by (default 30)")
    p.add_argument("--match", default="exact", help="class matching through the shared findings table: exact "
                   "(default) | approximate (also score overlapping findings, e.g. Consolidation ~ Airspace opacity)")
    p.add_argument("--internal", help="the same model's predictions (or run) on its own test set: adds an unpaired "
                   "internal-vs-external comparison (bootstrap CI of the difference, not DeLong)")
    p.add_argument("--internal-labels", help="labels of --internal (default: the run's index)")
    _common(p)
    p.set_defaults(func=_evaluate)

    c = subparsers.add_parser("compare", help="compare models on the same images: paired tests + report")
    c.add_argument("inputs", nargs="+", help="run directories or predictions CSVs (two or more)")
    c.add_argument("--labels", help="index folder, index.csv, NIH Data_Entry CSV or labels CSV (default: the run's)")
    c.add_argument("--out", required=True, help="output folder for comparison.json/.csv and the reports")
    c.add_argument("--threshold-method", default="youden", help="thresholds for F1, chosen on each run's val")
    c.add_argument("--by", help="one subgroup table per model over index columns, e.g. sex,age,view")
    c.add_argument("--age-bands", help="age band edges for --by age (default 40,60,80)")
    c.add_argument("--min-group", type=A.positive_int, default=30, help="smallest group scored by --by (default 30)")
    _common(c)
    c.set_defaults(func=_compare)

    k = subparsers.add_parser("calibrate", help="fit temperature scaling on validation, apply to test predictions")
    k.add_argument("val", help="validation predictions CSV (where the temperature is fitted)")
    k.add_argument("test", help="predictions CSV to calibrate")
    k.add_argument("--labels", required=True, help="index folder, index.csv, NIH Data_Entry CSV or labels CSV")
    k.add_argument("--out", required=True, help="calibrated predictions CSV to write")
    k.add_argument("--prefix", help="class column prefix such as prob_ (auto-detected by default)")
    k.add_argument("--logits", action="store_true", help="both CSVs hold logits (the output holds probabilities)")
    k.add_argument("--allow-test-fitting", action="store_true",
                   help="allow fitting on test predictions (biased; logged loudly)")
    A.add_allow_unverified(k)
    k.add_argument("--force", action="store_true", help="replace an --out whose .json is another kind of artifact")
    k.set_defaults(func=_calibrate)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bootstrap", type=A.bootstrap, default=1000,
                   help="patient-level bootstrap replicates (default 1000)")
    p.add_argument("--seed", type=A.seed, default=0, help="bootstrap seed (recorded in the output)")
    p.add_argument("--exact-below", type=A.int_range(1, 10_000, "number of patients"),
                   help="classes with fewer positive or negative patients get the paired permutation test instead "
                   "of DeLong's, no interval, and are flagged (default 25; docs/evaluation.md)")
    p.add_argument("--prefix", help="class column prefix such as prob_ (auto-detected by default)")
    p.add_argument("--logits", action="store_true", help="the CSV holds logits: apply sigmoid/softmax first")
    p.add_argument("--exclude", default="No Finding",
                   help="comma-separated classes left out of the macro average (default 'No Finding'; '' for none)")
    p.add_argument("--no-report", action="store_true", help="write the JSON/CSV only")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out folder made by another verb")
    p.add_argument("--allow-test-fitting", action="store_true",
                   help="allow fitting thresholds/temperature on test predictions (biased; logged loudly)")
    A.add_allow_unverified(p)


def _evaluate(args: argparse.Namespace) -> int:
    from cxrlab.evaluate.evaluate import evaluate_predictions, summary_lines
    from cxrlab.evaluate.options import EvalOptions
    from cxrlab.outputs import output_folder

    inputs = [args.predictions, args.labels, args.val_predictions, args.internal, args.internal_labels]
    with output_folder(args.out, verb="evaluate", inputs=inputs, force=args.force):
        result = evaluate_predictions(
            args.predictions, labels=args.labels, out=args.out, val_predictions=args.val_predictions,
            options=EvalOptions.from_args(args), report=not args.no_report, internal=args.internal,
            internal_labels=args.internal_labels,
        )
    print("\n".join(summary_lines(result)), file=sys.stderr)
    print(f"wrote {args.out}/metrics.json" + ("" if args.no_report else f" and {args.out}/report.html"))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from cxrlab.evaluate.compare import compare_runs, summary_lines
    from cxrlab.evaluate.options import EvalOptions
    from cxrlab.outputs import output_folder

    with output_folder(args.out, verb="compare", inputs=[*args.inputs, args.labels], force=args.force):
        result = compare_runs(args.inputs, labels=args.labels, out=args.out, options=EvalOptions.from_args(args),
                              report=not args.no_report)
    print("\n".join(summary_lines(result)), file=sys.stderr)
    print(f"wrote {args.out}/comparison.json" + ("" if args.no_report else f" and {args.out}/report.html"))
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from cxrlab.evaluate.calibration import calibrate_files
    from cxrlab.outputs import check_out_file

    check_out_file(args.out, verb="calibrate", inputs=[args.val, args.test, args.labels], force=args.force)
    summary = calibrate_files(args.val, test=args.test, out=args.out, labels=args.labels, prefix=args.prefix,
                              allow_test_fitting=args.allow_test_fitting, logits=args.logits,
                              allow_unverified=args.allow_unverified)
    temps = ", ".join(f"{k} {v:.3f}" for k, v in summary["temperature"].items())
    print(f"temperature fitted on {summary['n_val']} validation images: {temps}", file=sys.stderr)
    print(f"wrote {summary['out']}")
    return 0
