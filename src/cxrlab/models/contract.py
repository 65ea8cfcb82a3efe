"""The attributes every cxrlab model carries (architecture.md, "Models"), and small helpers to set them.

``annotate`` puts on any ``nn.Module``: ``cam_layer``, ``cam_reshape``, ``class_names``, ``data_config``,
``model_name``, ``model_kwargs``, ``has_dropout``, ``head_prefixes`` (state-dict key prefixes of the
classifier, which a weights file may lack or hold for another number of classes) and ``source``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from cxrlab.errors import CxrlabError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


def tokens_to_map(x: torch.Tensor, num_prefix_tokens: int = 0) -> torch.Tensor:
    """Token activations (B, N, D) -> (B, D, h, w) for Grad-CAM: drop class/register tokens, square grid."""
    if isinstance(x, (tuple, list)):  # some blocks return (tokens, extras)
        x = x[0]
    tokens = x[:, num_prefix_tokens:, :]
    n = tokens.shape[1]
    side = math.isqrt(n)
    if side * side != n:
        raise CxrlabError(f"cannot reshape {n} tokens into a square map for Grad-CAM; use a square img_size")
    return tokens.transpose(1, 2).reshape(x.shape[0], x.shape[2], side, side)


def nhwc_to_nchw(x: torch.Tensor) -> torch.Tensor:
    """Swin stage outputs (B, H, W, D) -> (B, D, H, W) for Grad-CAM."""
    return x.permute(0, 3, 1, 2)


def token_reshape(num_prefix_tokens: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """A picklable (deep-copyable) reshape callable for a token model."""
    return functools.partial(tokens_to_map, num_prefix_tokens=num_prefix_tokens)


def normalisation(mean: Sequence[float], std: Sequence[float], in_chans: int) -> tuple[tuple, tuple]:
    """Mean/std for ``in_chans``: the RGB statistics, or their average for a grayscale input."""
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if in_chans == len(mean):
        return mean, std
    if in_chans == 1:
        return (sum(mean) / len(mean),), (sum(std) / len(std),)
    return (mean[0],) * in_chans, (std[0],) * in_chans


def data_config(mean: Sequence[float], std: Sequence[float], in_chans: int, img_size: int) -> dict[str, Any]:
    """``{"mean", "std", "input_size"}`` for the model's input channels."""
    m, s = normalisation(mean, std, in_chans)
    return {"mean": m, "std": s, "input_size": (in_chans, img_size, img_size)}


def has_dropout(model: nn.Module) -> bool:
    """True when some dropout is active in training (modules with p > 0 or timm's functional head dropout)."""
    if any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules()):
        return True
    return any(float(getattr(m, "drop_rate", 0.0) or 0.0) > 0 for m in model.modules())


def annotate(model: nn.Module, *, name: str, kwargs: dict[str, Any], class_names: Sequence[str] | None,
             cam_layer: str, cam_reshape: Callable | None, config: dict[str, Any],
             head_prefixes: Sequence[str], source: str) -> nn.Module:
    """Attach the contract attributes to ``model`` (in place) and return it."""
    num_classes = int(kwargs["num_classes"])
    names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(num_classes)]
    if len(names) != num_classes:
        raise CxrlabError(f"model {name}: {len(names)} class_names for num_classes={num_classes}; give one name "
                          "per class")
    model.get_submodule(cam_layer)  # fail here, not in Grad-CAM, if a family rule is wrong
    model.model_name = name
    model.model_kwargs = dict(kwargs)
    model.class_names = names
    model.cam_layer = cam_layer
    model.cam_reshape = cam_reshape
    model.data_config = config
    model.has_dropout = has_dropout(model)
    model.head_prefixes = tuple(head_prefixes)
    model.source = source
    return model


def adapt_first_conv(model: nn.Module, in_chans: int) -> None:
    """Replace the first 3-channel ``Conv2d`` by an ``in_chans`` one; RGB kernels are summed for 1 channel
    (what timm's ``adapt_input_conv`` does), so a pretrained filter sees a gray image as it saw RGB."""
    for _, parent in model.named_modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and child.in_channels == 3:
                new = nn.Conv2d(in_chans, child.out_channels, child.kernel_size, child.stride, child.padding,
                                child.dilation, child.groups, child.bias is not None, child.padding_mode)
                with torch.no_grad():
                    new.weight.copy_(adapt_conv_weight(child.weight, in_chans))
                    if child.bias is not None:
                        new.bias.copy_(child.bias)
                setattr(parent, child_name, new)
                return
    raise CxrlabError(f"found no 3-channel first convolution to adapt to in_chans={in_chans}")


def adapt_conv_weight(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """(O, I, k, k) kernel -> (O, in_chans, k, k): sum to 1 channel, or tile and rescale to more."""
    if weight.shape[1] == in_chans:
        return weight
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    repeat = math.ceil(in_chans / weight.shape[1])
    return weight.repeat(1, repeat, 1, 1)[:, :in_chans] * (weight.shape[1] / in_chans)
