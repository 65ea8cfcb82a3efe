"""Optional experiment tracking (``train.log: tensorboard|mlflow``): each epoch's metrics.csv row, mirrored.

Off by default; the run directory is complete without it. TensorBoard writes to ``RUN/tensorboard``; MLflow
logs to its own tracking URI (``MLFLOW_TRACKING_URI``, default ``./mlruns``) with the resolved config as
parameters. Both come from the ``track`` extra: ``pip install 'cxrlab[track]'``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from cxrlab.config import Config, config_to_dict
from cxrlab.extras import require_extra


class Tracker:
    """Mirror of metrics.csv rows to TensorBoard or MLflow."""

    def __init__(self, kind: str, cfg: Config, out: Path) -> None:
        self.kind = kind
        if kind == "tensorboard":
            require_extra("track", "tensorboard")
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tensorboard"))
        else:
            self.mlflow = require_extra("track", "mlflow")
            self.mlflow.start_run(run_name=f"{cfg.name}:{out.name}")
            self.mlflow.log_params(_flat(config_to_dict(cfg)))

    def log(self, row: dict[str, Any]) -> None:
        values = {k: float(v) for k, v in row.items() if k != "epoch" and isinstance(v, (int, float))
                  and math.isfinite(v)}
        if self.kind == "tensorboard":
            for k, v in values.items():
                self.writer.add_scalar(k, v, int(row["epoch"]))
            self.writer.flush()
        else:
            self.mlflow.log_metrics(values, step=int(row["epoch"]))

    def close(self) -> None:
        if self.kind == "tensorboard":
            self.writer.close()
        else:
            self.mlflow.end_run()


def open_tracker(cfg: Config, out: Path, main: bool = True) -> Tracker | None:
    """The run's tracker (rank 0 only), or None when ``train.log`` is none."""
    return Tracker(cfg.train.log, cfg, out) if main and cfg.train.log != "none" else None


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = str(v)[:250]  # MLflow caps parameter values
    return out
