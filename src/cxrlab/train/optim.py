"""Optimisers (SGD+momentum, Adam, AdamW) with layer-wise learning rates, and learning-rate schedules."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from cxrlab.config import OptimConfig, ScheduleConfig
from cxrlab.errors import CxrlabError


def _matches(name: str, prefix: str) -> bool:
    # a prefix matches at the start of the name or at a component boundary (models may wrap a backbone)
    return name == prefix or name.startswith(prefix + ".") or f".{prefix}." in f".{name}"


def param_groups(model: nn.Module, base_lr: float, weight_decay: float, layer_lrs: dict[str, float]) -> list[dict]:
    """Parameter groups: one per (learning rate, decay) pair.

    ``layer_lrs`` maps parameter-name prefixes to learning rates (the longest matching prefix wins); other
    parameters use ``base_lr``. Biases and norm weights (1-D tensors) get no weight decay.
    """
    unused = set(layer_lrs)
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        hits = [k for k in layer_lrs if _matches(name, k)]
        lr = layer_lrs[max(hits, key=len)] if hits else base_lr
        unused -= set(hits)
        decay = 0.0 if p.ndim <= 1 else weight_decay
        groups.setdefault((lr, decay), []).append(p)
    if unused:
        tops = sorted({n.split(".")[0] for n, _ in model.named_parameters()})
        raise CxrlabError(
            f"optim.layer_lrs key(s) {', '.join(sorted(unused))} match no parameter; top-level names: {', '.join(tops)}"
        )
    return [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]


def build_optimizer(model: nn.Module, cfg: OptimConfig, lr: float) -> torch.optim.Optimizer:
    """SGD (momentum), Adam or AdamW over ``param_groups``."""
    groups = param_groups(model, lr, cfg.weight_decay, cfg.layer_lrs)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=tuple(cfg.betas))
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg.betas))
    raise CxrlabError(f"optim.name {cfg.name!r}: only sgd, adam and adamw are supported")


class _WarmupCosine:
    """lr multiplier at step t: linear warm-up, then cosine from 1 to min_ratio (a picklable callable)."""

    def __init__(self, warmup: int, total: int, min_ratio: float) -> None:
        self.warmup, self.total, self.min_ratio = warmup, max(total, 1), min_ratio

    def __call__(self, t: int) -> float:
        if t < self.warmup:
            return (t + 1) / (self.warmup + 1)
        progress = min((t - self.warmup) / max(self.total - self.warmup, 1), 1.0)
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, lr: float, epochs: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    """The schedule named in ``cfg``. Cosine steps per optimiser step when ``cfg.per_step``, else per epoch;
    plateau steps on the validation metric (mode max); step multiplies by ``factor`` every ``step_size`` epochs.
    """
    if cfg.name == "none":
        return None
    if cfg.name == "cosine":
        unit = steps_per_epoch if cfg.per_step else 1
        fn = _WarmupCosine(int(round(cfg.warmup_epochs * unit)), epochs * unit, cfg.min_lr / lr)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
    if cfg.name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=cfg.factor, patience=cfg.patience, min_lr=cfg.min_lr
        )
    if cfg.name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.factor)
    raise CxrlabError(f"schedule.name {cfg.name!r}: valid are none, cosine, plateau, step")


def steps_per_step(cfg: ScheduleConfig) -> bool:
    """True when the scheduler advances every optimiser step (cosine per step), else once per epoch."""
    return cfg.name == "cosine" and cfg.per_step


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The largest learning rate among the groups (the head's, with layer-wise lrs)."""
    return max(g["lr"] for g in optimizer.param_groups)


def schedule_state(scheduler: Any) -> list[dict[str, Any]]:
    """The settings of a ``LambdaLR``'s multipliers (``_WarmupCosine``: warmup, total, min_ratio); [] otherwise."""
    return [dict(vars(f)) for f in getattr(scheduler, "lr_lambdas", [])]


def rebuild_schedule(scheduler: Any, planned: list[dict[str, Any]]) -> tuple[int, int] | None:
    """After loading a saved schedule, put back the ``planned`` totals when they differ; returns (old, new) total.

    A ``LambdaLR`` saves its callable's settings, so a run resumed with more ``train.epochs`` would otherwise
    keep the old total and sit at ``schedule.min_lr`` (often 0) for every extra epoch. Rebuilt, the cosine
    follows the curve planned for the new total from the resumed epoch on (epochs already trained keep theirs).
    """
    saved = schedule_state(scheduler)
    if saved == planned:
        return None
    for fn, fresh in zip(scheduler.lr_lambdas, planned):
        fn.__dict__.update(fresh)
    # the optimiser holds the lr of the last step taken (0 at the old end): set it from the rebuilt schedule
    for group, base, fn in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * fn(scheduler.last_epoch)
    scheduler._last_lr = [g["lr"] for g in scheduler.optimizer.param_groups]
    return int(saved[0]["total"]), int(planned[0]["total"])
