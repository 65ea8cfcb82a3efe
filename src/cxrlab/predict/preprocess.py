"""The run's evaluation preprocessing, exactly as training validated with it.

A decoded image (uint8 (H, W)) is resized to the cache's side and policy (``resize_image(cache_size,
policy)``; the run's cache holds exactly that), then the deterministic eval transform of the run's augmentation
policy turns the uint8 (1, S, S) tensor into float32 (in_chans, image_size, image_size): CLAHE when the run
used it, resize to ``base``, centre crop to ``image_size`` where the policy crops, channels, normalisation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from cxrlab.predict.info import RunInfo


def eval_transform(info: RunInfo) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 (1, S, S) tensor -> float32 (in_chans, image_size, image_size), normalised."""
    from cxrlab.data.transforms import build_transform

    p = info.preprocess
    return build_transform(p.augment_policy, False, p.image_size, p.in_chans, list(p.mean), list(p.std),
                           clahe=p.clahe)


def resize_for_run(image: np.ndarray, info: RunInfo) -> np.ndarray:
    """A decoded uint8 (H, W) image resized as the run's cache stores it: uint8 (cache_size, cache_size)."""
    from cxrlab.data.images import resize_image

    return resize_image(image, info.preprocess.cache_size, info.preprocess.policy)


def preprocess_image(image: np.ndarray, info: RunInfo, transform: Callable | None = None) -> torch.Tensor:
    """One decoded uint8 (H, W) image -> the model's float32 (C, H, W) input (pass ``transform`` when calling
    often: building it once is cheaper)."""
    transform = transform or eval_transform(info)
    return transform(torch.from_numpy(np.ascontiguousarray(resize_for_run(image, info)))[None])


@dataclass(frozen=True)
class Geometry:
    """Sizes along the preprocessing, for mapping coordinates between the file and the model input."""

    cache_size: int
    policy: str  # letterbox | center_crop
    base: int  # side after the eval transform's resize
    image_size: int  # side after the centre crop (== base when the policy does not crop)


def geometry(info: RunInfo, transform: Callable | None = None) -> Geometry:
    """The run's ``Geometry`` (``base`` read off the eval transform's resize step)."""
    from torchvision.transforms import v2

    transform = transform or eval_transform(info)
    base = info.preprocess.image_size
    for step in getattr(transform, "transforms", []):
        if isinstance(step, v2.Resize):
            base = int(step.size[0])
    p = info.preprocess
    return Geometry(p.cache_size, p.policy, base, p.image_size)


def display_image(x: torch.Tensor, info: RunInfo) -> np.ndarray:
    """A model input (C, S, S) back to a [0, 1] gray image (S, S) for overlays (first channel)."""
    p = info.preprocess
    img = x[0].detach().float().cpu().numpy() * p.std[0] + p.mean[0]
    return np.clip(img, 0, 1)
