"""Images in, model-ready tensors out: the run's model and preprocessing, image sets, and the geometry that
maps original-image coordinates (boxes) onto the model input.

The preprocessing is the run's evaluation path exactly: ``read_image`` -> ``resize_image(cache_size,
policy)`` (or the row of the run's cache, which holds exactly that) -> the eval transform of the run's
augmentation policy (resize, maybe center crop, normalise).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxrlab.errors import CxrlabError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".bmp", ".tif", ".tiff")


@dataclass
class ImageSet:
    """The images to explain or predict: ids, files and (when known) labels in the model's class order."""

    image_ids: list[str]
    paths: list[Path]
    labels: np.ndarray | None = None  # (N, C) float, NaN unknown
    meta: dict[str, Any] = field(default_factory=dict)

    def subset(self, keep: list[int]) -> ImageSet:
        labels = None if self.labels is None else self.labels[keep]
        return ImageSet([self.image_ids[i] for i in keep], [self.paths[i] for i in keep], labels, self.meta)


@dataclass
class Preprocess:
    """Everything needed to turn a file into the model input, and to map coordinates onto it."""

    transform: Any
    cache_size: int
    policy: str  # letterbox | center_crop
    base: int  # side after the eval transform's resize
    image_size: int  # side after the center crop (== base when the policy does not crop)
    mean: list[float]
    std: list[float]


def load_run(run_dir: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """(model in eval mode, checkpoint info) from a run directory or checkpoint file."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise CxrlabError(f"run {run_dir} does not exist; train one with `cxrlab train --config FILE`")
    from cxrlab.train.checkpoint import load_run_model

    model, info = load_run_model(run_dir)
    return model.eval(), info


def run_data(run_dir: str | Path, info: dict[str, Any]) -> tuple[str, Path]:
    """(index path, split.csv path) the run was trained on."""
    run_dir = Path(run_dir)
    index = info.get("preprocess", {}).get("index") or (info.get("config") or {}).get("data", {}).get("index")
    if not index:
        raise CxrlabError(f"{run_dir}: the checkpoint does not record its index; pass --index INDEX")
    split = run_dir / "split.csv" if run_dir.is_dir() else Path(info.get("preprocess", {}).get("split", ""))
    return index, split


def build_preprocess(info: dict[str, Any]) -> Preprocess:
    """The run's deterministic evaluation preprocessing (see module docstring)."""
    from torchvision.transforms import v2

    from cxrlab.data.transforms import build_transform

    pre = info.get("preprocess", {})
    size = int(pre.get("image_size", 224))
    mean, std = list(pre.get("mean", [0.5])), list(pre.get("std", [0.25]))
    transform = build_transform(pre.get("augment_policy", "none"), False, size, int(pre.get("in_chans", 1)),
                                mean, std, clahe=bool(pre.get("clahe", False)))
    base = size
    for step in getattr(transform, "transforms", []):
        if isinstance(step, v2.Resize):
            base = int(step.size[0])
    return Preprocess(transform, int(pre.get("cache_size") or 256), pre.get("policy") or "letterbox", base, size,
                      mean, std)


def image_set_from_files(path: str | Path, option: str = "--images") -> ImageSet:
    """One image file, or every image file in a folder (sorted; sub-folders included)."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    else:
        raise CxrlabError(f"{option} {path} does not exist; pass an image file or a folder of images")
    if not files:
        raise CxrlabError(f"{option} {path}: no image files ({', '.join(IMAGE_SUFFIXES)}) found")
    return ImageSet([p.name for p in files], files)


def image_set_from_index(index_path: str | Path, classes: list[str], split: str | None = None,
                         split_csv: str | Path | None = None) -> ImageSet:
    """Rows of an index (optionally one split of ``split_csv``), labels in ``classes`` order when present."""
    from cxrlab.data.index import load_index

    index = load_index(index_path)
    frame = index.frame
    if split is not None:
        if split_csv is None or not Path(split_csv).exists():
            raise CxrlabError(f"--split {split} needs the run's split.csv ({split_csv} not found)")
        from cxrlab.data.splits import load_split, split_ids

        keep = set(split_ids(load_split(split_csv), split))
        frame = frame[frame["image_id"].astype(str).isin(keep)]
    if frame.empty:
        raise CxrlabError(f"index {index_path} has no rows" + (f" in split {split!r}" if split else ""))
    sub = index.subset(frame["image_id"].astype(str).tolist()) if hasattr(index, "subset") else index
    labels = None
    if all(c in sub.frame.columns for c in classes):
        labels = sub.frame[classes].apply(lambda s: s.astype(float)).to_numpy(dtype=np.float64)
    meta = {"index": str(index_path), "boxes_path": _boxes_path(index),
            "boxes_size": index.meta.get("boxes_image_size")}
    return ImageSet(sub.frame["image_id"].astype(str).tolist(), sub.absolute_paths(), labels, meta)


def _boxes_path(index: Any) -> str | None:
    name = index.meta.get("boxes")
    if not name or index.path is None:
        return None
    path = Path(index.path).parent / name
    return str(path) if path.exists() else None


def load_image(path: Path, pre: Preprocess) -> tuple[torch.Tensor, tuple[int, int]]:
    """(model input (C, S, S) float, original (H, W))."""
    from cxrlab.data.images import read_image, resize_image

    raw = read_image(path)
    small = resize_image(raw, pre.cache_size, pre.policy)
    return pre.transform(torch.from_numpy(small)[None]), raw.shape[:2]


def open_run_cache(info: dict[str, Any], images: ImageSet, pre: Preprocess) -> Any | None:
    """The run's preprocessing cache (``info["preprocess"]["cache"]`` or the config's ``data.cache``) when it can
    stand in for decoding ``images``: it opens, was built at the run's size and policy, and the images come from
    an index (their ids are then dataset ids, matched against the cache's as training does; a folder's file
    names are not). None otherwise; images the cache lacks are still read from their files."""
    path = (info.get("preprocess") or {}).get("cache") or ((info.get("config") or {}).get("data") or {}).get("cache")
    if not path or not images.meta.get("index") or not Path(path).is_dir():
        return None
    from cxrlab.data.cache import open_cache

    try:
        cache = open_cache(path)
    except CxrlabError as exc:
        log.warning("not reading from the run's cache: %s", exc)
        return None
    if cache.size != pre.cache_size or cache.policy != pre.policy:
        log.warning("cache %s is %d px %s, the run expects %d px %s: decoding the files instead", path, cache.size,
                    cache.policy, pre.cache_size, pre.policy)
        return None
    return cache


def cached_rows(images: ImageSet, cache: Any | None) -> np.ndarray:
    """(N,) int: each image's row in ``cache``, -1 where it must be decoded from its file."""
    if cache is None:
        return np.full(len(images.image_ids), -1, dtype=np.int64)
    rows = {i: r for r, i in enumerate(cache.image_ids) if cache.ok[r]}
    return np.array([rows.get(i, -1) for i in images.image_ids], dtype=np.int64)


