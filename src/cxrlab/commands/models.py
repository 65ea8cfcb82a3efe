"""``cxrlab models list``: every model name with its parameter count, channels, image size and weights."""

from __future__ import annotations

import argparse


def register(subparsers, data_subparsers) -> None:
    """Add ``cxrlab models list``."""
    models = subparsers.add_parser("models", help="list the available models")
    verbs = models.add_subparsers(dest="models_command", metavar="VERB")
    models.set_defaults(func=lambda args: _missing(models))
    p = verbs.add_parser("list", help="names, parameter counts (15 classes, 3 channels, 224), channels, weights")
    p.add_argument("--verbose", "-v", action="store_true", help="also the Grad-CAM layer, normalisation, dropout")
    p.add_argument("--source", choices=["ours", "timm", "tv", "xrv"], help="only models from this source")
    p.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    p.add_argument("names", nargs="*", metavar="NAME", help="only these models (any timm:/tv: name works)")
    p.set_defaults(func=_list)


def _missing(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _list(args: argparse.Namespace) -> int:
    import json

    from cxrlab.models import list_models
    from cxrlab.models.catalog import format_table, model_table

    rows = model_table(args.names or list_models(args.source), verbose=args.verbose)
    print(json.dumps(rows, indent=1) if args.json else format_table(rows))
    return 0
