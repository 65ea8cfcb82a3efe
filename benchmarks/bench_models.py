"""Benchmark: images/s of each paper model at 224, forward only (eval, no grad) and a full train step
(forward + BCE loss + backward + AdamW step), on random tensors, batch 8: the median of 5 timed
iterations after warm-up.

Run: ``python benchmarks/bench_models.py`` (CPU, all threads) or
``python benchmarks/bench_models.py --device cuda --models timm:resnet50 --batch 64 --amp``. ``--quick``:
cnn_gap at 64 px, batch 2, one iteration. Writes ``benchmarks/results/models.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from cxrlab.losses import build_loss
from cxrlab.models import count_parameters, create_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import Figure, write_results  # noqa: E402

PAPER = ["cnn_baseline", "cnn_gap", "resnet34_scratch", "vit_v1", "vit_v2", "vit_multiscale"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(step, iters: int, warmup: int, device: torch.device) -> float:
    """Median seconds per call of ``step`` after ``warmup`` untimed calls (the median resists the bursts of
    other processes on a shared machine)."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_model(name: str, args: argparse.Namespace) -> dict:
    """Forward and train-step images/s for one model."""
    device = torch.device(args.device)
    model = create_model(name, 15, in_chans=args.in_chans, img_size=args.img_size).to(device)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = torch.randn(args.batch, args.in_chans, args.img_size, args.img_size, device=device).to(memory_format=fmt)
    y = (torch.rand(args.batch, 15, device=device) < 0.2).float()
    loss_fn = build_loss("bce", "multilabel", 15)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp)

    def forward() -> None:
        with torch.no_grad(), amp:
            model(x)

    def train_step() -> None:
        with amp:
            loss = loss_fn(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.eval()
    t_fwd = _timed(forward, args.iters, args.warmup, device)
    model.train()
    t_train = _timed(train_step, args.iters, args.warmup, device)
    return {"model": name, "params_M": count_parameters(model) / 1e6,
            "forward_img_s": args.batch / t_fwd, "train_img_s": args.batch / t_train}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=PAPER)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--in-chans", type=int, default=1)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--quick", action="store_true", help="cnn_gap at 64 px, batch 2, 1 iteration")
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.img_size, args.batch, args.iters, args.threads = ["cnn_gap"], 64, 2, 1, 1
    load, figures = list(os.getloadavg()), {}
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"device={args.device} threads={torch.get_num_threads()} batch={args.batch} img={args.img_size} "
          f"in_chans={args.in_chans} amp={args.amp} channels_last={args.channels_last}")
    print(f"{'model':<24}{'params':>10}{'forward img/s':>16}{'train img/s':>14}")
    for name in args.models:
        r = bench_model(name, args)
        print(f"{r['model']:<24}{r['params_M']:>9.2f}M{r['forward_img_s']:>16.1f}{r['train_img_s']:>14.1f}",
              flush=True)
        figures[f"{name}_params_M"] = Figure.of([r["params_M"]], unit="M", note="15 classes")
        figures[f"{name}_forward_img_s"] = Figure.of([r["forward_img_s"]], unit="images/s", note="median of iters")
        figures[f"{name}_train_img_s"] = Figure.of([r["train_img_s"]], unit="images/s", note="median of iters")
    write_results("models", inputs={"models": args.models, "batch": args.batch, "img_size": args.img_size,
                                    "in_chans": args.in_chans, "iters": args.iters, "device": args.device,
                                    "threads": torch.get_num_threads(), "amp": args.amp},
                  figures=figures, quick=args.quick, load_before=load, notes="models one after another")


if __name__ == "__main__":
    main()
