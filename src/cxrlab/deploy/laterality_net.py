"""Laterality by a small convolutional network: "is this film mirrored left-right?", exactly sign-symmetric.

A mirrored chest film differs from a true one only in where the heart, aortic knob and gastric bubble lie. A
tiny CNN ``f`` reads the per-image z-scored 64x64 thumbnail averaged down to 32x32: three 3x3 convolutions with
ReLU and 2x2 max pooling (32 -> 4 px, widths 16/32/64), averaged over space, one linear output. The check's
log-odds of "mirrored" is ``logit(x) = f(fliplr(x)) - f(x)``: mirroring the input negates it exactly, so the
decision threshold at 0 needs no intercept and the out-of-fold scores of the validation images also score their
mirror images.

Mirroring is self-supervised (the label "mirrored" comes from flipping), so the network is trained on the run's
validation images and, when given, its training images (never test: ``cxrlab.deploy.features.
laterality_thumbnails`` refuses them by id and content), each shown upright or mirrored at random with mild
augmentation (shifts up to 8%, scale 0.9-1.1, contrast 0.8-1.2), 60 epochs of AdamW with a one-cycle schedule.
Out of fold, the validation images are split in two halves (grouped by image): 3 trainings in all, the
training images being most of the data anyway. Training
uses PyTorch; the fitted check runs in numpy (the service's ONNX path has no PyTorch), checked against PyTorch's
convolutions in ``tests/deploy/test_laterality_net.py``. Weights are stored in the gate's safetensors file.

Measured on the NIH sample run (``bench_ood.py RUN --validation``; docs/deploy.md): out-of-fold validation AUC
about 0.97 trained on validation images alone and 0.99-1.0 with the run's training images added, against 0.90
for the linear model on gradients (``cxrlab.deploy.laterality``, what gates saved before this load as).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WIDTHS = (16, 32, 64)
POOL = 2  # the 64x64 thumbnail is averaged down to 32x32 first
FOLDS = 2
EPOCHS = 60
BATCH = 32
PREFIX = "orientation.laterality_net."
SCORING = "refit"  # or "folds": refit had fewer false flags on held-out films (bench_ood.py --dev, ood_dev.json)


def standardise(thumbs: np.ndarray) -> np.ndarray:
    """(N, 1, 64/POOL, 64/POOL) float32: each 64x64 thumbnail z-scored on its own, then block-averaged.

    Computed so that mirroring the input mirrors the output bit for bit (statistics of ``t + fliplr(t)``, block
    sums paired left with right), which makes the logit exactly antisymmetric in floating point too."""
    t = np.asarray(thumbs, np.float32).reshape(len(thumbs), 1, 64, 64)
    t = t - (t + t[..., ::-1]).mean(axis=(2, 3), keepdims=True) / 2
    sq = t * t
    t = t / np.maximum(np.sqrt((sq + sq[..., ::-1]).mean(axis=(2, 3), keepdims=True) / 2), 1e-6)
    blocks = [t[:, :, i::POOL, j::POOL] for i in range(POOL) for j in range(POOL)]
    return sum(blocks[k] + blocks[k + 1] for k in range(0, len(blocks), 2)) / (POOL * POOL)


def _conv_relu_pool(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3x3 convolution (zero padding 1), ReLU, 2x2 max pooling: (B, C, H, W) -> (B, O, H/2, W/2)."""
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3),
                                                       axis=(2, 3))  # (B, C, H, W, 3, 3)
    y = np.maximum(np.einsum("bchwij,ocij->bohw", windows, w, optimize=True) + b[None, :, None, None], 0.0)
    n, o, h, wd = y.shape
    return y.reshape(n, o, h // 2, 2, wd // 2, 2).max(axis=(3, 5))


@dataclass
class LateralityNet:
    """The fitted check: ``members``, one or more networks whose logits are averaged, each a dict of
    ``conv{i}.weight`` (O, C, 3, 3), ``conv{i}.bias`` (O,), ``head.weight`` (1, D), ``head.bias`` (1,) (cancels in
    the logit; kept so a stored net is the trained one); ``n_images`` the networks were trained on (upright; each
    also seen mirrored), at most."""

    members: list[dict[str, np.ndarray]]
    n_images: int = 0

    def logit(self, thumbs: np.ndarray) -> np.ndarray:
        """(B,) log-odds that each thumbnail is mirrored left-right: the members' mean ``f(fliplr(x)) - f(x)``."""
        x = standardise(thumbs)
        flipped = np.ascontiguousarray(x[..., ::-1])
        x = np.ascontiguousarray(x)
        out = np.zeros(len(x))
        for w in self.members:
            out += (_pooled(w, flipped) - _pooled(w, x)) @ w["head.weight"][0]
        return out / len(self.members)

    @classmethod
    def fit(cls, thumbs: np.ndarray, folds: list[np.ndarray], variants: np.ndarray, extra: np.ndarray | None = None,
            seed: int = 0, epochs: int = EPOCHS, n_folds: int = FOLDS, scoring: str | None = None
            ) -> tuple[LateralityNet, np.ndarray]:
        """(the check, out-of-fold logits (V, N) of ``variants`` (V, N, 64*64)) from validation ``thumbs``.

        ``folds`` (grouping each image with its variants) are merged into ``n_folds`` groups; each is scored by a
        net trained on the others plus ``extra`` (the run's training images; never test). ``scoring``
        (default ``SCORING``): ``folds``, the check is those fold nets averaged (the nets the thresholds were set
        on); ``refit``, one more net trained on all of them."""
        x = standardise(thumbs)
        more = standardise(extra) if extra is not None and len(extra) else x[:0]
        out = np.empty(variants.shape[:2], np.float64)
        nets = []
        for held in (np.concatenate(folds[i::n_folds]) for i in range(min(n_folds, len(folds)))):
            rest = np.setdiff1d(np.arange(len(x)), held)
            nets.append(_train(np.concatenate([x[rest], more]), seed, epochs))
            out[:, held] = cls([nets[-1]]).logit(variants[:, held].reshape(-1, 64 * 64)).reshape(len(variants),
                                                                                                 len(held))
        if (scoring or SCORING) == "refit":
            return cls([_train(np.concatenate([x, more]), seed, epochs)], len(x) + len(more)), out
        return cls(nets, len(x) + len(more)), out

    def tensors(self) -> dict[str, np.ndarray]:
        return {f"{PREFIX}{k}.{name}": v.astype(np.float32) for k, w in enumerate(self.members)
                for name, v in w.items()}

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], n_images: int = 0) -> LateralityNet | None:
        members: dict[int, dict[str, np.ndarray]] = {}
        for key, v in tensors.items():
            if key.startswith(PREFIX):
                k, name = key.removeprefix(PREFIX).split(".", 1)
                members.setdefault(int(k), {})[name] = v
        return cls([members[k] for k in sorted(members)], n_images) if members else None


