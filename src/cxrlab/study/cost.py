"""Measured cost of an arm: parameters, GFLOPs per image, CPU latency at batch 1 and throughput at batch 32.

Measured on the architecture as configured (fresh weights: speed does not depend on their values), after the
run trained, and written to ``runs/<run>/cost.json``; the report reads it beside the manifest's wall time.
A short timing of training steps also gives ``--dry-run`` its cost estimate.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch

from cxrlab.config import Config

TIME_BOX_S = 2.0  # seconds each latency measurement may take (a few repeats of big models on CPU)


def _fresh(cfg: Config, classes: list[str]) -> torch.nn.Module:
    from cxrlab.train.fitting import build_model

    cfg = copy.deepcopy(cfg)
    cfg.model.pretrained, cfg.model.weights, cfg.model.weights_sha256 = False, None, None  # no download
    return build_model(cfg, classes)


@torch.no_grad()
def _time_forward(model: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Median seconds of one forward pass (one warm-up first), stopping early past ``TIME_BOX_S``."""
    model(x)
    times, start = [], time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > TIME_BOX_S:
            break
    return sorted(times)[len(times) // 2]


def measure_cost(cfg: Config, classes: list[str], device: str = "cpu") -> dict[str, Any]:
    """Parameters, GFLOPs/image, latency at batch 1 (ms) and throughput at batch 32 (images/s) on CPU
    (and on ``device`` too when it is a GPU)."""
    from cxrlab.models.flops import gflops_per_image

    model = _fresh(cfg, classes).eval()
    c, s = cfg.model.in_chans, cfg.data.image_size
    out: dict[str, Any] = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "gflops_per_image": gflops_per_image(model, c, s),
        "image_size": s,
    }
    out["cpu_latency_ms_b1"] = 1000 * _time_forward(model, torch.zeros(1, c, s, s), 5)
    out["cpu_images_per_s_b32"] = 32 / _time_forward(model, torch.zeros(32, c, s, s), 1)
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
