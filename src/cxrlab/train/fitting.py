"""``fit(config, out_dir, resume=False)``: build everything from the config, run the epochs, write the run dir.

The shape follows torchvision's ``references/classification/train.py``: ``fit`` builds, then loops over
``train_one_epoch`` and ``evaluate`` (in ``loop.py``), saving checkpoints each epoch. Each epoch reseeds
Python, NumPy, torch and the data order from ``(seed, epoch)``, so a resumed run replays exactly what an
uninterrupted one would have done.
"""

from __future__ import annotations

import math
import os
import random
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn
from tqdm import tqdm

from cxrlab import provenance
from cxrlab.config import Config, config_to_dict
from cxrlab.data.sampling import build_sampler, warn_if_double_correction
from cxrlab.data.transforms import build_transform
from cxrlab.errors import CxrlabError
from cxrlab.locks import folder_lock, terminate_as_interrupt
from cxrlab.train import checkpoint as ckpt
from cxrlab.train import data as tdata
from cxrlab.train import distributed as ddp
from cxrlab.train import optim
from cxrlab.train import run as rundir
from cxrlab.train.freeze import apply_freeze
from cxrlab.train.loop import Engine, evaluate, metric_columns, metric_name, train_one_epoch
from cxrlab.train.optim import build_optimizer, build_scheduler, current_lr, steps_per_step
from cxrlab.train.precision import Precision, resolve_precision
from cxrlab.train.sources import per_source_metrics, row_sources
from cxrlab.train.tracking import open_tracker
from cxrlab.utils import cpu_threads, read_json


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


# --------------------------------------------------------------------------- state, resume


def _state(s: Session, epoch: int) -> dict[str, Any]:
    opt = lambda x: x.state_dict() if x is not None else None  # noqa: E731
    return {
        "epoch": epoch, "model_name": s.cfg.model.name, "classes": list(s.data.index.classes),
        "model": {k: v.detach().cpu() for k, v in s.bare.state_dict().items()},
        "optimizer": s.eng.optimizer.state_dict(), "scheduler": opt(s.scheduler), "scaler": opt(s.eng.scaler),
        "ema": opt(s.eng.ema), "swa": opt(s.swa), "rng": ckpt.rng_state(),
        "best": s.best, "best_epoch": s.best_epoch, "bad_epochs": s.bad_epochs,
    }


def _resume(s: Session) -> int:
    """Load ``last_state.pt`` into the session; returns the next epoch."""
    path = s.out / "checkpoints" / "last_state.pt"
    st = ckpt.load_state(path)
    if st["model_name"] != s.cfg.model.name or list(st["classes"]) != list(s.data.index.classes):
        raise CxrlabError(
            f"{path} is a checkpoint of model {st['model_name']} on classes {st['classes'][:3]}..., not "
            f"{s.cfg.model.name} on this index; resume with the run's own config.yaml or pick a new --out"
        )
    provenance.check_resume(s.out, s.cfg, s.data)  # same data and settings as the run being continued
    try:
        s.bare.load_state_dict(st["model"])
    except RuntimeError:
        raise CxrlabError(f"{path} does not fit {s.cfg.model.name} as configured; resume with the run's "
                          "config.yaml") from None
    s.eng.optimizer.load_state_dict(st["optimizer"])
    planned = optim.schedule_state(s.scheduler)  # the schedule built for this config's train.epochs
    for obj, key in ((s.scheduler, "scheduler"), (s.eng.scaler, "scaler"), (s.eng.ema, "ema"), (s.swa, "swa")):
        if obj is not None and st.get(key) is not None:
            obj.load_state_dict(st[key])
    s.schedule_rebuilt = _rebuild_schedule(s, planned, int(st["epoch"]))
    ckpt.set_rng_state(st["rng"])
    s.best, s.best_epoch, s.bad_epochs = st["best"], st["best_epoch"], st["bad_epochs"]
    s.rows = rundir.read_metrics(s.out, upto_epoch=st["epoch"])
    return int(st["epoch"]) + 1


