"""Class activation maps through pytorch-grad-cam, for any model of the factory (CNN, ViT, Swin, 1 or 3 channels).

The target layer is ``model.get_submodule(model.cam_layer)``; token models pass ``model.cam_reshape`` so the
library sees a (B, D, h, w) map. Targets are one logit per image (multi-label: that finding's logit).
Maps come back as float32 (B, H, W) at the input size, normalised to [0, 1] per image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from cxrlab.errors import CxrlabError
from cxrlab.explain.maps import normalise_maps, peak
from cxrlab.explain.rollout import attention_rollout

CAM_METHODS = ("gradcam", "gradcam++", "hirescam", "eigencam")
ALL_METHODS = (*CAM_METHODS, "rollout")
__all__ = ["ALL_METHODS", "CAM_METHODS", "compute_cams", "normalise_maps", "peak", "target_layer"]


class LogitTarget:
    """Select one class's logit (works for multi-label sigmoid and multi-class softmax models alike)."""

    def __init__(self, index: int) -> None:
        self.index = index

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        return output[..., self.index]


def _cam_class(method: str) -> type:
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM

    classes = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "hirescam": HiResCAM, "eigencam": EigenCAM}
    if method not in classes:
        raise CxrlabError(f"unknown CAM method {method!r}; valid: {', '.join(ALL_METHODS)}")
    return classes[method]


def target_layer(model: nn.Module) -> nn.Module:
    """The module named by ``model.cam_layer``."""
    name = getattr(model, "cam_layer", None)
    if not name:
        raise CxrlabError(f"model {type(model).__name__} names no cam_layer; build it with cxrlab.models.create_model")
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise CxrlabError(f"model {type(model).__name__} has no submodule {name!r} (its cam_layer)") from None


def compute_cams(model: nn.Module, x: torch.Tensor, class_idx: Sequence[int], method: str = "gradcam") -> np.ndarray:
    """Heat maps (B, H, W) in [0, 1] for image b and class ``class_idx[b]``.

    Args:
        model: a factory model (``cam_layer``, optional ``cam_reshape``), in eval mode.
        x: (B, C, H, W) model input.
        class_idx: one class index per image.
        method: gradcam, gradcam++, hirescam or eigencam (``rollout`` lives in ``explain.rollout``).
    """
    if method == "rollout":
        return attention_rollout(model, x)
    if len(class_idx) != x.shape[0]:
        raise ValueError(f"{len(class_idx)} class indices for {x.shape[0]} images")
    cam_cls = _cam_class(method)
    reshape: Callable | None = getattr(model, "cam_reshape", None)
    model.eval()
    with cam_cls(model=model, target_layers=[target_layer(model)], reshape_transform=reshape) as cam:
        maps = cam(input_tensor=x, targets=[LogitTarget(int(i)) for i in class_idx])
    return normalise_maps(maps)
