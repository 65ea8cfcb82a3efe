"""Backbones from timm (``timm:NAME``) and torchvision (``tv:NAME``) with a new head for our classes.

timm models already have ``forward_features``/``forward_head``; they are annotated in place so their
state-dict keys stay timm's own. torchvision models are wrapped in ``TorchvisionClassifier``: the original
network with its last Linear replaced by ``Identity`` (so it returns pooled features) and a fresh
``head = Dropout + Linear``.
"""

from __future__ import annotations

import difflib
from typing import Any

import torch
from torch import nn

from cxrlab.errors import CxrlabError
from cxrlab.models import weights as W
from cxrlab.models.contract import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    adapt_first_conv,
    data_config,
    nhwc_to_nchw,
    token_reshape,
)


def _timm_create(name: str, pretrained: bool, kwargs: dict[str, Any], img_size: int) -> nn.Module:
    """timm.create_model, passing ``img_size`` to the models that take it (transformers: their position grid
    depends on it); CNNs reject the argument with a TypeError before building anything."""
    import timm

    try:
        return timm.create_model(name, pretrained=pretrained, img_size=img_size, **kwargs)
    except TypeError as exc:
        if "img_size" not in str(exc):
            raise
    return timm.create_model(name, pretrained=pretrained, **kwargs)


def create_timm(name: str, num_classes: int, in_chans: int, pretrained: bool, drop_rate: float | None,
                img_size: int) -> tuple[nn.Module, dict[str, Any]]:
    """Build ``timm:NAME``; returns the model and its contract fields (cam layer, reshape, config, heads)."""
    import timm

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        raise CxrlabError(f"unknown timm model {name!r}" + (f" (did you mean {', '.join(close)}?)" if close else "")
                          + "; see `cxrlab models list` or timm.list_models()")
    if pretrained and not W.timm_weights_cached(name) and W.is_offline("timm"):
        raise W.offline_error(f"timm:{name}")
    kwargs: dict[str, Any] = {"num_classes": num_classes, "in_chans": in_chans}
    if drop_rate is not None:
        kwargs["drop_rate"] = drop_rate
    try:
        model = _timm_create(name, pretrained, kwargs, img_size)
    except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
        raise CxrlabError(f"timm:{name} cannot be built with num_classes={num_classes}, in_chans={in_chans}, "
                          f"img_size={img_size} ({_first_line(exc)}); check data.image_size") from None
    except Exception as exc:  # hub download failures (HTTP, SSL, timeouts): say what to do instead
        if not pretrained:
            raise
        raise W.download_error(f"timm:{name}", exc) from None
    return model, _timm_contract(model, in_chans, img_size)


def _timm_contract(model: nn.Module, in_chans: int, img_size: int) -> dict[str, Any]:
    cfg = model.pretrained_cfg
    if hasattr(model, "blocks") and hasattr(model, "num_prefix_tokens"):
        # ViT family: the last block's norm1 still feeds every token to the classifier (the block output
        # only feeds the class token), so its gradients are non-zero on the patch grid.
        cam_layer = f"blocks.{len(model.blocks) - 1}.norm1"
        reshape = token_reshape(int(model.num_prefix_tokens))
    else:
        if hasattr(model, "conv_head") and hasattr(model, "bn2"):
            cam_layer = "bn2"  # EfficientNet: the last feature map is after conv_head
        else:
            cam_layer = model.feature_info[-1]["module"]
        reshape = nhwc_to_nchw if getattr(model, "output_fmt", "NCHW") == "NHWC" else None
    classifier = cfg.get("classifier", "head")
    heads = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    return {
        "cam_layer": cam_layer,
        "cam_reshape": reshape,
        "config": data_config(cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD), in_chans, img_size),
        "head_prefixes": tuple(h + "." for h in heads),
    }


class TorchvisionClassifier(nn.Module):
    """A torchvision classification network with its last Linear replaced by ``head = Dropout + Linear``.

    ``forward_features`` returns the pooled (B, D) features (the original network without its last Linear).
    """

    def __init__(self, model: nn.Module, head_path: str, num_classes: int, drop_rate: float) -> None:
        super().__init__()
        last = model.get_submodule(head_path)
        parent_path, _, attr = head_path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        setattr(parent, attr, nn.Identity())
        if isinstance(parent, nn.Sequential):  # EfficientNet/MobileNet keep a Dropout before the Linear
            for child_name, child in parent.named_children():
                if isinstance(child, nn.Dropout):
                    setattr(parent, child_name, nn.Identity())
        self.model = model
        self.head = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(last.in_features, num_classes))
        self.source_head = head_path

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (B, D)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.head(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.model(x))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:150] if text else type(exc).__name__


def _last_linear(model: nn.Module) -> str:
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise CxrlabError(f"{type(model).__name__} has no Linear classifier to replace")
    return names[-1]


def _tv_cam(model: nn.Module) -> tuple[str, Any]:
    """Grad-CAM layer (inside the wrapper, prefixed ``model.``) and reshape for torchvision families."""
    kind = type(model).__name__
    if kind == "ResNet":
        return "model.layer4", None
    if kind == "SwinTransformer":
        return "model.features", nhwc_to_nchw
    if kind == "VisionTransformer":
        last = len(model.encoder.layers) - 1
        return f"model.encoder.layers.encoder_layer_{last}.ln_1", token_reshape(1)
    if hasattr(model, "features"):
        return "model.features", None  # DenseNet, EfficientNet, ConvNeXt, MobileNet, VGG
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    return "model." + convs[-1], None


def create_tv(name: str, num_classes: int, in_chans: int, pretrained: bool, drop_rate: float | None,
              img_size: int) -> tuple[nn.Module, dict[str, Any]]:
    """Build ``tv:NAME`` (torchvision.models.get_model) with a new head and an ``in_chans`` stem."""
    import torchvision

    valid = torchvision.models.list_models(module=torchvision.models)
    if name not in valid:
        close = difflib.get_close_matches(name, valid, n=3)
        raise CxrlabError(f"unknown torchvision model {name!r}" + (f" (did you mean {', '.join(close)}?)" if close
                                                                     else "") + f"; valid: {', '.join(valid)}")
    weights = torchvision.models.get_model_weights(name).DEFAULT if pretrained else None
    if weights is not None and not W.tv_weights_cached(weights) and W.is_offline("tv"):
        raise W.offline_error(f"tv:{name}")
    kwargs = {"image_size": img_size} if name.startswith("vit_") else {}
    try:
        net = torchvision.models.get_model(name, weights=weights, **kwargs)
    except (ValueError, TypeError, AssertionError) as exc:
        raise CxrlabError(f"tv:{name} cannot be built at img_size={img_size} ({_first_line(exc)})") from None
    except Exception as exc:  # download failures
        if weights is None:
            raise
        raise W.download_error(f"tv:{name}", exc) from None
    if in_chans != 3:
        adapt_first_conv(net, in_chans)
    cam_layer, reshape = _tv_cam(net)
    head_path = _last_linear(net)
    model = TorchvisionClassifier(net, head_path, num_classes, 0.0 if drop_rate is None else float(drop_rate))
    return model, {
        "cam_layer": cam_layer,
        "cam_reshape": reshape,
        "config": data_config(IMAGENET_MEAN, IMAGENET_STD, in_chans, img_size),
        "head_prefixes": ("head.", f"model.{head_path}."),
    }