def iter_batches(images: ImageSet, pre: Preprocess, batch_size: int, cache: Any | None = None
                 ) -> Iterator[tuple[list[int], torch.Tensor, list[tuple[int, int] | None]]]:
    """Yield (row numbers, (B, C, S, S) inputs, original sizes) in order.

    With ``cache`` (see ``open_run_cache``), images it holds are read from it instead of decoded; their
    original size is then unknown (None), so callers that map coordinates (explain) pass no cache.
    """
    in_cache = cached_rows(images, cache)
    for start in range(0, len(images.paths), batch_size):
        rows = list(range(start, min(start + batch_size, len(images.paths))))
        loaded = [_from_cache(cache, in_cache[i], pre) if in_cache[i] >= 0 else load_image(images.paths[i], pre)
                  for i in rows]
        yield rows, torch.stack([x for x, _ in loaded]), [hw for _, hw in loaded]


def _from_cache(cache: Any, row: int, pre: Preprocess) -> tuple[torch.Tensor, None]:
    return pre.transform(torch.from_numpy(np.array(cache.images[row]))[None]), None  # (1, S, S) uint8 in


def display_image(x: torch.Tensor, pre: Preprocess) -> np.ndarray:
    """The model input (C, S, S) back to a [0, 1] gray image (S, S) for overlays."""
    img = x[0].detach().float().cpu().numpy() * pre.std[0] + pre.mean[0]
    return np.clip(img, 0, 1)
