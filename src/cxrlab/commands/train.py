"""CLI verb ``cxrlab train`` (thin: one library call)."""

from __future__ import annotations

import argparse
import os
from contextlib import nullcontext


def register(subparsers, data_subparsers) -> None:  # noqa: ARG001 - no `data` verbs here
    """Add ``train`` to the ``cxrlab`` group."""
    p = subparsers.add_parser("train", help="train a model from a YAML recipe into a run directory")
    p.add_argument("--config", required=True, help="YAML recipe (see configs/)")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config keys, e.g. --set train.epochs=2 model.pretrained=false (repeatable)")
    p.add_argument("--out", required=True, help="run directory to create (or continue with --resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--force", action="store_true", help="train into a non-empty --out folder that is not a run")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from cxrlab.config import dump_config, load_config
    from cxrlab.train import fit

    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    from cxrlab.outputs import output_folder
    from cxrlab.train.fitting import resolve_device
    from cxrlab.train.precision import resolve_precision

    resolve_precision(cfg.train.amp, resolve_device(cfg.train.device))  # refused before the output folder exists
    data = cfg.data
    # --resume continues the run in --out and writes no config there: its own config.yaml may be the recipe
    config = None if args.resume else args.config
    # under torchrun only rank 0 checks and marks --out (the other ranks write nothing there): two ranks marking
    # one folder at once could each see the other's half-written marker and refuse it
    folder = output_folder(args.out, verb="train", inputs=[config, data.index, data.split, data.cache],
                           force=args.force) if os.environ.get("RANK", "0") == "0" else nullcontext()
    with folder:
        out = fit(cfg, args.out, resume=args.resume)
    print(f"run directory: {out}")
    return 0
