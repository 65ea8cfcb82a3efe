"""CLI verbs ``cxrlab train`` and ``cxrlab data preview`` (thin: one library call each)."""

from __future__ import annotations

import argparse

from cxrlab.commands import args as A


def register(subparsers, data_subparsers) -> None:
    """Add the verbs to the ``cxrlab`` and ``cxrlab data`` groups."""
    p = subparsers.add_parser("train", help="train a model from a YAML recipe into a run directory")
    p.add_argument("--config", required=True, help="YAML recipe (see configs/)")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config keys, e.g. --set train.epochs=2 model.pretrained=false (repeatable)")
    p.add_argument("--out", required=True, help="run directory to create (or continue with --resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--force", action="store_true", help="train into a non-empty --out folder that is not a run")
    p.set_defaults(func=_train)

    p = data_subparsers.add_parser("preview", help="write a grid PNG of augmented samples of a policy")
    p.add_argument("--index", required=True, help="index folder or index.csv")
    p.add_argument("--policy", default="medical", help="none, paper, medical, lab_a or lab_b")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--n", type=A.positive_int, default=16, help="number of images")
    p.add_argument("--cache", help="cache folder (faster; else images are decoded from disk)")
    p.add_argument("--image-size", type=A.positive_int, default=224)
    p.add_argument("--clahe", action="store_true", help="apply CLAHE first")
    p.add_argument("--seed", type=A.seed, default=0)
    p.set_defaults(func=_preview)


def _train(args: argparse.Namespace) -> int:
    from cxrlab.config import dump_config, load_config
    from cxrlab.train import fit

    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    from cxrlab.outputs import output_folder

    data = cfg.data
    with output_folder(args.out, verb="train", inputs=[args.config, data.index, data.split, data.cache],
                       force=args.force):
        out = fit(cfg, args.out, resume=args.resume)
    print(f"run directory: {out}")
    return 0


def _preview(args: argparse.Namespace) -> int:
    from cxrlab.data.transforms import preview_grid
    from cxrlab.outputs import check_out_file

    check_out_file(args.out, verb="data preview", inputs=[args.index, args.cache], suffix=".png", sidecar=None)
    path = preview_grid(args.index, args.out, policy=args.policy, n=args.n, cache=args.cache,
                        image_size=args.image_size, seed=args.seed, clahe=args.clahe)
    print(f"wrote {path}")
    return 0
