"""Where the images to predict come from, and how they are read: one rule for every verb.

Sources (each an ``ImageSet``: ids, files, labels in the model's class order when known, patient ids):

- ``images_from_run(info, split)``: a split (train/val/test) of the run's own ``split.csv`` over its index;
- ``images_from_index(index, classes, split=...)``: all images of an index (another dataset: external
  validation), or one split of it (``split_csv`` rows, else the index's ``official_split``/``given_split``);
- ``images_from_files(path)``: one image file or every image in a folder (sorted; sub-folders included).

Reading (``ImageSetDataset``): the run's preprocessing cache stands in for decoding when it opens, was built at
the run's size and policy, and the images come from an index (their ids are then dataset ids, as in training;
a folder's file names are not matched). Images the cache does not hold (or failed to cache) are decoded from
their files. Either way the pixels are identical: the cache stores ``resize_image(read_image(f))``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from cxrlab.data.cache import open_cache
from cxrlab.data.index import Index, load_index
from cxrlab.data.splits import SPLITS, load_split, split_ids
from cxrlab.errors import CxrlabError
from cxrlab.predict.info import RunInfo
from cxrlab.predict.preprocess import eval_transform
from cxrlab.provenance import check_cache, check_image_file, expected_hashes

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".bmp", ".tif", ".tiff")
SPLIT_COLUMNS = ("official_split", "given_split")  # an index's own split columns (dataset adapters write them)


@dataclass(frozen=True)
class ImageSet:
    """Images to predict or explain, row-aligned: ids, files, labels (N, C) float in the model's class order
    (NaN unknown) when the source has them, patient ids when known. ``name`` says what they are (a split
    name, ``index`` or ``images``); ``index`` is the index file they come from (None for files)."""

    image_ids: list[str]
    paths: list[Path]
    name: str = "images"
    labels: np.ndarray | None = None
    patient_ids: list[str] | None = None
    index: str | None = None
    boxes_path: str | None = None
    boxes_size: float | None = None
    sha256: list[str | None] | None = None  # the index's recorded file hash per image (None: not recorded)
    source: Any = field(default=None, repr=False, compare=False)  # the loaded Index the rows come from
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.image_ids)

    def subset(self, keep: list[int]) -> ImageSet:
        """The rows ``keep``, in that order."""
        return replace(self, image_ids=[self.image_ids[i] for i in keep], paths=[self.paths[i] for i in keep],
                       labels=None if self.labels is None else self.labels[keep],
                       patient_ids=None if self.patient_ids is None else [self.patient_ids[i] for i in keep],
                       sha256=None if self.sha256 is None else [self.sha256[i] for i in keep])


# ----------------------------------------------------------------------------- sources
def images_from_files(path: str | Path, *, option: str = "--images") -> ImageSet:
    """One image file, or every image file in a folder (sorted; sub-folders included); ids are file names, or
    paths relative to the folder when two files share a name (``a/x.png`` and ``b/x.png``)."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    else:
        raise CxrlabError(f"{option} {path} does not exist; pass an image file or a folder of images")
    if not files:
        raise CxrlabError(f"{option} {path}: no image files ({', '.join(IMAGE_SUFFIXES)}) found")
    names = [p.name for p in files]
    if len(set(names)) < len(names):  # one id per image: names collide across sub-folders
        names = [p.relative_to(path).as_posix() for p in files]
    return ImageSet(names, files, name="images")


def images_from_index(index: Any, classes: list[str] | tuple[str, ...], *, split: str | None = None,
                      split_csv: str | Path | None = None, option: str = "--index") -> ImageSet:
    """Rows of an index (a path or a loaded ``Index``): all of them, or those of ``split``.

    With ``split``, the rows come from ``split_csv`` (in its order) when given, else from the index's
    ``official_split``/``given_split`` column. Labels are returned when the index has every one of ``classes``.
    """
    idx = index if isinstance(index, Index) else load_index(index)
    where = str(idx.path or index)
    ids = idx.frame["image_id"].astype(str).tolist()
    if split is not None:
        ids = _split_rows(idx, split, split_csv, where, option)
    if not ids:
        raise CxrlabError(f"index {where} has no rows" + (f" in split {split!r}" if split else ""))
    sub = idx.subset(ids)
    labels = None
    if all(c in sub.frame.columns for c in classes):
        labels = sub.frame[list(classes)].apply(lambda s: s.astype(float)).to_numpy(dtype=np.float64)
    boxes = idx.boxes_path
    hashes = expected_hashes(idx)
    return ImageSet(ids, [Path(p) for p in sub.absolute_paths()], name=split or "index", labels=labels,
                    patient_ids=sub.frame["patient_id"].astype(str).tolist(), index=where,
                    boxes_path=str(boxes) if boxes is not None and boxes.exists() else None,
                    boxes_size=idx.meta.get("boxes_image_size"), sha256=[hashes.get(i) for i in ids], source=idx)


def _split_rows(idx: Any, split: str, split_csv: str | Path | None, where: str, option: str) -> list[str]:
    known = set(idx.frame["image_id"].astype(str))
    if split_csv is not None:
        if not Path(split_csv).exists():
            raise CxrlabError(f"{split_csv} not found; --split needs a run directory from `cxrlab train` "
                              "(or use --images)")
        ids = split_ids(load_split(split_csv), split)
        if not ids:
            raise CxrlabError(f"{split_csv} has no {split!r} images; choose another --split (train/val/test) "
                              "or --images")
        missing = [i for i in ids if i not in known]
        if missing:
            raise CxrlabError(f"{len(missing)} image ids of {split_csv} are not in the index {where} (e.g. "
                              f"{missing[0]}); was the split made from this index?")
        return ids
    column = next((c for c in SPLIT_COLUMNS if c in idx.frame.columns), None)
    if column is None:
        raise CxrlabError(f"{option} {where} has no split column ({' or '.join(SPLIT_COLUMNS)}); leave out --split "
                          "to predict every image of the index")
    if split not in SPLITS:
        raise CxrlabError(f"--split {split!r} is not one of {', '.join(SPLITS)}")
    frame = idx.frame[idx.frame[column].astype(str).str.lower() == split]
    return frame["image_id"].astype(str).tolist()


