"""CLI verb ``cxrlab pseudo``: pseudo-label an unlabeled pool (one library call)."""

from __future__ import annotations

import argparse
import json

from cxrlab.commands import args as A


def register(sub: argparse._SubParsersAction, data_sub: argparse._SubParsersAction) -> None:  # noqa: ARG001
    """Add the verbs to the ``cxrlab`` group (no ``data`` verbs here)."""
    _register_pseudo(sub)


def _register_pseudo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pseudo", help="pseudo-label an unlabeled pool with class-aware thresholds")
    p.add_argument("run_dir")
    p.add_argument("--pool", required=True, help="a folder of images or an index (its labels are not used)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--thresholds", type=A.probability_list,
                   help="one confidence or one per class, comma-separated (e.g. 0.92,0.9,0.85,0.8)")
    g.add_argument("--quota", type=A.positive_int, help="at most N most confident pseudo-labels per class (balanced)")
    p.add_argument("--weight", type=A.probability, default=0.5, help="sample weight of pseudo-labelled rows")
    p.add_argument("--batch-size", type=A.batch_size, default=16)
    p.add_argument("--out", required=True, help="output folder (index/, split.csv, pseudo.csv, pseudo.json)")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out folder not made by pseudo")
    A.add_allow_unverified(p)
    p.set_defaults(func=_pseudo)


def _pseudo(args: argparse.Namespace) -> int:
    from cxrlab.outputs import output_folder
    from cxrlab.pseudo import pseudo_label

    with output_folder(args.out, verb="pseudo", inputs=[args.run_dir, args.pool], force=args.force):
        report = pseudo_label(args.run_dir, pool=args.pool, out=args.out, thresholds=args.thresholds,
                              quota=args.quota, weight=args.weight, batch_size=args.batch_size,
                              allow_unverified=args.allow_unverified)
    print(json.dumps(report, indent=2))
    return 0
