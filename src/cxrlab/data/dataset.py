"""PyTorch Datasets over an index: from the preprocessing cache (fast) or from the image files (no cache).

Item: ``(image, target, image_id)`` (+ ``weight`` with ``return_weight``). ``image`` is ``transform(x)`` with
``x`` a uint8 tensor (1, S, S), or ``x`` itself. ``target``: multi-label float32 (C,) with NaN for unknown;
multi-class int64 scalar.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from cxrlab.data.cache import Cache, open_cache
from cxrlab.data.images import read_image, resize_image
from cxrlab.data.index import Index
from cxrlab.errors import CxrlabError
from cxrlab.provenance import check_cache, check_image_file, expected_hashes


def _targets(index: Index) -> np.ndarray:
    """(N, C) float32 for multi-label, (N,) int64 for multi-class."""
    return index.class_indices() if index.task == "multiclass" else index.labels()


def _check_ids(index: Index, image_ids: Sequence[str]) -> list[str]:
    ids = [str(i) for i in image_ids]
    known = set(index.frame["image_id"].astype(str))
    missing = [i for i in ids if i not in known]
    if missing:
        raise CxrlabError(
            f"{len(missing)} image ids are not in the index (e.g. {missing[0]}); was the split made from this index?"
        )
    return ids


class _IndexDataset(Dataset):
    """Targets, weights and ids of the chosen rows; subclasses load the pixels."""

    def __init__(self, index: Index, image_ids: Sequence[str], transform: Callable | None, return_weight: bool):
        sub = index.subset(_check_ids(index, image_ids))
        self.image_ids = sub.frame["image_id"].astype(str).tolist()
        self.targets = _targets(sub)
        self.sample_weights = sub.weights()
        self.task, self.classes = index.task, list(index.classes)
        self.transform, self.return_weight = transform, return_weight
        self.n_excluded = 0

    def __len__(self) -> int:
        return len(self.image_ids)

    def _load(self, i: int) -> torch.Tensor:
        raise NotImplementedError

    def __getitem__(self, i: int) -> tuple:
        x = self._load(i)  # (1, S, S) uint8
        image = self.transform(x) if self.transform is not None else x
        target = torch.tensor(self.targets[i])
        if self.return_weight:
            return image, target, self.image_ids[i], torch.tensor(self.sample_weights[i])
        return image, target, self.image_ids[i]

    def _keep(self, mask: np.ndarray) -> None:
        """Drop rows where ``mask`` is False, counting them in ``n_excluded``."""
        self.n_excluded = int((~mask).sum())
        self.image_ids = [i for i, k in zip(self.image_ids, mask) if k]
        self.targets, self.sample_weights = self.targets[mask], self.sample_weights[mask]


class CachedImageDataset(_IndexDataset):
    """Images from a preprocessing cache (``cxrlab data cache``); images that failed to cache are excluded."""

    def __init__(
        self,
        index: Index,
        image_ids: Sequence[str],
        cache: Cache | str | Path,
        transform: Callable | None = None,
        return_weight: bool = False,
        size: int | None = None,
        policy: str | None = None,
    ):
        super().__init__(index, image_ids, transform, return_weight)
        self.cache = cache if isinstance(cache, Cache) else open_cache(cache)
        # built from this index (or its images), at the size/policy expected: else a one-line error
        check_cache(self.cache, index, self.image_ids, size=size, policy=policy)
        rows = np.array([self.cache.row(i) for i in self.image_ids], dtype=np.int64)
        ok = self.cache.ok[rows] if len(rows) else np.zeros(0, dtype=bool)
        self._keep(ok)
        self.rows = rows[ok]

    def _load(self, i: int) -> torch.Tensor:
        # the memmap opens lazily in each DataLoader worker; read copies the row out (its chunk crc32-checked once)
        return torch.from_numpy(self.cache.read(self.rows[i]))[None]


class FileImageDataset(_IndexDataset):
    """Images decoded from their files on every access (no cache); an unreadable file raises CxrlabError."""

    def __init__(
        self,
        index: Index,
        image_ids: Sequence[str],
        size: int = 256,
        policy: str = "letterbox",
        transform: Callable | None = None,
        return_weight: bool = False,
    ):
        super().__init__(index, image_ids, transform, return_weight)
        paths = dict(zip(index.frame["image_id"].astype(str), index.absolute_paths()))
        self.paths = [paths[i] for i in self.image_ids]
        self.size, self.policy = size, policy
        hashes = expected_hashes(index)
        self.hashes = [hashes.get(i) for i in self.image_ids]
        self.index_path = index.path
        self._checked: set[int] = set()  # each file is compared with the index's sha256 once per process

    def _load(self, i: int) -> torch.Tensor:
        if i not in self._checked:
            check_image_file(self.paths[i], self.hashes[i], self.index_path)
            self._checked.add(i)
        return torch.from_numpy(resize_image(read_image(self.paths[i]), self.size, self.policy))[None]
