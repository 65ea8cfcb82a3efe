"""``cxrlab demo``: the main job on an embedded default (phantom data) or an NIH folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from cxrlab.commands import args as A


def register(sub: argparse._SubParsersAction, data_sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole flow (data -> train 3 models -> evaluate -> compare -> report)")
    p.add_argument("--data", type=Path, help="NIH ChestX-ray14 folder (default: a generated phantom dataset)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default: runs/demo)")
    p.add_argument("--n", type=A.image_count, default=None, help="phantom images (default 800)")
    p.add_argument("--epochs", type=A.epochs, default=None, help="epochs per model (default 6)")
    p.add_argument("--models", nargs="+", default=None, help="subset of: cnn_baseline resnet34_scratch vit_v1")
    p.add_argument("--seed", type=A.seed, default=0)
    p.add_argument("--force", action="store_true", help="write into a non-empty --out folder not made by demo")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from cxrlab.demo import DEMO_MODELS, DemoSettings, run_demo
    from cxrlab.errors import CxrlabError
    from cxrlab.registry import unknown_name_message

    s = DemoSettings(out=args.out, data=args.data, seed=args.seed)
    if args.n is not None:
        s.n_images = args.n
    if args.epochs is not None:
        s.epochs = args.epochs
    if args.models:
        for m in args.models:
            if m not in DEMO_MODELS:
                raise CxrlabError(unknown_name_message("demo model", m, list(DEMO_MODELS)))
        s.models = {m: DEMO_MODELS[m] for m in args.models}
    from cxrlab.outputs import output_folder

    with output_folder(args.out, verb="demo", inputs=[args.data], force=args.force):
        run_demo(s)
    return 0
