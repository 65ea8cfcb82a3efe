"""``cxrlab data phantom`` and ``cxrlab data index``."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from cxrlab.commands import args as A

FORMATS = ("nih", "csv", "folder", "chexpert", "mimic", "padchest", "vindr", "rsna")


def register(subparsers, data_subparsers) -> None:
    """Add ``data phantom`` and ``data index`` to the ``cxrlab data`` group."""
    p = data_subparsers.add_parser("phantom", help="write a synthetic chest X-ray dataset with planted findings")
    p.add_argument("--out", required=True, help="output folder (images/, labels.csv, BBox_List_2017.csv)")
    p.add_argument("--n", type=A.image_count, default=200, help="number of images (default 200)")
    p.add_argument("--task", choices=["multilabel", "multiclass"], default="multilabel")
    p.add_argument("--size", type=A.image_size, default=256, help="image side in pixels (default 256)")
    p.add_argument("--seed", type=A.seed, default=0)
    p.add_argument("--contrast", type=A.positive_float, default=1.0,
                   help="finding brightness multiplier (1 easy, 0.3 hard)")
    p.add_argument("--finding-scale", type=A.positive_float, default=1.0, help="finding size multiplier")
    p.add_argument("--prevalence", type=A.probability, default=0.3, help="per-finding prevalence (multilabel)")
    p.add_argument("--zone", choices=["any", "upper", "lower", "left", "right"], default="any",
                   help="where focal findings are placed (image left/right lung, upper/lower lung half)")
    p.add_argument("--workers", type=A.workers, default=None, help="processes (default: all cores)")
    p.add_argument("--force", action="store_true", help="write into a non-empty folder not made by data phantom")
    p.set_defaults(func=_phantom)

    p = data_subparsers.add_parser("index", help="index and validate a dataset (NIH, CheXpert, MIMIC, PadChest, VinDr, "
                                   "RSNA, labels CSV or class folders)")
    p.add_argument("root", metavar="ROOT", help="dataset folder (for csv: the folder or the labels CSV)")
    p.add_argument("--format", dest="fmt", required=True, choices=list(FORMATS))
    p.add_argument("--out", required=True, help="output folder for index.csv, index.json, validation.*")
    p.add_argument("--labels", help="labels CSV (csv: default ROOT/labels.csv; nih: Data_Entry_2017*.csv)")
    p.add_argument("--task", choices=["multilabel", "multiclass"], help="csv: override the inferred task")
    p.add_argument("--classes", help="csv: comma-separated class columns/names, in order")
    p.add_argument("--drop-no-finding", action="store_true", help="nih: 14 findings, without 'No Finding'")
    p.add_argument("--keep-split", action="store_true", help="folder: keep split folders as a given_split column")
    p.add_argument("--patients-from", help="folder: NIH Data_Entry CSV to join patient ids by file name")
    p.add_argument("--views", help="chexpert/mimic/padchest: comma-separated views kept (default: frontal, PA,AP)")
    p.add_argument("--uncertain", help="chexpert/mimic: -1 cells become ignore (unknown, default) | ones | zeros")
    p.add_argument("--blank", help="chexpert/mimic: blank cells become negative (default) | unknown")
    p.add_argument("--terms", help="padchest: all (every term a class, default) | findings (shared findings only)")
    p.add_argument("--readers", help="vindr: reader agreement for a positive: majority (default) | any")
    p.add_argument("--labels-from", help="nih: google2019 (Google's adjudicated labels for four findings)")
    p.add_argument("--relabels", help="nih --labels-from google2019: the relabel CSV (default: found in ROOT)")
    p.add_argument("--check-decode", action="store_true", help="fully decode every image (slower)")
    p.add_argument("--no-hash", action="store_true", help="skip sha256 of every file (no duplicate-file check)")
    p.add_argument("--workers", type=A.workers, default=None, help="threads for hashing/checking files")
    p.add_argument("--force", action="store_true", help="write into a non-empty folder not made by data index")
    p.set_defaults(func=_index)

    r = data_subparsers.add_parser("report", help="draw a dataset: prevalence, co-occurrence, patients, age/sex/view, "
                                   "per split with the audit verdict (HTML + Markdown)")
    r.add_argument("index", metavar="INDEX", help="index folder or index.csv")
    r.add_argument("--split", help="split CSV (default: the index's own official/given split, if any)")
    r.add_argument("--out", required=True, help="output folder for report.html, report.md, data_report.json")
    r.add_argument("--hash", action="store_true", help="hash files to find identical images across splits")
    r.add_argument("--force", action="store_true", help="write into a non-empty folder not made by data report")
    r.set_defaults(func=_report)


def _phantom(args: argparse.Namespace) -> int:
    from cxrlab.data.phantom import make_phantom
    from cxrlab.outputs import check_same_settings, output_folder

    settings = {k: getattr(args, k) for k in ("n", "task", "size", "seed", "contrast", "finding_scale", "prevalence",
                                              "zone")}
    check_same_settings(Path(args.out) / "phantom.json", settings, verb="data phantom", force=args.force)
    with output_folder(args.out, verb="data phantom", force=args.force):
        out = make_phantom(args.out, n=args.n, task=args.task, size=args.size, seed=args.seed,
                           contrast=args.contrast, finding_scale=args.finding_scale, prevalence=args.prevalence,
                           zone=args.zone, workers=args.workers)
    print(f"wrote {args.n} {args.task} phantom images ({args.size}x{args.size}) to {out}/images, "
          f"labels to {out}/labels.csv, boxes to {out}/BBox_List_2017.csv")
    print(f"next: cxrlab data index {shlex.quote(str(out))} --format csv --out {shlex.quote(str(out / 'index'))}")
    return 0


def _index(args: argparse.Namespace) -> int:
    from cxrlab.data.build_index import build_index
    from cxrlab.outputs import output_folder

    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    views = [v.strip() for v in args.views.split(",") if v.strip()] if args.views else None
    opts = {"drop_no_finding": args.drop_no_finding, "task": args.task, "classes": classes,
            "keep_split": args.keep_split, "patients_from": args.patients_from, "views": views,
            "uncertain": args.uncertain, "blank": args.blank, "terms": args.terms, "readers": args.readers,
            "labels_from": args.labels_from, "relabels": args.relabels}
    inputs = [args.root, args.labels, args.patients_from, args.relabels]
    with output_folder(args.out, verb="data index", inputs=inputs, force=args.force):
        index, report = build_index(args.root, args.fmt, args.out, labels=args.labels,
                                    check_decode=args.check_decode, hash_files=not args.no_hash,
                                    workers=args.workers, **opts)
    print(format_summary(index, report))
    return 0


def _report(args: argparse.Namespace) -> int:
    from cxrlab.data.index import load_index
    from cxrlab.data.report import data_report
    from cxrlab.evaluate.document import Document
    from cxrlab.outputs import output_folder
    from cxrlab.utils import write_json

    index = load_index(args.index)
    with output_folder(args.out, verb="data report", inputs=[args.index, args.split], force=args.force) as out:
        doc = Document(f"cxrlab data report: {index.path.parent.name if index.path else args.index}")
        summary = data_report(index, doc, split=args.split, hash_files=args.hash)
        html, md = doc.write(Path(out))
        write_json(Path(out) / "data_report.json", summary)
    verdict = summary.get("audit", {}).get("verdict")
    print(f"wrote {html} and {md}" + (f"; split audit: {verdict}" if verdict else ""))
    return 0


def format_summary(index, report: dict) -> str:
    """A few lines for the terminal: counts, classes, warnings, where the report is."""
    c = report["counts"]
    excluded = ", ".join(f"{k}: {v}" for k, v in c["excluded"].items()) or "none"
    lines = [
        f"indexed {c['indexed']} images of {c['patients']} patients ({index.task}, {len(index.classes)} classes: "
        f"{', '.join(index.classes)})",
        f"rows in source: {c.get('rows', c['indexed'])}, images found: {c.get('images_found', c['indexed'])}, "
        f"rows without an image: {c.get('missing_images', 0)}, excluded: {excluded}",
    ]
    if index.meta.get("boxes"):
        lines.append(f"boxes: {index.meta['boxes']} (image size {index.meta.get('boxes_image_size')})")
    lines += [f"warning: {w}" for w in report["warnings"]]
    lines.append(f"wrote {index.path} and {index.path.with_suffix('.json').name}; validation report: "
                 f"{report['report_path']}")
    lines.append(f"next: cxrlab data split {shlex.quote(str(index.path))} --out "
                 f"{shlex.quote(str(index.path.parent / 'split.csv'))}")
    return "\n".join(lines)
