"""Augmentation policies on cached uint8 images, and batch-level mixup / cutmix.

A transform takes the ``torch.uint8`` tensor (1, S, S) a dataset yields and returns float32
(in_chans, image_size, image_size), normalised. Everything runs on tensors with ``torchvision.transforms.v2``
(no PIL round trip). Policies:

- ``none``: resize only.
- ``paper``: resize, horizontal flip p 0.5, rotation 10 degrees (S1's recipe, kept for faithful reproduction).
- ``medical`` (default): no flip; small affine (rotate 5 deg, shift/scale 5%), brightness/contrast 0.1,
  random crop from a 8/7 larger resize, mild noise or blur.
- ``lab_a`` (S3): shift/scale/rotate 0.02/0.08/5 deg p 0.7, brightness/contrast 0.1/0.15 p 0.7, noise p 0.15,
  center crop 90%. S3 also flipped horizontally p 0.5; we do not by default (the heart is on the left; S4
  measured flip-TTA costing 2.5 points): set ``augment.hflip=0.5`` to reproduce it.
- ``lab_b`` (S4): rotation 10, translate 0.08, scale 0.92-1.08, brightness/contrast 0.2, random erasing 0.35.

Evaluation transforms are deterministic (resize, and the same center crop as training where a policy crops).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from cxrlab.errors import CxrlabError

POLICIES = ("none", "paper", "medical", "lab_a", "lab_b")


@dataclass(frozen=True)
class _Policy:
    pre_scale: float = 1.0  # resize to image_size * pre_scale, then crop image_size (1.0 = no crop)
    random_crop: bool = False  # random (train) vs center crop
    hflip: float = 0.0
    degrees: float = 0.0
    translate: float = 0.0
    scale: float = 0.0
    affine_p: float = 1.0
    brightness: float = 0.0
    contrast: float = 0.0
    color_p: float = 1.0
    noise_p: float = 0.0
    blur_p: float = 0.0
    erasing: float = 0.0


_POLICIES = {
    "none": _Policy(),
    "paper": _Policy(hflip=0.5, degrees=10.0),
    "medical": _Policy(pre_scale=8 / 7, random_crop=True, degrees=5.0, translate=0.05, scale=0.05, affine_p=0.8,
                       brightness=0.1, contrast=0.1, color_p=0.8, noise_p=0.1, blur_p=0.1),
    "lab_a": _Policy(pre_scale=1 / 0.9, degrees=5.0, translate=0.02, scale=0.08, affine_p=0.7,
                     brightness=0.1, contrast=0.15, color_p=0.7, noise_p=0.15),
    "lab_b": _Policy(degrees=10.0, translate=0.08, scale=0.08, brightness=0.2, contrast=0.2, erasing=0.35),
}


class Clahe:
    """CLAHE on a uint8 (1, S, S) tensor (OpenCV; clip 1.5, 8x8 tiles as in S3)."""

    def __init__(self, clip: float = 1.5, tiles: int = 8) -> None:
        self.clip, self.tiles = clip, tiles

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import cv2

        clahe = cv2.createCLAHE(clipLimit=self.clip, tileGridSize=(self.tiles, self.tiles))
        return torch.from_numpy(clahe.apply(np.ascontiguousarray(x[0].numpy())))[None]


class RepeatChannels:
    """(1, H, W) -> (n, H, W) for 3-channel backbones fed gray images."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(self.n, -1, -1) if self.n > 1 else x


def _stats(values: Sequence[float], in_chans: int, name: str) -> list[float]:
    values = [float(v) for v in values]
    if len(values) == in_chans:
        return values
    if len(values) == 1:
        return values * in_chans
    if in_chans == 1:  # an RGB model's statistics fed a gray image: use the channel mean
        return [sum(values) / len(values)]
    raise CxrlabError(f"transform {name} has {len(values)} values for {in_chans} input channels")


