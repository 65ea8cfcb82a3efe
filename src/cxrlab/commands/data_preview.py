"""CLI verb ``cxrlab data preview``: a grid PNG of augmented samples of a policy (one library call)."""

from __future__ import annotations

import argparse

from cxrlab.commands import args as A


def register(subparsers, data_subparsers) -> None:  # noqa: ARG001 - a `data` verb only
    """Add ``preview`` to the ``cxrlab data`` group."""
    p = data_subparsers.add_parser("preview", help="write a grid PNG of augmented samples of a policy")
    p.add_argument("--index", required=True, help="index folder or index.csv")
    p.add_argument("--policy", default="medical", help="none, paper, medical, lab_a or lab_b")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--n", type=A.small_count, default=16, help="number of images")
    p.add_argument("--cache", help="cache folder (faster; else images are decoded from disk)")
    p.add_argument("--image-size", type=A.image_size, default=224)
    p.add_argument("--clahe", action="store_true", help="apply CLAHE first")
    p.add_argument("--seed", type=A.seed, default=0)
    p.set_defaults(func=_preview)


def _preview(args: argparse.Namespace) -> int:
    from cxrlab.data.transforms import preview_grid
    from cxrlab.outputs import check_out_file

    check_out_file(args.out, verb="data preview", inputs=[args.index, args.cache], suffix=".png", sidecar=None)
    path = preview_grid(args.index, args.out, policy=args.policy, n=args.n, cache=args.cache,
                        image_size=args.image_size, seed=args.seed, clahe=args.clahe)
    print(f"wrote {path}")
    return 0
