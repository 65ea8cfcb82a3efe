"""Benchmark: eager PyTorch vs ONNX Runtime on the CPU, batch-1 latency and batch-32 throughput.

For each model (default: ResNet-18, DenseNet-121, EfficientNet-B0, ViT-B/16; random weights, 14 classes,
1 input channel, 224 px) it exports the model exactly as ``cxrlab export`` does (logits + features outputs,
dynamic batch), checks the outputs agree, then times both engines in the same process with the same number of
threads (``--threads``, default all cores): the median of ``--repeats`` batch-1 calls after warm-up, and images/s
over batches of 32. Prints one table with the ORT/eager ratios and the load average before and after (the
machine may be shared: note it next to the figures). Target: ORT at least 1.5x eager at batch 1.

Run: ``python benchmarks/bench_onnx.py [--models timm:resnet18 ...] [--threads 2] [--repeats 20]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cxrlab.deploy.export import to_onnx
from cxrlab.deploy.onnx_engine import OnnxEngine
from cxrlab.models import create_model

MODELS = ("timm:resnet18", "timm:densenet121", "timm:efficientnet_b0", "timm:vit_base_patch16_224")


def _median_seconds(fn, x, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_model(name: str, size: int, threads: int, repeats: int, big_repeats: int, work: Path) -> dict:
    """Latency (batch 1) and throughput (batch 32) of eager PyTorch and ONNX Runtime for one model."""
    torch.manual_seed(0)
    model = create_model(name, 14, in_chans=1, img_size=size).eval()
    x1, x32 = torch.randn(1, 1, size, size), torch.randn(32, 1, size, size)
    path = to_onnx(model, x1.expand(2, -1, -1, -1).contiguous(), work / f"{name.replace(':', '_')}.onnx")
    engine = OnnxEngine(path, providers=["CPUExecutionProvider"], threads=threads)

    def eager(x):
        with torch.inference_mode():
            return model(x)

    def ort(x):
        return engine.logits(x)

    with torch.inference_mode():
        diff = float(np.abs(engine.logits(x1.numpy()) - model(x1).numpy()).max())
    x1n, x32n = x1.numpy(), x32.numpy()
    out = {"model": name, "max_abs_logit_diff": diff}
    out["eager_b1_ms"] = 1000 * _median_seconds(eager, x1, repeats, 3)
    out["ort_b1_ms"] = 1000 * _median_seconds(ort, x1n, repeats, 3)
    out["eager_b32_img_s"] = 32 / _median_seconds(eager, x32, big_repeats, 1)
    out["ort_b32_img_s"] = 32 / _median_seconds(ort, x32n, big_repeats, 1)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=20, help="batch-1 calls timed per engine")
    parser.add_argument("--big-repeats", type=int, default=3, help="batch-32 calls timed per engine")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    print(f"threads: torch {torch.get_num_threads()}, onnxruntime intra-op {args.threads}; cpu count "
          f"{os.cpu_count()}; torch {torch.__version__}; load average before {load_before[0]:.2f}")
    header = (f"{'model':30s} {'eager b1 ms':>11s} {'ORT b1 ms':>10s} {'b1 x':>6s} {'eager b32 img/s':>15s} "
              f"{'ORT b32 img/s':>13s} {'b32 x':>6s} {'max|dlogit|':>11s}")
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            r = bench_model(name, args.size, args.threads, args.repeats, args.big_repeats, Path(tmp))
            print(f"{name:30s} {r['eager_b1_ms']:11.1f} {r['ort_b1_ms']:10.1f} "
                  f"{r['eager_b1_ms'] / r['ort_b1_ms']:6.2f} {r['eager_b32_img_s']:15.1f} "
                  f"{r['ort_b32_img_s']:13.1f} {r['ort_b32_img_s'] / r['eager_b32_img_s']:6.2f} "
                  f"{r['max_abs_logit_diff']:11.1e}", flush=True)
    print(f"load average after {os.getloadavg()[0]:.2f} (ratios > 1: ONNX Runtime faster)")


if __name__ == "__main__":
    main()
