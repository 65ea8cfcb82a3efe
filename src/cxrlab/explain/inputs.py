"""Images in, model-ready tensors out: the run's model and preprocessing, image sets, and the geometry that
maps original-image coordinates (boxes) onto the model input.

The preprocessing is the run's evaluation path exactly: ``read_image`` -> ``resize_image(cache_size,
policy)`` -> the eval transform of the run's augmentation policy (resize, maybe center crop, normalise).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxrlab.errors import CxrlabError

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


def image_set_from_files(path: str | Path) -> ImageSet:
    """One image file, or every image file in a folder (sorted; sub-folders included)."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    else:
        raise CxrlabError(f"--images {path} does not exist; pass an image file or a folder of images")
    if not files:
        raise CxrlabError(f"--images {path}: no image files ({', '.join(IMAGE_SUFFIXES)}) found")
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


def iter_batches(images: ImageSet, pre: Preprocess, batch_size: int) -> Iterator[tuple[list[int], torch.Tensor,
                                                                                      list[tuple[int, int]]]]:
    """Yield (row numbers, (B, C, S, S) inputs, original sizes) in order."""
    for start in range(0, len(images.paths), batch_size):
        rows = list(range(start, min(start + batch_size, len(images.paths))))
        loaded = [load_image(images.paths[i], pre) for i in rows]
        yield rows, torch.stack([x for x, _ in loaded]), [hw for _, hw in loaded]


def display_image(x: torch.Tensor, pre: Preprocess) -> np.ndarray:
    """The model input (C, S, S) back to a [0, 1] gray image (S, S) for overlays."""
    img = x[0].detach().float().cpu().numpy() * pre.std[0] + pre.mean[0]
    return np.clip(img, 0, 1)
