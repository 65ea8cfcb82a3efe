"""Benchmark: heat maps per second (Grad-CAM, EigenCAM, attention rollout) for ResNet-50 and ViT-B/16 at 224,
and the cost of MC-dropout relative to one forward pass: looped vs batched vs head-only sampling.

Random init, random tensors, batch 4 by default. Run: ``python benchmarks/bench_explain.py`` (CPU) or
``python benchmarks/bench_explain.py --device cuda --batch 16 --samples 30``. ``--quick``: ResNet-18 at 64 px,
batch 1, 2 samples. Writes ``benchmarks/results/explain.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from cxrlab.explain.cam import compute_cams
from cxrlab.models import create_model
from cxrlab.uncertainty import mc_dropout_samples

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import Figure, write_results  # noqa: E402

MODELS = {"timm:resnet50": ["gradcam", "eigencam"], "timm:vit_base_patch16_224": ["gradcam", "eigencam", "rollout"]}


def _timed(fn, device: torch.device, iters: int) -> float:
    """Fastest of ``iters`` timed calls after one warm-up (the minimum resists a shared, noisy machine)."""
    fn()
    best = float("inf")
    for _ in range(iters):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def bench(name: str, methods: list[str], args: argparse.Namespace, figures: dict) -> None:
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = create_model(name, 15, in_chans=3, img_size=args.img_size, drop_rate=0.2).to(device).eval()
    x = torch.randn(args.batch, 3, args.img_size, args.img_size, device=device)
    key = name.removeprefix("timm:")
    classes = [0] * args.batch
    for method in methods:
        sec = _timed(lambda m=method: compute_cams(model, x, classes, m), device, args.iters)
        print(f"{name:28s} {method:9s} {args.batch / sec:8.2f} maps/s", flush=True)
        figures[f"{key}_{method}_maps_s"] = Figure.of([args.batch / sec], unit="maps/s", note="fastest of iters")
    with torch.no_grad():
        fwd = _timed(lambda: model(x), device, max(args.iters, 3))
    n = args.samples
    looped = _timed(lambda: mc_dropout_samples(model, x, n, batched=False), device, 2)
    full = _timed(lambda: mc_dropout_samples(model, x, n, head_only=False, max_batch=args.max_batch), device, 2)
    head = _timed(lambda: mc_dropout_samples(model, x, n), device, 2)
    model.eval()
    for label, sec in (("looped", looped), ("batched", full), ("head_only", head)):
        figures[f"{key}_mc_dropout_{label}_x_forward"] = Figure.of([sec / fwd], unit="x", note=f"{n} samples")
    print(f"{name:28s} MC-dropout x{n}: looped {looped / fwd:6.1f}x, batched {full / fwd:6.1f}x, "
          f"head-only {head / fwd:6.2f}x one forward ({fwd * 1000:.0f} ms for {args.batch} images)", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--iters", type=int, default=2)
    p.add_argument("--samples", type=int, default=10)
    p.add_argument("--max-batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--quick", action="store_true", help="timm:resnet18 at 64 px, batch 1, 2 samples, 1 iter")
    args = p.parse_args()
    if args.quick:
        args.models, args.img_size, args.batch, args.samples, args.iters, args.threads = (
            ["timm:resnet18"], 64, 1, 2, 1, 1)
    load, figures = list(os.getloadavg()), {}
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"device {args.device}, threads {torch.get_num_threads()}, batch {args.batch}, torch {torch.__version__}")
    for name in args.models:
        bench(name, MODELS.get(name, ["gradcam"]), args, figures)
    write_results("explain", inputs={"models": args.models, "img_size": args.img_size, "batch": args.batch,
                                     "samples": args.samples, "iters": args.iters, "device": args.device,
                                     "threads": torch.get_num_threads()},
                  figures=figures, quick=args.quick, load_before=load, notes="random init, random tensors")


if __name__ == "__main__":
    main()
