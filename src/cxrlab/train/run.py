"""The run directory: resolved config, split copy, metrics.csv, predictions and the manifest.

Layout (see docs/architecture.md): ``config.yaml``, ``split.csv``, ``metrics.csv``, ``checkpoints/``,
``predictions/{val,test}.csv``, ``manifest.json`` (the names are ``cxrlab.rundir``'s constants; ``RunDir`` reads
them). Only rank 0 calls these writers.
"""

from __future__ import annotations

import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from cxrlab import __version__
from cxrlab.config import Config, save_config
from cxrlab.errors import CxrlabError
from cxrlab.predictions import Predictions, write_predictions
from cxrlab.rundir import CHECKPOINTS, CONFIG, MANIFEST, METRICS, PREDICTIONS, SPLIT
from cxrlab.utils import atomic_write_text, sha256_file, write_json

METRIC_COLUMNS = ["epoch", "train_loss", "val_loss", "val_metric", "lr", "seconds", "images_per_s", "train_metric",
                  "selected_on"]  # selected_on: val_metric, or val_loss when the metric is undefined on val


def prepare_run_dir(out: Path, resume: bool) -> None:
    """Refuse to overwrite a run by accident; ``--resume`` needs an existing one."""
    state = out / CHECKPOINTS / "last_state.pt"
    if resume and not state.exists():
        raise CxrlabError(f"--resume: {state} does not exist; run without --resume to start {out}")
    if not resume and state.exists():
        raise CxrlabError(f"{out} already holds a run; add --resume to continue it, or choose another --out")
    (out / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    (out / PREDICTIONS).mkdir(exist_ok=True)


def write_inputs(out: Path, cfg: Config, split: pd.DataFrame) -> None:
    """The resolved config (data paths made absolute: later verbs read paths recorded in a run relative to the
    run, never to the current directory) and the split actually used (fold view applied)."""
    from dataclasses import replace

    data = cfg.data
    absolute = {k: str(Path(v).resolve()) for k, v in (("index", data.index), ("split", data.split),
                                                        ("cache", data.cache)) if v}
    save_config(replace(cfg, data=replace(data, **absolute)), out / CONFIG)
    atomic_write_text(out / SPLIT, split.to_csv(index=False, lineterminator="\n"))


def read_metrics(out: Path, upto_epoch: int | None = None) -> list[dict[str, Any]]:
    """Rows of ``metrics.csv`` (those with epoch <= ``upto_epoch`` when given: resume drops later ones)."""
    path = out / METRICS
    if not path.exists():
        return []
    rows = pd.read_csv(path).to_dict("records")
    return [r for r in rows if upto_epoch is None or r["epoch"] <= upto_epoch]


def write_metrics(out: Path, rows: list[dict[str, Any]]) -> None:
    extra = sorted({k for r in rows for k in r} - set(METRIC_COLUMNS))  # e.g. val_metric_<source> (merged data)
    frame = pd.DataFrame(rows, columns=[*METRIC_COLUMNS, *extra])
    atomic_write_text(out / METRICS, frame.to_csv(index=False, float_format="%.6g", lineterminator="\n"))


def write_split_predictions(out: Path, name: str, result: dict[str, Any], index, meta: dict[str, Any]) -> Path:
    """``predictions/<name>.csv`` with patient ids and the sidecar meta (task, classes, model, split, ...)."""
    patients = dict(zip(index.frame["image_id"].astype(str), index.frame["patient_id"].astype(str)))
    preds = Predictions(
        image_ids=[str(i) for i in result["ids"]],
        probs=np.asarray(result["probs"], dtype=np.float64),
        classes=list(index.classes),
        meta={**meta, "split": name},
        patient_ids=[patients.get(str(i), "") for i in result["ids"]],
    )
    return write_predictions(out / PREDICTIONS / f"{name}.csv", preds)


def git_commit() -> str | None:
    """The source tree's commit when cxrlab runs from a git checkout (read-only query), else None."""
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return (res.stdout.strip() or None) if res.returncode == 0 else None


def _hash(path: str | Path | None) -> str | None:
    if not path:
        return None
    p = Path(path)
    p = p / "index.csv" if p.is_dir() and (p / "index.csv").exists() else p
    return sha256_file(p) if p.is_file() else None


def _start_weights(cfg: Config) -> dict[str, Any] | None:
    """The local weights file the model started from (``model.weights``) and its sha256, or None."""
    if not cfg.model.weights:
        return None
    from cxrlab.models.weights import find_weights_file

    file = find_weights_file(cfg.model.weights)
    return {"file": str(file.resolve()), "sha256": sha256_file(file), "model": cfg.model.name}


def write_manifest(out: Path, cfg: Config, extra: dict[str, Any]) -> None:
    """``manifest.json``: code version, data hashes, environment, seed, timing, parameters."""
    import timm

    cache_meta = Path(cfg.data.cache) / "meta.json" if cfg.data.cache else None
    manifest = {
        "cxrlab_version": __version__,
        "git_commit": git_commit(),
        "config": cfg.name,
        "data": {
            "index": str(cfg.data.index),
            "index_sha256": _hash(cfg.data.index),
            "split": str(cfg.data.split),
            "split_sha256": _hash(cfg.data.split),
            "run_split_sha256": _hash(out / SPLIT),
            "cache": cfg.data.cache,
            "cache_meta_sha256": _hash(cache_meta),
        },
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "timm": timm.__version__,
            "numpy": np.__version__,
            "platform": platform.platform(),
            "cuda": torch.version.cuda,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "start_weights": _start_weights(cfg),
        "seed": cfg.train.seed,
        "deterministic": cfg.train.deterministic,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }
    write_json(out / MANIFEST, manifest)
