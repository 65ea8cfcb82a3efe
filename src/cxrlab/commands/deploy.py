"""CLI verbs ``cxrlab export`` and ``cxrlab serve`` (thin: one library call each)."""

from __future__ import annotations

import argparse

from cxrlab.commands import args as A

LATERALITY_HELP = ("the OOD gate's left-right (mirrored film) check: linear (default; fewer false flags, catches few "
                   "mirrored films) or cnn (a small network also trained on the run's training images; catches most "
                   "mirrored films at more false flags: see docs/deploy.md)")


def register(subparsers, data_subparsers) -> None:
    """Add the deployment verbs to the ``cxrlab`` group."""
    p = subparsers.add_parser("export", help="export a run to ONNX with its preprocessing contract and a parity check")
    p.add_argument("run_dir", help="run directory from `cxrlab train` (or a checkpoint .safetensors)")
    p.add_argument("--out", required=True, help="ONNX file to write (model.json and model.ood.safetensors go beside)")
    p.add_argument("--which", choices=("best", "last", "swa"), default="best", help="checkpoint to export")
    p.add_argument("--opset", type=A.int_range(7, 30, "ONNX opset"), default=17, help="ONNX opset version (default 17)")
    p.add_argument("--parity-images", type=A.small_count, default=16,
                   help="validation images for the ONNX Runtime vs PyTorch parity check")
    p.add_argument("--ood-percentile", type=A.percentile, default=99.0,
                   help="validation percentile of the OOD distance used as the gate's threshold")
    p.add_argument("--ood-method", choices=("mahalanobis", "knn"), default="mahalanobis",
                   help="OOD distance on penultimate features (default mahalanobis)")
    p.add_argument("--ood-laterality", choices=("linear", "cnn"), default="linear", help=LATERALITY_HELP)
    p.add_argument("--force", action="store_true", help="replace an --out whose .json is another kind of artifact")
    q = p.add_argument_group("INT8 (static quantization, calibrated and checked on the run's validation images)")
    q.add_argument("--quantize", choices=("int8",), help="write an INT8 model instead of FP32 (CPU deployment)")
    q.add_argument("--max-auroc-drop", type=float, default=0.01,
                   help="fail when validation macro AUROC (macro-F1 multi-class) drops more than this (default 0.01)")
    q.add_argument("--min-agreement", type=float, default=0.95,
                   help="fail when INT8 and FP32 share fewer decisions at the exported thresholds (default 0.95)")
    q.add_argument("--calibration-images", type=A.positive_int, default=256,
                   help="validation images used to calibrate the quantization ranges (default 256)")
    q.add_argument("--quant-format", choices=("qoperator", "qdq"), default="qoperator",
                   help="qoperator (fastest with ONNX Runtime on CPU, the default) or qdq (portable)")
    p.set_defaults(func=_export)

    p = subparsers.add_parser("serve", help="a local web page and JSON API for a run or an exported ONNX model")
    p.add_argument("source", help="run directory (PyTorch, heat maps) or an .onnx file from `cxrlab export`")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; any other needs --token or CXRLAB_SERVE_TOKEN)")
    p.add_argument("--port", type=A.port, default=8000)
    p.add_argument("--which", choices=("best", "last", "swa"), default="best", help="checkpoint of a run")
    p.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on every API call")
    p.add_argument("--max-upload-mb", type=A.positive_float, default=50.0, help="largest request body")
    p.add_argument("--max-pixels", type=A.positive_int, default=50_000_000, help="largest image (width x height)")
    p.add_argument("--concurrency", type=A.workers, default=2, help="requests computing at once")
    p.add_argument("--cors", dest="cors_origin", help="allow this one origin to call the API from a browser")
    p.add_argument("--max-inflight-mb", type=A.positive_float,
                   help="request bodies held at once over all connections; more gets 503 (default: 256, or "
                        "--max-upload-mb when larger)")
    p.add_argument("--ood-laterality", choices=("linear", "cnn"),
                   help=LATERALITY_HELP + "; a run only (an exported model keeps its gate)")
    p.add_argument("--api-docs", action="store_true",
                   help="serve the OpenAPI schema at /openapi.json (behind the token; no docs page, no CDN)")
    p.set_defaults(func=_serve)


def _export(args: argparse.Namespace) -> int:
    from cxrlab.deploy.export import export_run
    from cxrlab.outputs import check_out_file

    check_out_file(args.out, verb="export", inputs=[args.run_dir], suffix=".onnx", sidecar="export contract",
                   force=args.force)
    from cxrlab.deploy.quantize import Int8Options

    int8 = Int8Options(args.max_auroc_drop, args.min_agreement, args.calibration_images, args.quant_format)
    if not args.quantize:
        int8.refuse_without_quantize()
        int8 = None
    c = export_run(args.run_dir, args.out, which=args.which, opset=args.opset, parity_images=args.parity_images,
                   ood_percentile=args.ood_percentile, ood_method=args.ood_method,
                   ood_laterality=args.ood_laterality, int8=int8)
    check = c["parity"]
    print(f"parity: max |prob diff| {check['max_abs_prob_diff']:.2e} <= {check['tolerance']:g} on "
          f"{check['images']} {check['source']} images" + (" (the FP32 graph)" if int8 else ""))
    if int8:
        from cxrlab.deploy.quantize import accuracy_line

        print(accuracy_line(c))
    extras = "" if c["ood"] else " (no OOD gate or thresholds: the run's validation images were not available)"
    print(f"wrote {args.out} and its contract {c['files']['onnx'].rsplit('.', 1)[0]}.json{extras}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from cxrlab.serve.run import serve

    serve(args.source, host=args.host, port=args.port, which=args.which, token=args.token,
          max_upload_mb=args.max_upload_mb, max_pixels=args.max_pixels, concurrency=args.concurrency,
          cors_origin=args.cors_origin, api_docs=args.api_docs, laterality=args.ood_laterality,
          max_inflight_mb=args.max_inflight_mb or max(256.0, args.max_upload_mb))
    return 0
