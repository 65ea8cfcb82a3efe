"""Test-time augmentation (TTA), in one place: the views ``predict --tta`` averages and those
``cxrlab uncertainty --method tta`` samples.

Prediction (``with_tta``): the model's logits averaged over a few small, label-preserving views.

``shifts``: the image itself and four copies moved by 1/32 of its side (4 px at 128 px) up, down, left and right,
edge pixels replicated into the gap (no wrap-around). The engine returns the mean of the five views' logits
(for multi-label, the sigmoid of the mean logit; for multi-class, the softmax of the mean logit), so it plugs into
``predict_dataset`` like any model. No left-right flip: the heart, the aortic knob and the stomach bubble are on
one side, and S4 measured flip-TTA costing 2.5 AUROC points (``cxrlab.data.transforms``). The views are
deterministic, so the same model and images always give the same predictions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cxrlab.errors import CxrlabError

TTA_MODES = ("none", "shifts")
SHIFT_FRACTION = 1 / 32  # of the image side; the training policies shift up to 5%, so this stays in-distribution


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x`` (B, C, H, W) moved ``dy`` rows down and ``dx`` columns right, the edge replicated into the gap."""
    p = max(abs(dy), abs(dx))
    if p == 0:
        return x
    h, w = x.shape[-2:]
    padded = F.pad(x, (p, p, p, p), mode="replicate")  # (B, C, H + 2p, W + 2p)
    return padded[..., p - dy:p - dy + h, p - dx:p - dx + w]


class ShiftTTA(nn.Module):
    """Mean logits of ``model`` over the image and its four shifted copies (module docstring)."""

    def __init__(self, model: nn.Module | object, fraction: float = SHIFT_FRACTION) -> None:
        super().__init__()
        self.model = model
        self.fraction = fraction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = max(1, round(x.shape[-1] * self.fraction))
        offsets = [(0, 0), (p, 0), (-p, 0), (0, p), (0, -p)]
        logits = [torch.as_tensor(self.model(shifted(x, dy, dx))).float() for dy, dx in offsets]
        return torch.stack(logits).mean(0)  # (B, K)


def with_tta(engine, mode: str = "none"):
    """``engine`` (a model or any batch -> logits callable) wrapped for TTA ``mode`` (``none``: unchanged)."""
    if mode not in TTA_MODES:
        raise CxrlabError(f"tta {mode!r} is not one of {', '.join(TTA_MODES)} (no flip: laterality matters)")
    if mode == "none":
        return engine
    if isinstance(engine, nn.Module):
        engine.eval()
    return ShiftTTA(engine)


# Uncertainty (``cxrlab.uncertainty.tta_samples``): the spread of the probabilities over more, larger views.
def tta_views(flip: bool = False) -> list[tuple[str, float, float, float]]:
    """Medical-safe TTA views (name, dx, dy, scale): identity, 4% shifts, 5% zooms. No flip unless asked
    (the flip view is marked by scale -1)."""
    views = [("identity", 0, 0, 1.0), ("left", -0.04, 0, 1.0), ("right", 0.04, 0, 1.0), ("up", 0, -0.04, 1.0),
             ("down", 0, 0.04, 1.0), ("zoom_in", 0, 0, 1.05), ("zoom_out", 0, 0, 0.95)]
    if flip:
        views.append(("hflip", 0, 0, -1.0))
    return views


def view(x: torch.Tensor, dx: float, dy: float, scale: float) -> torch.Tensor:
    """``x`` (B, C, H, W) moved by ``dx``/``dy`` of its side and zoomed by ``scale`` (bilinear, border
    replicated); scale -1 is the left-right flip."""
    if scale == -1.0:
        return x.flip(-1)
    if (dx, dy, scale) == (0, 0, 1.0):
        return x
    theta = torch.tensor([[1 / scale, 0, -2 * dx], [0, 1 / scale, -2 * dy]], dtype=x.dtype).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)