def build_transform(
    policy: str,
    train: bool,
    image_size: int,
    in_chans: int = 1,
    mean: Sequence[float] = (0.5,),
    std: Sequence[float] = (0.25,),
    clahe: bool = False,
    hflip: float | None = None,
    random_erasing: float | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Build the train or eval transform of a policy.

    Args:
        policy: none, paper, medical, lab_a or lab_b.
        train: random augmentation (True) or the deterministic evaluation transform (False).
        image_size: output side.
        in_chans: output channels (the gray channel is repeated).
        mean, std: normalisation (the backbone's pretrained statistics), per channel or one value.
        clahe: CLAHE on the uint8 image first.
        hflip, random_erasing: override the policy's probabilities.
    """
    if policy not in _POLICIES:
        raise CxrlabError(f"unknown augmentation policy {policy!r}; valid: {', '.join(POLICIES)}")
    p = _POLICIES[policy]
    steps: list[Callable] = [Clahe()] if clahe else []
    base = int(round(image_size * p.pre_scale))
    steps.append(v2.Resize((base, base), antialias=True))
    if train:
        steps += _train_geometry(p, image_size, base, p.hflip if hflip is None else hflip)
        if p.brightness or p.contrast:
            steps.append(v2.RandomApply([v2.ColorJitter(p.brightness, p.contrast)], p=p.color_p))
    elif base != image_size:
        steps.append(v2.CenterCrop(image_size))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if train and p.noise_p:
        steps.append(v2.RandomApply([v2.GaussianNoise(sigma=0.02, clip=True)], p=p.noise_p))
    if train and p.blur_p:
        steps.append(v2.RandomApply([v2.GaussianBlur(3, sigma=(0.1, 1.0))], p=p.blur_p))
    steps.append(RepeatChannels(in_chans))
    steps.append(v2.Normalize(_stats(mean, in_chans, "mean"), _stats(std, in_chans, "std")))
    erasing = p.erasing if random_erasing is None else random_erasing
    if train and erasing:
        steps.append(v2.RandomErasing(p=erasing, value=0))
    return v2.Compose(steps)


def _train_geometry(p: _Policy, image_size: int, base: int, hflip: float) -> list[Callable]:
    steps: list[Callable] = []
    if hflip:
        steps.append(v2.RandomHorizontalFlip(hflip))
    if p.degrees or p.translate or p.scale:
        affine = v2.RandomAffine(
            p.degrees,
            translate=(p.translate, p.translate) if p.translate else None,
            scale=(1 - p.scale, 1 + p.scale) if p.scale else None,
        )
        steps.append(v2.RandomApply([affine], p=p.affine_p) if p.affine_p < 1 else affine)
    if base != image_size:
        steps.append(v2.RandomCrop(image_size) if p.random_crop else v2.CenterCrop(image_size))
    return steps


# --------------------------------------------------------------------------- batch-level mixing


def soft_targets(targets: torch.Tensor, task: str, num_classes: int) -> torch.Tensor:
    """Float targets: multi-class indices -> one-hot (B, C); multi-label stays (B, C) with its NaNs."""
    if task == "multiclass" and targets.ndim == 1:
        return F.one_hot(targets.long(), num_classes).float()
    return targets.float()


def mix_batch(
    images: torch.Tensor,
    targets: torch.Tensor,
    task: str,
    num_classes: int,
    mixup: float = 0.0,
    cutmix: float = 0.0,
    mix_prob: float = 1.0,
    cutmix_prob: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup or cutmix a batch with a flipped copy of itself.

    Targets become float (B, C) whenever mixing is on (so a loss sees one target kind all epoch): soft
    one-hot for multi-class, mixed multi-hot for multi-label. An unknown (NaN) label mixed with anything stays
    NaN, so the loss keeps masking it. Randomness comes from NumPy's global generator (seeded, checkpointed).
    """
    if mixup <= 0 and cutmix <= 0:
        return images, targets
    targets = soft_targets(targets, task, num_classes)
    if np.random.rand() >= mix_prob:
        return images, targets
    use_cutmix = cutmix > 0 and (mixup <= 0 or np.random.rand() < cutmix_prob)
    lam = float(np.random.beta(cutmix, cutmix) if use_cutmix else np.random.beta(mixup, mixup))
    flipped = images.flip(0)
    if use_cutmix:
        images, lam = _paste_box(images, flipped, lam)
    else:
        images = images * lam + flipped * (1 - lam)
    return images, targets * lam + targets.flip(0) * (1 - lam)


def _paste_box(images: torch.Tensor, other: torch.Tensor, lam: float) -> tuple[torch.Tensor, float]:
    h, w = images.shape[-2:]
    cut = math.sqrt(1 - lam)
    bh, bw = int(h * cut), int(w * cut)
    cy, cx = np.random.randint(h), np.random.randint(w)
    y0, y1 = max(cy - bh // 2, 0), min(cy + bh // 2, h)
    x0, x1 = max(cx - bw // 2, 0), min(cx + bw // 2, w)
    images = images.clone()
    images[..., y0:y1, x0:x1] = other[..., y0:y1, x0:x1]
    return images, 1 - (y1 - y0) * (x1 - x0) / (h * w)  # the area actually pasted


# --------------------------------------------------------------------------- preview


def preview_grid(index_path: str, out: str, policy: str = "medical", n: int = 16, cache: str | None = None,
                 image_size: int = 224, seed: int = 0, clahe: bool = False, cache_size: int = 256) -> str:
    """Write a PNG grid of ``n`` training-augmented images (first row of each pair: the eval view).

    Images come from the cache when given, else are decoded from the index's files.
    """
    from PIL import Image

    from cxrlab.data.dataset import CachedImageDataset, FileImageDataset
    from cxrlab.data.index import load_index

    if n < 1:
        raise CxrlabError(f"--n {n} must be at least 1")
    index = load_index(index_path)
    rng = np.random.default_rng(seed)
    ids = [index.image_ids[i] for i in rng.choice(len(index), size=min(n, len(index)), replace=False)]
    ds = (CachedImageDataset(index, ids, cache) if cache else FileImageDataset(index, ids, size=cache_size))
    torch.manual_seed(seed)
    train_tf = build_transform(policy, True, image_size, 1, (0.5,), (0.25,), clahe=clahe)
    eval_tf = build_transform(policy, False, image_size, 1, (0.5,), (0.25,), clahe=clahe)
    tiles = []
    for i in range(len(ds)):
        x = ds[i][0]
        pair = [eval_tf(x), train_tf(x)]  # (1, S, S) each, normalised with mean 0.5 std 0.25
        tiles.append(torch.cat([(t * 0.25 + 0.5).clamp(0, 1) for t in pair], dim=1)[0])  # (2S, S)
    cols = int(math.ceil(math.sqrt(len(tiles))))
    rows = int(math.ceil(len(tiles) / cols))
    grid = torch.zeros(rows * 2 * image_size, cols * image_size)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        grid[r * 2 * image_size:(r + 1) * 2 * image_size, c * image_size:(c + 1) * image_size] = tile
    import io

    from cxrlab.utils import atomic_write_bytes

    buf = io.BytesIO()
    Image.fromarray((grid.numpy() * 255).astype(np.uint8)).save(buf, format="PNG")
    atomic_write_bytes(out, buf.getvalue())  # a kill never leaves half a PNG
    return str(out)
