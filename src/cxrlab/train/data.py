"""Datasets and loaders for training: the index + split (+ cache), checked, with seeded data order."""

from __future__ import annotations

import math
import random
import warnings
from dataclasses import dataclass, field
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
    excluded: dict[str, int] = field(default_factory=dict)  # split part -> images dropped (failed to cache)


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
    cache, cache_size = None, cfg.data.cache_size or 256
    if cfg.data.cache:
        from cxrlab.data.cache import open_cache

        cache = open_cache(cfg.data.cache)
        cache_size = _cache_size(cfg, int(cache.size))
    if cfg.data.require_positives:
        check_positives(index.subset(ids["train"]), cfg.data.split)
    check_patients(index, ids, cfg.data.split, cfg.data.allow_patient_leak)
    return SplitData(index, split, ids, cache, cache_size)


def _cache_size(cfg: Config, size: int) -> int:
    """The cache's side, which must be the configured ``data.cache_size`` when one is set (null: the cache's)."""
    if cfg.data.cache_size is not None and cfg.data.cache_size != size:
        raise CxrlabError(
            f"data.cache {cfg.data.cache} holds {size}-px images but data.cache_size={cfg.data.cache_size}; rebuild "
            f"the cache with `cxrlab data cache INDEX --size {cfg.data.cache_size} --out DIR`, or --set "
            f"data.cache_size={size} (or null: use the cache's size)")
    if size < cfg.data.image_size:
        warnings.warn(f"data.cache {cfg.data.cache} holds {size}-px images, smaller than data.image_size="
                      f"{cfg.data.image_size}: every image is upsampled (rebuild the cache at >= "
                      f"{cfg.data.image_size} px to train on the detail)", UserWarning, stacklevel=3)
    return size


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


def check_patients(index: Index, ids: dict[str, list[str]], split_path: str, allow: bool = False) -> None:
    """A patient with images in two parts (train and test, ...) leaks: an error naming one, unless ``allow``
    (``data.allow_patient_leak``, then a warning with the count)."""
    from cxrlab.data.split_csv import patient_ids

    pid = dict(zip(index.frame["image_id"].astype(str), patient_ids(index)))
    parts = pd.DataFrame([(pid[i], part) for part, some in ids.items() for i in some], columns=["patient", "part"])
    per = parts.groupby("patient")["part"].unique()
    leaks = per[per.map(len) > 1]
    if leaks.empty:
        return
    first, where = str(leaks.index[0]), " and ".join(sorted(leaks.iloc[0]))
    what = f"{split_path}: {len(leaks)} patients have images in several parts (e.g. patient {first} in {where})"
    if allow:
        warnings.warn(f"{what}; trained anyway (data.allow_patient_leak=true): the scores are optimistic",
                      UserWarning, stacklevel=3)
        return
    raise CxrlabError(f"{what}; re-split by patient with `cxrlab data split INDEX --out split.csv` (or --set "
                      "data.allow_patient_leak=true to train on it anyway)")


def make_dataset(cfg: Config, data: SplitData, ids: list[str], transform, return_weight: bool = False) -> Dataset:
    """A cached dataset when ``data.cache`` is set, else one that decodes the files every time."""
    from cxrlab.data.dataset import CachedImageDataset, FileImageDataset

    if data.cache is not None:
        dataset = CachedImageDataset(data.index, ids, data.cache, transform=transform, return_weight=return_weight)
        part = next((k for k, v in data.ids.items() if v is ids), "images")
        if dataset.n_excluded:  # counted, warned and recorded in manifest.json (excluded_images)
            data.excluded[part] = dataset.n_excluded
            warnings.warn(f"{dataset.n_excluded} of {len(ids)} {part} images failed to cache in {data.cache.dir} "
                          "and are left out (recorded in manifest.json; see its meta.json status for why)",
                          UserWarning, stacklevel=2)
        return dataset
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