def _rebuild_schedule(s: Session, planned: list[dict[str, Any]], done: int) -> dict[str, Any] | None:
    """``--resume`` with another ``train.epochs``: the cosine schedule is rebuilt for the new total (see
    ``optim.rebuild_schedule``); warned and recorded in the manifest."""
    totals = optim.rebuild_schedule(s.scheduler, planned)
    if totals is None:
        return None
    note = {"after_epoch": done, "old_total": totals[0], "new_total": totals[1],
            "unit": "step" if s.cfg.schedule.per_step else "epoch"}
    warnings.warn(f"--resume with train.epochs={s.cfg.train.epochs}: the cosine schedule is rebuilt for the new "
                  f"total ({totals[0]} -> {totals[1]} {note['unit']}s) from epoch {done + 1} on; recorded in "
                  "manifest.json (schedule_rebuilt)", stacklevel=2)
    return note


def _save_epoch(s: Session, epoch: int, metric: float, improved: bool) -> None:
    folder = s.out / "checkpoints"
    info = {**s.info, "epoch": epoch, "val_metric": metric, "metric": metric_name(s.eng.task),
            "metric_classes": s.selection["classes"], "selected_on": s.selection["selected_on"]}
    if improved:
        evaluated = s.eng.ema.module if s.eng.ema is not None else s.bare
        ckpt.save_weights(folder / "best.safetensors", evaluated, info)
    ckpt.save_weights(folder / "last.safetensors", s.bare, info)
    ckpt.save_state(folder / "last_state.pt", _state(s, epoch))  # one file: consistent even if killed here
    s.eng.last_checkpoint = str(folder / "last_state.pt")


# --------------------------------------------------------------------------- the epochs


def _score(s: Session, result: dict[str, Any]) -> float:
    """Higher is better: the validation metric, or -loss when the run selects on loss (``_selection``)."""
    return result["metric"] if s.selection["selected_on"] == "val_metric" else -result["loss"]


def _improved(best: float | None, score: float) -> bool:
    # an undefined (NaN) score never replaces a finite best: the previous best checkpoint is kept
    if best is None or not np.isfinite(best):
        return best is None or bool(np.isfinite(score))
    return bool(score > best)


def _epoch(s: Session, epoch: int) -> bool:
    """One epoch: train, evaluate, schedule, checkpoint, log. Returns True when early stopping fires."""
    cfg, d = s.cfg, s.eng.dist
    seed_all(cfg.train.seed + 1000 * epoch + d.rank)
    s.generator.manual_seed(cfg.train.seed + epoch)  # same order on every rank: ShardSampler splits it
    lr = current_lr(s.eng.optimizer)  # the lr the epoch starts with
    s.eng.frozen_norms = apply_freeze(s.bare, cfg, epoch)
    tr = train_one_epoch(s.model, s.loaders["train"], s.eng, epoch)
    if s.swa is not None and epoch >= cfg.train.swa_start:
        s.swa.update_parameters(s.bare)
    res = evaluate(s.eng.ema.module if s.eng.ema is not None else s.bare, s.loaders["val"], s.eng)
    if s.scheduler is not None and s.eng.step_scheduler is None:
        s.scheduler.step(_score(s, res)) if cfg.schedule.name == "plateau" else s.scheduler.step()
    improved = _improved(s.best, _score(s, res))
    s.best, s.best_epoch = (_score(s, res), epoch) if improved else (s.best, s.best_epoch)
    s.bad_epochs = 0 if improved else s.bad_epochs + 1
    images = tr["images"] * d.world
    s.rows.append({"epoch": epoch, "train_loss": ddp.mean_over_ranks(tr["loss"], d), "val_loss": res["loss"],
                   "val_metric": res["metric"], "train_metric": tr["metric"], "lr": lr, "seconds": tr["seconds"],
                   "images_per_s": images / max(tr["seconds"], 1e-9), "selected_on": s.selection["selected_on"],
                   **per_source_metrics(s.data.index, res, s.eng.task, s.eng.num_classes)})
    if d.main:  # metrics first: a kill before the state is saved replays this epoch and drops its row on resume
        rundir.write_metrics(s.out, s.rows)
        _save_epoch(s, epoch, res["metric"], improved)
        r = s.rows[-1]
        if s.tracker is not None:
            s.tracker.log(r)
        tqdm.write(f"epoch {epoch}/{cfg.train.epochs} train_loss {r['train_loss']:.4f} val_loss {r['val_loss']:.4f} "
                   f"val_{metric_name(s.eng.task)} {r['val_metric']:.4f} lr {lr:.3g} {r['seconds']:.1f}s "
                   f"{r['images_per_s']:.3g} img/s{' *' if improved else ''}")
    return cfg.train.early_stopping is not None and s.bad_epochs >= cfg.train.early_stopping


