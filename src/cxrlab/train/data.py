"""Datasets and loaders for training: the index + split (+ cache), checked, with seeded data order."""

from __future__ import annotations

import math
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, Subset

from cxrlab.config import Config
from cxrlab.data.index import Index
from cxrlab.errors import CxrlabError


@dataclass
class SplitData:
    """The index, the (fold-resolved) split and the image ids of each part."""

    index: Index
    split: pd.DataFrame
    ids: dict[str, list[str]]
    cache: Any | None  # cxrlab.data.cache.Cache
    cache_size: int


def load_data(cfg: Config) -> SplitData:
    """Load index, split (fold view for k-fold) and cache; check the parts the loop needs."""
    from cxrlab.data.index import load_index
    from cxrlab.data.splits import fold_view, load_split, split_ids

    index = load_index(cfg.data.index)
    from cxrlab.data.merge import check_members

    for note in check_members(index):  # a merged index: its members must be what was merged
        warnings.warn(note, UserWarning, stacklevel=2)
    split = load_split(cfg.data.split)
    from cxrlab.provenance import check_split_index

    check_split_index(cfg.data.split, index)  # made from this index? (a warning: ids may still match)
    if cfg.data.fold is not None:
        split = fold_view(split, cfg.data.fold)
    known = split["image_id"].astype(str).isin(set(index.frame["image_id"].astype(str)))
    if not known.all():  # e.g. a split made before images were dropped from the index
        warnings.warn(f"{cfg.data.split}: {int((~known).sum())} image ids are not in {cfg.data.index}; ignored",
                      UserWarning, stacklevel=2)
    split = split[known].reset_index(drop=True)
    ids = {name: split_ids(split, name) for name in ("train", "val", "test")}
    for name in ("train", "val"):
        if not ids[name]:
            raise CxrlabError(
                f"{cfg.data.split} has no {name} images for index {cfg.data.index}; re-split with "
                "`cxrlab data split INDEX --val 0.1` (or pick a fold with --set data.fold=K)"
            )
    cache, cache_size = None, cfg.data.cache_size
    if cfg.data.cache:
        from cxrlab.data.cache import open_cache

        cache = open_cache(cfg.data.cache)
        cache_size = int(cache.size)
    if cfg.data.require_positives:
        check_positives(index.subset(ids["train"]), cfg.data.split)
    return SplitData(index, split, ids, cache, cache_size)


def class_counts(index: Index) -> np.ndarray:
    """Multi-label: (2, C) known negatives and positives; multi-class: (C,) images per class."""
    labels = index.labels()  # (N, C), NaN unknown
    if index.task == "multiclass":
        return np.bincount(index.class_indices(), minlength=len(index.classes)).astype(np.float64)
    return np.stack([(labels == 0).sum(axis=0), (labels == 1).sum(axis=0)]).astype(np.float64)


def check_positives(train: Index, split_path: str) -> None:
    """A class without a positive training image cannot be learned: stop with the fix."""
    counts = class_counts(train)
    pos = counts if train.task == "multiclass" else counts[1]
    empty = [c for c, n in zip(train.classes, pos) if n == 0]
    if empty:
        raise CxrlabError(
            f"class {empty[0]!r} has no positive image in the train part of {split_path}"
            + (f" (also: {', '.join(empty[1:])})" if len(empty) > 1 else "")
            + "; re-split with more data, drop the class from the index, or --set data.require_positives=false"
        )


def make_dataset(cfg: Config, data: SplitData, ids: list[str], transform, return_weight: bool = False) -> Dataset:
    """A cached dataset when ``data.cache`` is set, else one that decodes the files every time."""
    from cxrlab.data.dataset import CachedImageDataset, FileImageDataset

    if data.cache is not None:
        return CachedImageDataset(data.index, ids, data.cache, transform=transform, return_weight=return_weight)
    return FileImageDataset(data.index, ids, size=data.cache_size, policy=cfg.data.policy, transform=transform,
                            return_weight=return_weight)


def dataset_labels(dataset: Dataset) -> np.ndarray:
    """(N, C) float labels of a dataset (one-hot for multi-class), for samplers."""
    targets = np.asarray(dataset.targets)
    if targets.ndim == 1:
        return np.eye(len(dataset.classes), dtype=np.float32)[targets]
    return targets


def _seed_worker(worker_id: int) -> None:
    # each worker gets torch's per-worker seed (derived from the loader's generator); mirror it for numpy/random
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


class ShardSampler(Sampler):
    """Draw the full order from ``base`` (identical on every rank: same seed) and keep this rank's share.

    The order is padded by wrapping so every rank gets the same number of samples (DDP needs equal steps).
    """

    def __init__(self, base: Sampler, rank: int, world: int) -> None:
        self.base, self.rank, self.world = base, rank, world

    def __len__(self) -> int:
        return math.ceil(len(self.base) / self.world)

    def __iter__(self):
        order = list(self.base)
        total = len(self) * self.world
        order += order[: total - len(order)]
        return iter(order[self.rank::self.world])


def train_loader(cfg: Config, dataset: Dataset, sampler: Sampler | None, generator: torch.Generator,
                 rank: int = 0, world: int = 1) -> DataLoader:
    """Shuffled (or weighted) training loader; reseed ``generator`` each epoch for a reproducible order."""
    base = sampler if sampler is not None else RandomSampler(dataset, generator=generator)
    if world > 1:
        base = ShardSampler(base, rank, world)
    return DataLoader(
        dataset, batch_size=cfg.train.batch_size, sampler=base, num_workers=cfg.data.num_workers,
        generator=generator, worker_init_fn=_seed_worker, drop_last=len(base) > cfg.train.batch_size,
        pin_memory=torch.cuda.is_available(), persistent_workers=False,
    )


def eval_loader(cfg: Config, dataset: Dataset, rank: int = 0, world: int = 1) -> DataLoader:
    """In-order loader for validation/prediction (this rank's strided share under DDP)."""
    if world > 1:
        dataset = Subset(dataset, list(range(rank, len(dataset), world)))
    batch = cfg.train.eval_batch_size or 2 * cfg.train.batch_size
    return DataLoader(dataset, batch_size=batch, shuffle=False, num_workers=cfg.data.num_workers,
                      worker_init_fn=_seed_worker)


def preprocess_info(cfg: Config, model_config: dict[str, Any], data: SplitData) -> dict[str, Any]:
    """What a checkpoint needs to preprocess new images exactly like training's evaluation transform.

    ``cache_size``/``policy`` are those of the cache when there is one (it may differ from the config's);
    data paths are absolute so ``cxrlab predict`` works from any folder.
    """
    return {
        "image_size": cfg.data.image_size,
        "in_chans": cfg.model.in_chans,
        "mean": list(model_config.get("mean", (0.5,))),
        "std": list(model_config.get("std", (0.25,))),
        "cache_size": data.cache_size,
        "policy": data.cache.policy if data.cache is not None else cfg.data.policy,
        "augment_policy": cfg.augment.policy,
        "clahe": cfg.augment.clahe,
        "index": str(Path(cfg.data.index).resolve()),
        "cache": str(Path(cfg.data.cache).resolve()) if cfg.data.cache else None,
    }
