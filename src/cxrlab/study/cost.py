"""Measured cost of an arm: parameters, GFLOPs per image, CPU latency at batch 1 and throughput at batch 32.

Measured on the architecture as configured (fresh weights: speed does not depend on their values), after the
run trained, and written to ``runs/<run>/cost.json``; the report reads it beside the manifest's wall time.
The CPU timings are the forward pass alone (``inference_mode``, two warm-up calls, the median of the timed
ones) on ``COST_THREADS`` torch thread, set explicitly and restored afterwards: a per-thread figure does not
depend on how many cores are free, and a thread count above the free cores makes a shared machine's timings
meaningless (threads spin-waiting for each other). The load average before and after is recorded beside them.
A study can skip the measurement (``cost: false`` in the study file, or ``study run --no-cost``); it costs a
few seconds per arm (``benchmarks/bench_study.py`` measures it). A short timing of training steps also gives
``--dry-run`` its cost estimate.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from cxrlab.config import Config
from cxrlab.utils import load_average

TIME_BOX_S = 2.0  # seconds each latency measurement may take (a few repeats of big models on CPU)
COST_THREADS = 1  # torch intra-op threads for the CPU timings


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, restoring the previous count after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fresh(cfg: Config, classes: list[str]) -> torch.nn.Module:
    from cxrlab.train.fitting import build_model

    cfg = copy.deepcopy(cfg)
    cfg.model.pretrained, cfg.model.weights, cfg.model.weights_sha256 = False, None, None  # no download
    return build_model(cfg, classes)


@torch.inference_mode()
def _time_forward(model: torch.nn.Module, x: torch.Tensor, repeats: int, warmup: int = 2) -> float:
    """Median seconds of one forward pass (after ``warmup`` untimed calls), stopping early past ``TIME_BOX_S``."""
    cuda = x.device.type == "cuda"
    for _ in range(warmup):
        model(x)
    if cuda:
        torch.cuda.synchronize()
    times, start = [], time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(x)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > TIME_BOX_S:
            break
    return sorted(times)[len(times) // 2]


def measure_cost(cfg: Config, classes: list[str], device: str = "cpu") -> dict[str, Any]:
    """Parameters, GFLOPs/image, latency at batch 1 (ms) and throughput at batch 32 (images/s) on CPU with
    ``COST_THREADS`` thread (and on ``device`` too when it is a GPU), with the load average around them."""
    from cxrlab.models.flops import gflops_per_image

    model = _fresh(cfg, classes).eval()
    c, s = cfg.model.in_chans, cfg.data.image_size
    out: dict[str, Any] = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "gflops_per_image": gflops_per_image(model, c, s),
        "image_size": s,
        "cpu_threads": COST_THREADS,
        "load_average_before": load_average(),
    }
    with torch_threads(COST_THREADS):
        out["cpu_latency_ms_b1"] = 1000 * _time_forward(model, torch.zeros(1, c, s, s), 7)
        out["cpu_images_per_s_b32"] = 32 / _time_forward(model, torch.zeros(32, c, s, s), 2, warmup=1)
    out["load_average_after"] = load_average()
    if device.startswith("cuda") and torch.cuda.is_available():
        gpu = model.to(device)
        out["gpu_latency_ms_b1"] = 1000 * _time_forward(gpu, torch.zeros(1, c, s, s, device=device), 20)
        out["gpu_images_per_s_b32"] = 32 / _time_forward(gpu, torch.zeros(32, c, s, s, device=device), 10)
    return out


def time_training_step(cfg: Config, classes: list[str], steps: int = 2) -> float:
    """Seconds per training image (forward + backward + step at the arm's batch size, capped at 16) on CPU."""
    model = _fresh(cfg, classes).train()
    c, s, b = cfg.model.in_chans, cfg.data.image_size, min(cfg.train.batch_size, 16)
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)
    x, y = torch.randn(b, c, s, s), torch.zeros(b, len(classes))
    times = []
    for _ in range(steps + 1):  # the first step warms up
        t0 = time.perf_counter()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return min(times[1:]) / b
