"""One training epoch and one evaluation pass (the inner loops ``fit`` calls), and the validation metric."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from cxrlab.auroc import DEFAULT_EXCLUDE, MacroColumns, macro_auroc, macro_columns
from cxrlab.data.transforms import mix_batch
from cxrlab.errors import CxrlabError
from cxrlab.tasks import probabilities
from cxrlab.train.checkpoint import unwrap
from cxrlab.train.distributed import Dist, gather


@dataclass
class Engine:
    """What the inner loops need besides the model and the data (settings and stateful helpers; no hooks)."""

    device: torch.device
    task: str
    num_classes: int
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    step_scheduler: Any = None  # advanced every optimiser step (cosine per step), else None
    scaler: torch.amp.GradScaler | None = None
    amp_dtype: torch.dtype | None = None
    accumulate: int = 1
    clip_grad: float | None = None
    ema: torch.optim.swa_utils.AveragedModel | None = None
    mix: dict[str, float] = field(default_factory=dict)
    channels_last: bool = False
    log_every: int = 50
    use_weight: bool = False
    dist: Dist = field(default_factory=Dist)
    frozen_norms: list[nn.Module] = field(default_factory=list)  # norm layers of a frozen backbone: kept in eval
    last_checkpoint: str = "none yet"
    classes: tuple[str, ...] = ()  # class names: the macro AUROC leaves DEFAULT_EXCLUDE out by name

    @property
    def quiet(self) -> bool:
        return not self.dist.main or not sys.stderr.isatty()


def _to_device(batch: list, eng: Engine) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    images = batch[0].to(eng.device, non_blocking=True)
    if eng.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    targets = batch[1].to(eng.device, non_blocking=True)
    weight = batch[3].to(eng.device, non_blocking=True) if eng.use_weight and len(batch) > 3 else None
    return images, targets, weight


def _optimizer_step(model: nn.Module, eng: Engine) -> None:
    opt = eng.optimizer
    if eng.scaler is not None and eng.clip_grad:
        eng.scaler.unscale_(opt)
    if eng.clip_grad:
        nn.utils.clip_grad_norm_(model.parameters(), eng.clip_grad)
    if eng.scaler is not None:
        eng.scaler.step(opt)
        eng.scaler.update()
    else:
        opt.step()
    opt.zero_grad(set_to_none=True)
    if eng.step_scheduler is not None:
        eng.step_scheduler.step()
    if eng.ema is not None:
        eng.ema.update_parameters(unwrap(model))


def train_one_epoch(model: nn.Module, loader, eng: Engine, epoch: int) -> dict[str, float]:
    """Train for one pass over ``loader``; returns ``loss`` (mean per image), ``images``, ``seconds`` and
    ``metric``: the validation metric computed on the training batches' own outputs (as the weights were while
    each batch trained, so it lags the end-of-epoch weights a little; NaN when batches are mixed). It costs no
    extra forward pass and makes overfitting visible beside the val metric.

    A non-finite loss stops the run with a one-line error naming the epoch and step (the last good
    checkpoint on disk is left untouched).
    """
    model.train()
    for module in eng.frozen_norms:
        module.eval()
    eng.optimizer.zero_grad(set_to_none=True)
    total, seen, steps, t0 = 0.0, 0, len(loader), time.perf_counter()
    mixing = bool(eng.mix.get("mixup") or eng.mix.get("cutmix"))
    outputs: list[tuple[np.ndarray, np.ndarray]] = []  # (probabilities, targets) of each batch
    bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=eng.quiet, dynamic_ncols=True)
    for i, batch in enumerate(bar):
        images, targets, weight = _to_device(batch, eng)
        images, targets = mix_batch(images, targets, eng.task, eng.num_classes, **eng.mix)
        with torch.autocast(eng.device.type, dtype=eng.amp_dtype, enabled=eng.amp_dtype is not None):
            logits = model(images)
        loss = eng.loss_fn(logits.float(), targets, weight)  # the loss itself in float32
        value = float(loss.detach())
        if not np.isfinite(value):
            raise CxrlabError(
                f"training loss became {value} at epoch {epoch}, step {i + 1}; stopped, the last good checkpoint "
                f"is {eng.last_checkpoint}; lower train.lr, set train.clip_grad=1.0 or use train.amp=off"
            )
        scaled = loss / eng.accumulate
        (eng.scaler.scale(scaled) if eng.scaler is not None else scaled).backward()
        if (i + 1) % eng.accumulate == 0 or i + 1 == steps:
            _optimizer_step(model, eng)
        total += value * len(images)
        seen += len(images)
        if not mixing:
            outputs.append((probabilities(logits.detach().float(), eng.task).cpu().numpy(), targets.cpu().numpy()))
        if (i + 1) % eng.log_every == 0:
            bar.set_postfix(loss=f"{total / seen:.4f}")
    seconds = time.perf_counter() - t0  # the throughput excludes the train metric below
    metric = float("nan")
    if outputs:
        metric = val_metric(eng.task, np.concatenate([o[0] for o in outputs]),
                            np.concatenate([o[1] for o in outputs]), eng.num_classes, eng.classes)
    return {"loss": total / max(seen, 1), "images": seen, "seconds": seconds, "metric": metric}


@torch.no_grad()
def evaluate(model: nn.Module, loader, eng: Engine) -> dict[str, Any]:
    """Loss, validation metric and probabilities over ``loader`` (gathered from every rank, in dataset order).

    Returns ``loss``, ``metric``, ``probs`` (N, C), ``targets``, ``ids``.
    """
    model = unwrap(model)  # no DDP collectives here: ranks may hold different numbers of batches
    model.eval()
    probs, targets, ids, loss_sum = [], [], [], 0.0
    for batch in loader:
        images, target, _ = _to_device(batch, eng)
        # float32 on the CPU: saved predictions equal what `predict` and the exported model compute (precision.py)
        autocast = eng.amp_dtype is not None and eng.device.type != "cpu"
        with torch.autocast(eng.device.type, dtype=eng.amp_dtype, enabled=autocast):
            logits = model(images).float()
        loss_sum += float(eng.loss_fn(logits, target)) * len(images)
        probs.append(probabilities(logits, eng.task).cpu().numpy())
        targets.append(target.cpu().numpy())
        ids += list(batch[2])
    parts = gather((probs, targets, ids, loss_sum), eng.dist)
    probs_all, targets_all, ids_all = _interleave(parts)
    n = max(len(ids_all), 1)
    return {
        "loss": sum(p[3] for p in parts) / n,
        "metric": val_metric(eng.task, probs_all, targets_all, eng.num_classes, eng.classes),
        "probs": probs_all,
        "targets": targets_all,
        "ids": ids_all,
    }


def _interleave(parts: list) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Undo the strided ``rank::world`` sharding so rows come back in dataset order."""
    world = len(parts)
    per_rank = [
        (np.concatenate(p[0]) if p[0] else np.zeros((0, 0)), np.concatenate(p[1]) if p[1] else np.zeros(0), p[2])
        for p in parts
    ]
    if world == 1:
        return per_rank[0]
    n = sum(len(r[2]) for r in per_rank)
    order = [(i % world, i // world) for i in range(n)]
    probs = np.stack([per_rank[r][0][j] for r, j in order]) if n else np.zeros((0, 0))
    targets = np.stack([per_rank[r][1][j] for r, j in order]) if n else np.zeros(0)
    ids = [per_rank[r][2][j] for r, j in order]
    return probs, targets, ids


def macro_f1(probs: np.ndarray, classes: np.ndarray, num_classes: int) -> float:
    """Macro-F1 of the arg-max class over all classes (absent classes count as 0 when predicted)."""
    from sklearn.metrics import f1_score

    return float(f1_score(classes, probs.argmax(axis=1), labels=list(range(num_classes)), average="macro",
                          zero_division=0))


def val_metric(task: str, probs: np.ndarray, targets: np.ndarray, num_classes: int,
               classes: tuple[str, ...] | list[str] = ()) -> float:
    """Macro AUROC (multi-label; ``cxrlab.auroc.macro_auroc``, the definition ``evaluate`` reports: "No
    Finding" left out by name, so ``classes`` must be given for it to apply) or macro-F1 (multi-class).
    NaN when undefined (no class with both label values): never a stand-in from another scale."""
    if len(probs) == 0:
        return float("nan")
    if task == "multilabel":
        names = list(classes) if len(classes) == num_classes else [str(i) for i in range(num_classes)]
        return macro_auroc(targets, probs, names, DEFAULT_EXCLUDE).value
    return macro_f1(probs, targets.astype(np.int64), num_classes)


def metric_columns(task: str, labels: np.ndarray, classes: list[str]) -> MacroColumns:
    """The classes the validation metric averages on labels (N, C) (multi-class: every class)."""
    if task == "multilabel":
        return macro_columns(labels, classes, DEFAULT_EXCLUDE)
    return MacroColumns(list(range(len(classes))), [], [])


def metric_name(task: str) -> str:
    return "macro_auroc" if task == "multilabel" else "macro_f1"
