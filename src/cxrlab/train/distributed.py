"""Multi-process training under ``torchrun``: process group, DDP wrap, gathering on rank 0.

``torchrun --nproc_per_node N -m cxrlab train ...`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; we start the
process group (nccl on GPU, gloo on CPU), give each rank its share of the data, and let rank 0 alone write
the run directory. Without those variables everything here is a no-op (world size 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class Dist:
    """Where this process stands: rank, world size, local rank."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device: torch.device) -> Dist:
    """Start the process group when launched by torchrun (WORLD_SIZE > 1); otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(local)
    return Dist(rank, world, local)


def local_device(device: torch.device, d: Dist) -> torch.device:
    """Each rank's own GPU under DDP."""
    return torch.device("cuda", d.local_rank) if device.type == "cuda" and d.enabled else device


def wrap(model: nn.Module, d: Dist, device: torch.device) -> nn.Module:
    """DistributedDataParallel when distributed, else the model itself."""
    if not d.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def gather(obj: Any, d: Dist) -> list[Any]:
    """Every rank's ``obj``, in rank order (a one-element list when not distributed)."""
    if not d.enabled:
        return [obj]
    out: list[Any] = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def mean_over_ranks(value: float, d: Dist) -> float:
    """Average a Python number over ranks."""
    return sum(gather(float(value), d)) / d.world


def broadcast(obj: Any, d: Dist) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. 'stop now' from early stopping)."""
    if not d.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def shutdown(d: Dist) -> None:
    """Leave the process group (end of fit)."""
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