def images_from_run(info: RunInfo, split: str) -> ImageSet:
    """``split`` (train/val/test) of the run's own ``split.csv``, over the index it was trained on."""
    if info.split_csv is None:
        raise CxrlabError(f"{info.checkpoint} is not inside a run directory, so it has no split.csv; --split "
                          "needs a run directory from `cxrlab train` (or use --images / --index)")
    if info.index is None:
        raise CxrlabError(f"{info.checkpoint}: the checkpoint does not record its index; pass --index INDEX")
    return images_from_index(info.index, info.classes, split=split, split_csv=info.split_csv)


# ----------------------------------------------------------------------------- reading
def open_run_cache(info: RunInfo, images: ImageSet) -> Any | None:
    """The run's preprocessing cache when it can stand in for decoding ``images`` (see module docstring)."""
    path = info.cache
    if not path or images.index is None or not Path(path).is_dir():
        return None
    try:
        cache = open_cache(path)
    except CxrlabError as exc:
        log.warning("not reading from the run's cache: %s", exc)
        return None
    p = info.preprocess
    if cache.size != p.cache_size or cache.policy != p.policy:
        log.warning("cache %s is %d px %s, the run expects %d px %s: decoding the files instead", path, cache.size,
                    cache.policy, p.cache_size, p.policy)
        return None
    if images.source is not None:
        in_cache = set(cache.image_ids)
        held = [i for i in images.image_ids if i in in_cache]
        try:  # built from this index, or from the same image files (by sha256): else the files are decoded
            check_cache(cache, images.source, held)
        except CxrlabError as exc:
            log.warning("not reading from the run's cache: %s", exc)
            return None
    return cache


def cached_rows(images: ImageSet, cache: Any | None) -> np.ndarray:
    """(N,) int: each image's row in ``cache``, -1 where it must be decoded from its file."""
    if cache is None:
        return np.full(len(images), -1, dtype=np.int64)
    rows = {i: r for r, i in enumerate(cache.image_ids) if cache.ok[r]}
    return np.array([rows.get(i, -1) for i in images.image_ids], dtype=np.int64)


class ImageSetDataset(Dataset):
    """An ``ImageSet`` as the run's model inputs. Item: ``(x, target, image_id)``: ``x`` float32 (C, S, S);
    ``target`` multi-label float32 (C,) with NaN unknown, multi-class int64 (-1 unknown), or -1 without
    labels. ``original_size(i)`` is the decoded file's (H, W) (None for an image read from the cache)."""

    def __init__(self, images: ImageSet, info: RunInfo, *, cache: Any | None = None,
                 transform: Callable | None = None) -> None:
        self.images, self.info, self.cache = images, info, cache
        self.transform = transform or eval_transform(info)
        self.rows = cached_rows(images, cache)
        self.image_ids = images.image_ids
        self.targets = _targets(images.labels, info.task)
        self._sizes: dict[int, tuple[int, int]] = {}
        self._checked: set[int] = set()  # each decoded file is compared with the index's sha256 once

    @property
    def n_from_cache(self) -> int:
        return int((self.rows >= 0).sum())

    def __len__(self) -> int:
        return len(self.images)

    def load_uint8(self, i: int) -> torch.Tensor:
        """Image ``i`` resized as the run's cache stores it: uint8 (1, S, S)."""
        if self.rows[i] >= 0:
            return torch.from_numpy(self.cache.read(self.rows[i]))[None]
        from cxrlab.data.images import read_image, resize_image

        if i not in self._checked and self.images.sha256 is not None:
            check_image_file(self.images.paths[i], self.images.sha256[i], self.images.index)
            self._checked.add(i)
        raw = read_image(self.images.paths[i])
        self._sizes[i] = tuple(raw.shape[:2])
        p = self.info.preprocess
        return torch.from_numpy(resize_image(raw, p.cache_size, p.policy))[None]

    def original_size(self, i: int) -> tuple[int, int] | None:
        return self._sizes.get(i)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        target = torch.tensor(-1) if self.targets is None else torch.tensor(self.targets[i])
        return self.transform(self.load_uint8(i)), target, self.image_ids[i]


def _targets(labels: np.ndarray | None, task: str) -> np.ndarray | None:
    if labels is None:
        return None
    if task == "multilabel":
        return labels.astype(np.float32)
    known = ~np.isnan(labels).all(axis=1)
    return np.where(known, np.nan_to_num(labels, nan=-1).argmax(axis=1), -1).astype(np.int64)


@dataclass(frozen=True)
class Batch:
    """Rows ``rows`` of a dataset: inputs (B, C, S, S) and original (H, W) sizes (None: read from the cache)."""

    rows: list[int]
    x: torch.Tensor
    sizes: list[tuple[int, int] | None]


def iter_batches(dataset: ImageSetDataset, batch_size: int) -> Iterator[Batch]:
    """The dataset in order, ``batch_size`` images at a time (in this process: sizes are recorded)."""
    for start in range(0, len(dataset), batch_size):
        rows = list(range(start, min(start + batch_size, len(dataset))))
        x = torch.stack([dataset[i][0] for i in rows])
        yield Batch(rows, x, [dataset.original_size(i) for i in rows])
