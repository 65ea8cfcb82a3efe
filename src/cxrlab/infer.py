"""Prediction with a trained run: on a split of the run's own data, or on new image files.

``predict_run(run_dir, split="test")`` rebuilds the model from its checkpoint JSON, preprocesses exactly as
training's evaluation transform did (same cache size, resize policy, CLAHE, normalisation) and returns
``cxrlab.predictions.Predictions``; ``predict_dataset`` does the same for any dataset yielding
``(image, target, image_id)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cxrlab.data.images import read_image, resize_image
from cxrlab.data.transforms import build_transform
from cxrlab.errors import CxrlabError
from cxrlab.predictions import Predictions

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".tif", ".tiff", ".bmp")


def eval_transform(info: dict[str, Any]):
    """The deterministic evaluation transform a checkpoint was validated with."""
    p = info["preprocess"]
    return build_transform(p.get("augment_policy", "none"), False, p["image_size"], p["in_chans"], p["mean"],
                           p["std"], clahe=bool(p.get("clahe", False)))


class ImageFilesDataset(Dataset):
    """Image files decoded with ``read_image`` and resized like the run's cache; item ``(image, -1, file name)``."""

    def __init__(self, paths: list[Path], size: int, policy: str, transform) -> None:
        self.paths, self.size, self.policy, self.transform = paths, size, policy, transform
        self.image_ids = [p.name for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple:
        x = torch.from_numpy(resize_image(read_image(self.paths[i]), self.size, self.policy))[None]
        return self.transform(x), torch.tensor(-1), self.image_ids[i]


def image_files(path: str | Path) -> list[Path]:
    """One image file, or every image in a folder (recursively, sorted)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise CxrlabError(f"--images {path} does not exist; give an image file or a folder of images")
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise CxrlabError(f"--images {path} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


@torch.no_grad()
def predict_dataset(model: nn.Module, info: dict[str, Any], dataset: Dataset, batch_size: int = 64,
                    device: str | torch.device = "cpu", num_workers: int = 0) -> Predictions:
    """Probabilities of ``model`` on ``dataset`` (sigmoid for multi-label, softmax for multi-class)."""
    model = model.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    probs, ids = [], []
    for images, _, batch_ids in loader:
        logits = model(images.to(device)).float()
        p = torch.sigmoid(logits) if info["task"] == "multilabel" else torch.softmax(logits, dim=1)
        probs.append(p.cpu().numpy())
        ids += [str(i) for i in batch_ids]
    probs_all = np.concatenate(probs) if probs else np.zeros((0, len(info["classes"])))
    meta = {"task": info["task"], "classes": list(info["classes"]), "model": info["model_name"],
            "checkpoint_sha256": info.get("weights_sha256")}
    return Predictions(ids, probs_all, list(info["classes"]), meta)


def _split_dataset(run_dir: Path, info: dict[str, Any], split: str, transform) -> tuple[Dataset, Any]:
    from cxrlab.data.dataset import CachedImageDataset, FileImageDataset
    from cxrlab.data.index import load_index
    from cxrlab.data.splits import load_split, split_ids

    p = info["preprocess"]
    split_csv = run_dir / "split.csv"
    if not split_csv.exists():
        raise CxrlabError(f"{split_csv} not found; --split needs a run directory from `cxrlab train` (or use --images)")
    ids = split_ids(load_split(split_csv), split)
    if not ids:
        raise CxrlabError(f"{split_csv} has no {split!r} images; choose another --split (train/val/test) or --images")
    index = load_index(p.get("index") or info["config"]["data"]["index"])
    if p.get("cache") and Path(p["cache"]).exists():
        return CachedImageDataset(index, ids, p["cache"], transform=transform), index
    # no cache (or it moved): decode the files, resized as the cache was
    return FileImageDataset(index, ids, size=p["cache_size"], policy=p["policy"], transform=transform), index


def predict_run(run_dir: str | Path, split: str | None = "test", images: str | Path | None = None,
                which: str = "best", batch_size: int = 64, device: str = "cpu") -> Predictions:
    """Predict with a run's ``which`` checkpoint on its ``split`` (val/test) or on ``images`` (file or folder)."""
    from cxrlab.train.checkpoint import load_run_model

    model, info = load_run_model(run_dir, which=which, device=device)
    run_dir = Path(info["path"]).parent.parent  # run_dir may also be a checkpoint file inside it
    transform = eval_transform(info)
    if images is not None:
        p = info["preprocess"]
        dataset = ImageFilesDataset(image_files(images), p["cache_size"], p["policy"], transform)
        index, name = None, "images"
    else:
        dataset, index = _split_dataset(run_dir, info, split or "test", transform)
        name = split or "test"
    preds = predict_dataset(model, info, dataset, batch_size=batch_size, device=device)
    preds.meta.update(split=name, run_dir=str(run_dir.resolve()), checkpoint=which)
    if index is not None:
        patients = dict(zip(index.frame["image_id"].astype(str), index.frame["patient_id"].astype(str)))
        preds.patient_ids = [patients.get(i, "") for i in preds.image_ids]
    return preds
