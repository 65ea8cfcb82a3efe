"""Training setup, built once from the config before the first epoch: device, seeds and torch settings, the
model (with a dry forward pass at a working size), transforms and loaders, and the ``Session`` record holding
all of it (loss, optimiser, schedule, precision, EMA/SWA averages, checkpoint info). ``cxrlab.train.fitting``
runs the epochs on it.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from cxrlab.config import Config, config_to_dict
from cxrlab.data.sampling import build_sampler, warn_if_double_correction
from cxrlab.data.transforms import build_transform
from cxrlab.errors import CxrlabError
from cxrlab.train import checkpoint as ckpt
from cxrlab.train import data as tdata
from cxrlab.train import distributed as ddp
from cxrlab.train.freeze import apply_freeze
from cxrlab.train.loop import Engine, metric_columns, metric_name
from cxrlab.train.optim import build_optimizer, build_scheduler, steps_per_step
from cxrlab.train.precision import resolve_precision
from cxrlab.train.sources import row_sources
from cxrlab.utils import cpu_threads


@dataclass
class Session:
    """Everything one training run holds (built once by ``_build``; a plain record, no behaviour)."""

    cfg: Config
    out: Path
    data: tdata.SplitData
    bare: nn.Module
    model: nn.Module
    eng: Engine
    loaders: dict[str, Any]
    generator: torch.Generator
    scheduler: Any
    swa: AveragedModel | None
    info: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    tracker: Any = None  # cxrlab.train.tracking.Tracker when train.log is set
    best: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    schedule_rebuilt: dict[str, Any] | None = None  # --resume with more epochs: see _rebuild_schedule
    selection: dict[str, Any] = field(default_factory=dict)  # what checkpoints are selected on (_selection)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA without one is an error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise CxrlabError("train.device=cuda but no CUDA device is visible; use --set train.device=cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _setup_torch(cfg: Config, device: torch.device) -> None:
    if device.type == "cpu":  # intra-op threads + DataLoader workers never exceed the cores (no spin-waiting)
        procs = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)  # torchrun ranks share the cores
        torch.set_num_threads(cfg.train.threads or cpu_threads(cfg.data.num_workers, procs))
    elif cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    if cfg.train.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    seed_all(cfg.train.seed)


def _amp(mode: str, device: torch.device) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
    dtype = resolve_precision(mode, device).dtype  # refuses fp16 without a GPU, bf16 without native CPU support
    return dtype, torch.amp.GradScaler("cuda") if dtype == torch.float16 else None


def build_model(cfg: Config, classes: list[str]) -> nn.Module:
    """``create_model`` from the config, checked with a dry forward at ``data.image_size``."""
    from cxrlab.models import create_model

    m, size = cfg.model, cfg.data.image_size
    try:
        model = create_model(m.name, num_classes=len(classes), in_chans=m.in_chans, pretrained=m.pretrained,
                             weights=m.weights, drop_rate=m.drop_rate, class_names=classes, img_size=size,
                             weights_sha256=m.weights_sha256)
        _dry_forward(model, m.in_chans, size, len(classes))
    except CxrlabError:
        raise
    except Exception as exc:  # the model's own complaint about the input size
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        ok = _working_sizes(m.name, m.in_chans, len(classes))
        raise CxrlabError(
            f"model {m.name} cannot take data.image_size={size} ({first}); sizes that work: "
            f"{', '.join(map(str, ok)) or 'none of 64-384'}; set --set data.image_size=N"
        ) from None
    return model


def _dry_forward(model: nn.Module, in_chans: int, size: int, num_classes: int) -> None:
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(2, in_chans, size, size))
    if tuple(out.shape) != (2, num_classes):
        raise RuntimeError(f"output shape {tuple(out.shape)} instead of (2, {num_classes})")


def _working_sizes(name: str, in_chans: int, num_classes: int) -> list[int]:
    from cxrlab.models import create_model

    ok = []
    for s in (64, 96, 128, 224, 256, 384):
        try:
            _dry_forward(create_model(name, num_classes=num_classes, in_chans=in_chans, img_size=s), in_chans, s,
                         num_classes)
            ok.append(s)
        except Exception:  # noqa: BLE001 - probing: any failure means "not this size"
            continue
    return ok


def _transforms(cfg: Config, model: nn.Module) -> tuple[Any, Any]:
    dc = getattr(model, "data_config", {}) or {}
    a = cfg.augment
    common = dict(image_size=cfg.data.image_size, in_chans=cfg.model.in_chans, mean=dc.get("mean", (0.5,)),
                  std=dc.get("std", (0.25,)), clahe=a.clahe)
    train = build_transform(a.policy, True, hflip=a.hflip, random_erasing=a.random_erasing, **common)
    return train, build_transform(a.policy, False, **common)


def _loaders(cfg: Config, data: tdata.SplitData, model: nn.Module, d: ddp.Dist) -> tuple[dict, torch.Generator, bool]:
    """Datasets (train augmented, val/test deterministic) and their loaders; the generator orders the draws."""
    train_tf, eval_tf = _transforms(cfg, model)
    use_weight = "weight" in data.index.frame.columns  # per-row weights, e.g. pseudo-labels
    sets = {"train": tdata.make_dataset(cfg, data, data.ids["train"], train_tf, return_weight=use_weight)}
    for name in ("val", "test"):
        sets[name] = tdata.make_dataset(cfg, data, data.ids[name], eval_tf) if data.ids[name] else None
    generator = torch.Generator()
    sources = row_sources(data.index, sets["train"].image_ids) if cfg.data.source_weights is not None else None
    sampler = build_sampler(cfg.sampler.name, data.index.task, tdata.dataset_labels(sets["train"]),
                            cfg.sampler.num_samples, cfg.sampler.replacement, generator, sources,
                            cfg.data.source_weights)
    loaders = {"train": tdata.train_loader(cfg, sets["train"], sampler, generator, d.rank, d.world)}
    loaders.update({k: tdata.eval_loader(cfg, v, d.rank, d.world) for k, v in sets.items() if k != "train" and v})
    return loaders, generator, use_weight


def _build(cfg: Config, out: Path, device: torch.device, d: ddp.Dist) -> Session:
    from cxrlab.losses import build_loss

    data = tdata.load_data(cfg)
    task, classes = data.index.task, list(data.index.classes)
    bare = build_model(cfg, classes).to(device)
    if cfg.train.channels_last:
        bare = bare.to(memory_format=torch.channels_last)
    loaders, generator, use_weight = _loaders(cfg, data, bare, d)
    counts = tdata.class_counts(data.index.subset(list(loaders["train"].dataset.image_ids)))
    kwargs = cfg.loss.build_kwargs()
    if d.main:
        warn_if_double_correction(cfg.sampler.name, cfg.loss.name, kwargs)
    loss_name = cfg.loss.name if cfg.loss.name != "auto" else ("bce" if task == "multilabel" else "ce")
    loss_fn = build_loss(loss_name, task, len(classes), class_counts=counts, **kwargs).to(device)
    optimizer = build_optimizer(bare, cfg.optim, cfg.train.lr)  # every parameter: unfrozen ones join later
    if d.enabled and cfg.model.unfreeze_epoch:
        raise CxrlabError("model.unfreeze_epoch (gradual unfreezing) runs in one process; drop torchrun, or use "
                          "model.freeze=backbone without unfreeze_epoch")
    frozen_norms = apply_freeze(bare, cfg, 1)  # before DDP, which registers only trainable parameters
    model = ddp.wrap(torch.compile(bare) if cfg.train.compile else bare, d, device)
    steps = math.ceil(len(loaders["train"]) / cfg.train.accumulate)
    scheduler = build_scheduler(optimizer, cfg.schedule, cfg.train.lr, cfg.train.epochs, steps)
    amp_dtype, scaler = _amp(cfg.train.amp, device)
    ema = (AveragedModel(bare, multi_avg_fn=get_ema_multi_avg_fn(cfg.train.ema), use_buffers=True)
           if cfg.train.ema else None)
    a = cfg.augment
    eng = Engine(device=device, task=task, num_classes=len(classes), loss_fn=loss_fn, optimizer=optimizer,
                 step_scheduler=scheduler if steps_per_step(cfg.schedule) else None, scaler=scaler,
                 amp_dtype=amp_dtype, accumulate=cfg.train.accumulate, clip_grad=cfg.train.clip_grad, ema=ema,
                 mix={"mixup": a.mixup, "cutmix": a.cutmix, "mix_prob": a.mix_prob, "cutmix_prob": a.cutmix_prob},
                 channels_last=cfg.train.channels_last, log_every=cfg.train.log_every, use_weight=use_weight,
                 dist=d, frozen_norms=frozen_norms)
    swa = AveragedModel(bare) if cfg.train.swa_start else None
    preprocess = tdata.preprocess_info(cfg, getattr(bare, "data_config", {}) or {}, data)
    info = ckpt.model_info(bare, task, preprocess, config_to_dict(cfg))
    eng.classes = tuple(classes)
    return Session(cfg, out, data, bare, model, eng, loaders, generator, scheduler, swa, info,
                   selection=_selection(task, data))


def _selection(task: str, data: tdata.SplitData) -> dict[str, Any]:
    """The validation metric's definition on this run's val labels, and what checkpoints are selected on: the
    metric when it is defined on val (it is the number ``evaluate`` reports), else the val loss (lower is
    better) for the whole run. Never a per-epoch mix of the two scales."""
    classes = list(data.index.classes)
    cols = metric_columns(task, data.index.subset(data.ids["val"]).labels(), classes)
    return {"name": metric_name(task), "classes": [classes[i] for i in cols.keep], "excluded": cols.excluded,
            "undefined": cols.undefined, "selected_on": "val_metric" if cols.keep else "val_loss"}
