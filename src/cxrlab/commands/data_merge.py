"""``cxrlab data merge`` (several indexes into one) and ``cxrlab data phantom-sources`` (three phantom datasets)."""

from __future__ import annotations

import argparse
import shlex

from cxrlab.commands import args as A


def register(subparsers, data_subparsers) -> None:
    """Add ``data merge`` and ``data phantom-sources`` to the ``cxrlab data`` group."""
    p = data_subparsers.add_parser("merge", help="merge indexes of several datasets into one (source column, "
                                   "namespaced patients, harmonised findings, unknown where a source does not label)")
    p.add_argument("indexes", nargs="+", metavar="[NAME=]IDX", help="member index folders (NAME= sets the source name)")
    p.add_argument("--out", required=True, help="merged index folder (index.csv, index.json, merge.json, "
                   "validation.md)")
    p.add_argument("--approximate", action="store_true",
                   help="also merge approximate pairs of findings (e.g. Nodule ~ Nodule or Mass); listed either way")
    p.add_argument("--force", action="store_true", help="write into a non-empty folder not made by data merge")
    p.set_defaults(func=_merge)

    p = data_subparsers.add_parser("phantom-sources", help="write three phantom datasets in NIH, CheXpert and "
                                   "PadChest layouts (different findings and exposure styles) and index them")
    p.add_argument("--out", required=True, help="output folder (nih/, chexpert/, padchest/, index/NAME)")
    p.add_argument("--n", type=A.positive_int, default=120, help="images per source (default 120)")
    p.add_argument("--size", type=A.positive_int, default=64, help="image side in pixels (default 64)")
    p.add_argument("--seed", type=A.seed, default=0)
    p.add_argument("--force", action="store_true", help="write into a non-empty folder not made by this verb")
    p.set_defaults(func=_phantom_sources)


def _merge(args: argparse.Namespace) -> int:
    from cxrlab.data.merge import merge_indexes, parse_member_args
    from cxrlab.outputs import output_folder

    items = parse_member_args(args.indexes)
    with output_folder(args.out, verb="data merge", inputs=[p for _, p in items], force=args.force):
        index, report = merge_indexes(items, args.out, approximate=args.approximate)
    for s in report["sources"]:
        print(f"source {s['name']}: {s['images']} images, {s['patients']} patients, labels "
              f"{len(s['labelled'])} of {len(index.classes)} findings (unknown: {', '.join(s['unknown']) or 'none'})")
    for pair in report["approximate_pairs"]:
        print(f"approximate: {pair['a']} ~ {pair['b']} ({'merged' if pair['merged'] else 'kept apart'}): "
              f"{pair['reason']}")
    print(f"wrote {index.path} ({len(index)} images, {len(index.classes)} findings), merge.json and validation.md")
    print(f"next: cxrlab data split {shlex.quote(str(index.path))} --out "
          f"{shlex.quote(str(index.path.parent / 'split.csv'))}")
    return 0


def _phantom_sources(args: argparse.Namespace) -> int:
    from cxrlab.data.phantom_sources import index_phantom_sources
    from cxrlab.outputs import output_folder

    with output_folder(args.out, verb="data phantom-sources", force=args.force):
        indexes = index_phantom_sources(args.out, n=args.n, size=args.size, seed=args.seed)
    print("wrote and indexed " + ", ".join(f"{k} ({v})" for k, v in indexes.items()))
    print("next: cxrlab data merge " + " ".join(shlex.quote(str(v)) for v in indexes.values()) + " --out MERGED")
    return 0