def _finish_swa(s: Session) -> None:
    """Update BN statistics of the SWA average, and keep it as best when it beats the best epoch."""
    update_bn(s.loaders["train"], s.swa, device=s.eng.device)
    res = evaluate(s.swa.module, s.loaders["val"], s.eng)
    if s.eng.dist.main:
        info = {**s.info, "epoch": "swa", "val_metric": res["metric"], "metric": metric_name(s.eng.task)}
        ckpt.save_weights(s.out / "checkpoints" / "swa.safetensors", s.swa.module, info)
        if _improved(s.best, _score(s, res)):
            ckpt.save_weights(s.out / "checkpoints" / "best.safetensors", s.swa.module, info)
            s.best, s.best_epoch = _score(s, res), "swa"


def _write_predictions(s: Session) -> None:
    """Predictions of the best weights on val and test (sharded over ranks, written by rank 0)."""
    ddp.barrier(s.eng.dist)
    best = s.out / "checkpoints" / "best.safetensors"
    ckpt.load_weights_into(s.bare, best)
    meta = {"task": s.eng.task, "classes": list(s.data.index.classes), "model": s.cfg.model.name,
            "checkpoint_sha256": read_json(best.with_suffix(".json"))["weights_sha256"],
            "run_dir": str(s.out.resolve())}
    for name in ("val", "test"):
        if name in s.loaders:
            res = evaluate(s.bare, s.loaders[name], s.eng)
            if s.eng.dist.main:
                rundir.write_split_predictions(s.out, name, res, s.data.index, meta)


def fit(config: Config, out_dir: str | Path, resume: bool = False) -> Path:
    """Train ``config`` into the run directory ``out_dir`` (or continue it with ``resume``); returns it."""
    cfg, out, t0 = config, Path(out_dir), time.time()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    device = resolve_device(cfg.train.device)
    d = ddp.init_distributed(device)
    device = ddp.local_device(device, d)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        precision = resolve_precision(cfg.train.amp, device)  # an unsupported precision stops before any file
        # rank 0 holds the run directory's lock (every rank trains into the same folder)
        with folder_lock(out, f"run directory {out}") if d.main else nullcontext(), terminate_as_interrupt():
            _fit_epochs(cfg, out, device, d, resume, started, t0, precision)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        ddp.shutdown(d)
    return out


def _fit_epochs(cfg: Config, out: Path, device: torch.device, d: ddp.Dist, resume: bool, started: str,
                t0: float, precision: Precision) -> Session:
    _setup_torch(cfg, device)
    rundir.prepare_run_dir(out, resume)  # every rank checks, so a refusal stops all ranks, not only rank 0
    s = _build(cfg, out, device, d)
    start = _resume(s) if resume else 1
    if d.main and not resume:
        rundir.write_inputs(out, cfg, s.data.split)
        provenance.record_run_inputs(out, cfg, s.data)  # what a later --resume must match
    s.tracker = open_tracker(cfg, out, d.main)
    try:
        for epoch in tqdm(range(start, cfg.train.epochs + 1), desc="epochs", disable=s.eng.quiet, initial=start - 1,
                          total=cfg.train.epochs):
            if _epoch(s, epoch):
                tqdm.write(f"early stopping after epoch {epoch}: no improvement for {s.bad_epochs} epochs")
                break
        if s.swa is not None and s.swa.n_averaged.item() > 0:
            _finish_swa(s)
        _write_predictions(s)
        if d.main:
            params = sum(p.numel() for p in s.bare.parameters())
            rundir.write_manifest(out, cfg, {
                "started_at": started, "device": str(device), "world_size": d.world, "parameters": params,
                "best_epoch": s.best_epoch, "wall_seconds": time.time() - t0, "schedule_rebuilt": s.schedule_rebuilt,
                "excluded_images": s.data.excluded,
                "precision": precision.record(),
                "val_metric": s.selection,
            })
        ddp.barrier(d)
    finally:
        if s.tracker is not None:
            s.tracker.close()
    return s
