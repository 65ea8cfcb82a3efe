"""CLI verb ``cxrlab predict``: a trained run's probabilities on its split, another index, or image files."""

from __future__ import annotations

import argparse

from cxrlab.commands import args as A


def register(subparsers, data_subparsers) -> None:  # noqa: ARG001 - no `data` verbs here
    """Add ``predict`` to the ``cxrlab`` group."""
    p = subparsers.add_parser("predict", help="predict with a trained run on its val/test split, another index "
                              "or new images")
    p.add_argument("run_dir", help="run directory from `cxrlab train` (or a checkpoint .safetensors)")
    p.add_argument("--split", choices=("train", "val", "test"),
                   help="split of the run's data (default test); with --index, that index's split (default: all "
                   "its images)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--images", help="an image file or folder instead of a split")
    src.add_argument("--index", help="another index (folder or index.csv), e.g. an external test set")
    p.add_argument("--split-csv", help="with --index and --split: the split CSV whose rows to take (default: the "
                   "index's own official_split/given_split column)")
    p.add_argument("--out", required=True, help="predictions CSV to write (a .json sidecar goes beside it)")
    p.add_argument("--which", choices=("best", "last", "swa"), default="best", help="checkpoint to use")
    p.add_argument("--batch-size", type=A.batch_size, default=64)
    p.add_argument("--device", type=A.device, default="cpu", help="cpu, cuda, cuda:N, mps or auto")
    p.add_argument("--engine", choices=("torch", "onnx"),
                   help="PyTorch or ONNX Runtime (default: onnx for an .onnx file from `cxrlab export`, else torch)")
    p.add_argument("--tta", choices=("none", "shifts"), default="none",
                   help="prediction-time augmentation (torch engine): shifts = mean logits over the image and four "
                   "1/32-side shifts; no flip (default none)")
    p.add_argument("--force", action="store_true", help="replace an --out whose .json is another kind of artifact")
    p.set_defaults(func=_predict)


def _predict(args: argparse.Namespace) -> int:
    from cxrlab.outputs import check_out_file
    from cxrlab.predict import predict_run
    from cxrlab.predictions import write_predictions

    if args.images and args.split:
        from cxrlab.errors import CxrlabError

        raise CxrlabError(f"--split {args.split} picks rows of the run's data or of --index; it does not apply to "
                          f"--images {args.images}: drop --split (or use --index)")
    check_out_file(args.out, verb="predict", inputs=[args.run_dir, args.images, args.index, args.split_csv],
                   force=args.force)
    engine = args.engine or ("onnx" if str(args.run_dir).lower().endswith(".onnx") else "torch")
    if engine == "onnx":
        if args.tta != "none":
            from cxrlab.errors import CxrlabError

            raise CxrlabError(f"--tta {args.tta} is available with the torch engine only; drop --tta or --engine onnx")
        from cxrlab.deploy.predict_onnx import predict_onnx

        preds = predict_onnx(args.run_dir, split=args.split, index=args.index, images=args.images,
                             split_csv=args.split_csv, which=args.which, batch_size=args.batch_size)
    else:
        preds = predict_run(args.run_dir, split=args.split, index=args.index, images=args.images,
                            split_csv=args.split_csv, which=args.which, batch_size=args.batch_size,
                            device=args.device, tta=args.tta)
    path = write_predictions(args.out, preds)
    print(f"wrote {len(preds.image_ids)} predictions to {path}")
    return 0