def _pooled(w: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """(B, D) spatially averaged features of ``standardise``-d images under one network's weights."""
    for i in range(len(WIDTHS)):
        x = _conv_relu_pool(x, w[f"conv{i}.weight"], w[f"conv{i}.bias"])
    return x.mean(axis=(2, 3))


def _augment(x, g):
    """Random shift (up to 8% each way), scale 0.9-1.1 and contrast 0.8-1.2 of a (B, 1, H, W) torch batch."""
    import torch
    import torch.nn.functional as F

    n = len(x)
    theta = torch.zeros(n, 2, 3)
    scale = 1 + (torch.rand(n, generator=g) - 0.5) * 0.2
    theta[:, 0, 0], theta[:, 1, 1] = scale, scale
    theta[:, 0, 2], theta[:, 1, 2] = (torch.rand(2, n, generator=g) - 0.5) * 0.16
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    return x * (1 + (torch.rand(n, 1, 1, 1, generator=g) - 0.5) * 0.4)


def _train(x: np.ndarray, seed: int, epochs: int = EPOCHS) -> dict[str, np.ndarray]:
    """Weights of ``f`` trained so that ``f(fliplr(x)) - f(x)`` tells mirrored (1) from upright (0) images."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    chans = (1, *WIDTHS)
    convs = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 3, padding=1) for i in range(len(WIDTHS)))
    net = nn.ModuleDict({"conv": convs, "head": nn.Linear(WIDTHS[-1], 1)})

    def f(b):  # b: standardised (z-scored, block-averaged) images
        for conv in convs:
            b = F.max_pool2d(F.relu(conv(b)), 2)
        return net["head"](F.dropout(b.mean(dim=(2, 3)), 0.3, net.training))[:, 0]

    data = torch.as_tensor(x)
    steps = epochs * ((len(data) + BATCH - 1) // BATCH)
    opt = torch.optim.AdamW(net.parameters(), 3e-3, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(data), generator=g).split(BATCH):
            b = _augment(data[idx], g)
            y = (torch.rand(len(idx), generator=g) < 0.5).float()
            b = torch.where(y[:, None, None, None] > 0, b.flip(-1), b)
            loss = F.binary_cross_entropy_with_logits(f(b.flip(-1)) - f(b), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    state = {k.replace("conv.", "conv", 1): v.detach().numpy().copy() for k, v in net.state_dict().items()}
    return state
