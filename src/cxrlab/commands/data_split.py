"""``cxrlab data split``, ``cxrlab data audit`` and ``cxrlab data cache``."""

from __future__ import annotations

import argparse
from pathlib import Path

from cxrlab.commands import args as A


def register(subparsers: argparse._SubParsersAction, data_subparsers: argparse._SubParsersAction) -> None:
    """Add the split, audit and cache verbs to the ``cxrlab data`` group."""
    p = data_subparsers.add_parser("split", help="patient-level stratified split (also k-fold, official, given)")
    p.add_argument("index", help="DIR/index.csv (or its folder)")
    p.add_argument("--out", required=True, help="split CSV to write (split.json is written beside it)")
    p.add_argument("--val", type=A.fraction, default=0.1, help="validation fraction (default 0.1)")
    p.add_argument("--test", type=A.fraction, default=0.2, help="test fraction (default 0.2)")
    p.add_argument("--folds", type=A.folds, default=None,
                   help="K patient-grouped folds after carving the test set")
    p.add_argument("--official", action="store_true", help="NIH official train_val/test lists; val carved by patient")
    p.add_argument("--keep-given", action="store_true", help="keep the dataset's own (folder) split, audited")
    p.add_argument("--hold-out-source", metavar="NAME", default=None,
                   help="merged index: every image of source NAME in test (the other sources split by --val/--test)")
    p.add_argument("--seed", type=A.seed, default=0)
    p.add_argument("--force", action="store_true", help="replace an --out whose .json is another kind of artifact")
    p.set_defaults(func=_split)

    p = data_subparsers.add_parser("audit", help="leakage audit: shared patients, identical files, class counts")
    p.add_argument("index", help="DIR/index.csv (or its folder)")
    p.add_argument("--split", default=None, help="any CSV with image_id (or Image Index) and split columns")
    p.add_argument("--report", default=None, help="also write the Markdown report here")
    p.add_argument("--json", default=None, help="also write the full audit result as JSON here")
    p.add_argument("--no-hash", action="store_true", help="skip hashing image files (no duplicate-file check)")
    p.add_argument("--min-positives", type=A.non_negative_int, default=5,
                   help="flag val/test classes with fewer positives")
    p.set_defaults(func=_audit)

    p = data_subparsers.add_parser("cache", help="decode + resize every image once into a uint8 memmap")
    p.add_argument("index", help="DIR/index.csv (or its folder)")
    p.add_argument("--out", required=True, help="cache folder (images.u8 + meta.json)")
    p.add_argument("--size", type=A.image_size, default=256, help="side of the square cached images (default 256)")
    p.add_argument("--policy", default="letterbox", choices=["letterbox", "center_crop"])
    p.add_argument("--workers", type=A.workers, default=None, help="processes (default: all cores)")
    p.add_argument("--force", action="store_true", help="rebuild a cache made from another index/size/policy")
    p.set_defaults(func=_cache)


def _split(args: argparse.Namespace) -> int:
    from cxrlab.data.audit import format_audit
    from cxrlab.data.index import load_index
    from cxrlab.data.splits import make_split
    from cxrlab.outputs import check_out_file

    check_out_file(args.out, verb="data split", inputs=[args.index], sidecar="split", force=args.force)
    index = load_index(args.index)
    _, result = make_split(index, args.out, args.val, args.test, args.folds, args.official, args.keep_given, args.seed,
                              args.hold_out_source)
    result["source"] = args.out
    print(format_audit(result), end="")
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.json')}")
    # Only a kept (--keep-given) split can leak; exit 1 like `data audit` so scripts notice.
    return 1 if result["verdict"] == "leakage" else 0


def _audit(args: argparse.Namespace) -> int:
    from cxrlab.data.audit import audit_index, format_audit
    from cxrlab.data.index import load_index
    from cxrlab.outputs import check_out_file
    from cxrlab.utils import atomic_write_text, write_json

    inputs = [args.index, args.split]
    if args.report:
        check_out_file(args.report, verb="data audit", inputs=inputs, suffix=(".md", ".txt"), sidecar=None,
                       option="--report")
    if args.json:
        check_out_file(args.json, verb="data audit", inputs=[*inputs, args.report], suffix=".json", sidecar=None,
                       option="--json")
    result = audit_index(load_index(args.index), args.split, not args.no_hash, args.min_positives)
    text = format_audit(result)
    print(text, end="")
    if args.report:
        atomic_write_text(args.report, text)
    if args.json:
        write_json(args.json, result)
    return 1 if result["verdict"] == "leakage" else 0


def _cache(args: argparse.Namespace) -> int:
    from cxrlab.data.cache import build_cache
    from cxrlab.data.index import load_index
    from cxrlab.outputs import output_folder

    with output_folder(args.out, verb="data cache", inputs=[args.index], force=args.force):
        report = build_cache(load_index(args.index), args.out, args.size, args.policy, args.workers,
                             force=args.force)
    print(
        f"cache {args.out}: {report['ok']} images ok, {report['failed']} failed "
        f"({report['built']} built now, {report['reused']} reused) in {report['seconds']:.1f} s"
    )
    for image_id, msg in list(report["errors"].items())[:10]:
        print(f"  failed {image_id}: {msg}")
    return 0
