"""``fit(config, out_dir, resume=False)``: build everything from the config, run the epochs, write the run dir.

The shape follows torchvision's ``references/classification/train.py``: ``fit`` builds, then loops over
``train_one_epoch`` and ``evaluate`` (in ``loop.py``), saving checkpoints each epoch. Each epoch reseeds
Python, NumPy, torch and the data order from ``(seed, epoch)``, so a resumed run replays exactly what an
uninterrupted one would have done.
"""

from __future__ import annotations

import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import update_bn
from tqdm import tqdm

from cxrlab import provenance
from cxrlab.config import Config
from cxrlab.errors import CxrlabError
from cxrlab.locks import folder_lock, terminate_as_interrupt
from cxrlab.train import checkpoint as ckpt
from cxrlab.train import distributed as ddp
from cxrlab.train import optim
from cxrlab.train import run as rundir
from cxrlab.train.freeze import apply_freeze
from cxrlab.train.loop import evaluate, metric_name, train_one_epoch
from cxrlab.train.optim import current_lr
from cxrlab.train.precision import Precision, resolve_precision
from cxrlab.train.setup import (  # noqa: F401 - re-exported: fit's setup lives there
    Session,
    _amp,
    _build,
    _dry_forward,
    _loaders,
    _selection,
    _setup_torch,
    _transforms,
    _working_sizes,
    build_model,
    resolve_device,
    seed_all,
)
from cxrlab.train.sources import per_source_metrics
from cxrlab.train.tracking import open_tracker
from cxrlab.utils import read_json

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
