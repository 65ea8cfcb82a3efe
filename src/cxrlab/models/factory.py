"""One factory for every model: ``create_model(name, num_classes, ...)``.

Names: the paper models (registered below, bare names), ``timm:NAME`` and ``tv:NAME``. Every model returned
follows the contract in architecture.md ("Models"); see ``cxrlab.models.contract``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from cxrlab.errors import CxrlabError
from cxrlab.models import weights as W
from cxrlab.models.contract import HALF, IMAGENET_MEAN, IMAGENET_STD, annotate, data_config, token_reshape
from cxrlab.registry import Registry, unknown_name_message

MODELS = Registry("model")

# Backbones we support, document and test (any other timm/torchvision name also works).
CURATED_TIMM = (
    "resnet18", "resnet34", "resnet50", "densenet121", "efficientnet_b0", "efficientnet_b4",
    "tf_efficientnetv2_s", "tf_efficientnetv2_l", "convnext_tiny",
    "swin_tiny_patch4_window7_224", "swin_small_patch4_window7_224", "swin_base_patch4_window7_224",
    "swin_large_patch4_window7_224", "vit_tiny_patch16_224", "vit_base_patch16_224", "vit_base_patch32_224",
    "vit_base_r50_s16_224", "vit_small_patch14_dinov2", "vit_base_patch14_dinov2",
)
CURATED_TV = (
    "resnet18", "resnet34", "resnet50", "densenet121", "efficientnet_b0", "efficientnet_b4",
    "efficientnet_v2_s", "efficientnet_v2_l", "convnext_tiny", "swin_t", "swin_s", "swin_b", "vit_b_16",
)


def _scratch_only(name: str, pretrained: bool) -> None:
    if pretrained:
        raise CxrlabError(f"model {name} is trained from scratch and has no hub weights; set "
                          "model.pretrained=false, or give --set model.weights=PATH")


@MODELS.register("cnn_baseline")
def _cnn_baseline(num_classes, in_chans, pretrained, drop_rate, img_size):
    """The paper's Flatten CNN (95.6M parameters at 224, 15 classes)."""
    from cxrlab.models.paper import PaperCNN

    _scratch_only("cnn_baseline", pretrained)
    model = PaperCNN(num_classes, in_chans, img_size, False, 0.5 if drop_rate is None else drop_rate)
    return model, _paper_contract("features.4", None, in_chans, img_size, ("head.3.",))


@MODELS.register("cnn_gap")
def _cnn_gap(num_classes, in_chans, pretrained, drop_rate, img_size):
    """The paper CNN with global average pooling instead of Flatten (about 60k parameters)."""
    from cxrlab.models.paper import PaperCNN

    _scratch_only("cnn_gap", pretrained)
    model = PaperCNN(num_classes, in_chans, img_size, True, 0.5 if drop_rate is None else drop_rate)
    return model, _paper_contract("features.4", None, in_chans, img_size, ("head.3.",))


@MODELS.register("resnet34_scratch")
def _resnet34_scratch(num_classes, in_chans, pretrained, drop_rate, img_size):
    """ResNet-34 from scratch; with ``pretrained=True`` it loads torchvision's ImageNet ResNet-34 (S2)."""
    from cxrlab.models.paper import ResNet34Scratch

    model = ResNet34Scratch(num_classes, in_chans, 0.0 if drop_rate is None else drop_rate)
    contract = _paper_contract("layer4", None, in_chans, img_size, ("fc.",))
    if pretrained:
        _load_tv_resnet34(model)
        contract["config"] = data_config(IMAGENET_MEAN, IMAGENET_STD, in_chans, img_size)
    return model, contract


def _load_tv_resnet34(model: nn.Module) -> None:
    import torchvision

    weights = torchvision.models.ResNet34_Weights.DEFAULT
    if not W.tv_weights_cached(weights) and W.is_offline("tv"):
        raise W.offline_error("resnet34_scratch")
    state = weights.get_state_dict(progress=False)
    conv = model.conv1.weight
    if conv.shape[1] != 3:
        state["conv1.weight"] = state["conv1.weight"].sum(dim=1, keepdim=True)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    model.load_state_dict(state, strict=False)


def _paper_vit(name, num_classes, in_chans, pretrained, drop_rate, img_size):
    from cxrlab.models.paper import PaperViT

    _scratch_only(name, pretrained)
    model = PaperViT(num_classes, in_chans, img_size, drop_rate=0.5 if drop_rate is None else drop_rate)
    return model, _paper_contract("norm", token_reshape(0), in_chans, img_size, ("head.",))


@MODELS.register("vit_v1")
def _vit_v1(num_classes, in_chans, pretrained, drop_rate, img_size):
    """Keras-example ViT: patch 32, dim 64, depth 8, 4 heads, MLP ratio 2, flatten + MLP [2048, 1024] head."""
    return _paper_vit("vit_v1", num_classes, in_chans, pretrained, drop_rate, img_size)


@MODELS.register("vit_v2")
def _vit_v2(num_classes, in_chans, pretrained, drop_rate, img_size):
    """Same network as vit_v1; the paper's v2 differences are its recipe (configs/): L2 on dense kernels as
    weight decay, SGD with momentum, ReduceLROnPlateau, early stopping restoring the best weights."""
    return _paper_vit("vit_v2", num_classes, in_chans, pretrained, drop_rate, img_size)


@MODELS.register("vit_multiscale")
def _vit_multiscale(num_classes, in_chans, pretrained, drop_rate, img_size):
    """S2: ViT-B/16 + ViT-B/32 features concatenated, MLP 1536-1024-512-C."""
    from cxrlab.models.multiscale import MultiScaleViT

    model = MultiScaleViT(num_classes, in_chans, img_size, pretrained, drop_rate)
    cfg = model.vit16.pretrained_cfg
    contract = _paper_contract("vit16.blocks.11.norm1", token_reshape(1), in_chans, img_size, ("head.",))
    contract["config"] = data_config(cfg["mean"], cfg["std"], in_chans, img_size)
    return model, contract


def _paper_contract(cam_layer, reshape, in_chans, img_size, heads) -> dict[str, Any]:
    return {"cam_layer": cam_layer, "cam_reshape": reshape, "config": data_config(HALF, HALF, in_chans, img_size),
            "head_prefixes": heads}


def _build(name: str, num_classes: int, in_chans: int, pretrained: bool, drop_rate: float | None,
           img_size: int) -> tuple[nn.Module, dict[str, Any], str]:
    from cxrlab.models import backbones

    if name.startswith("timm:"):
        return (*backbones.create_timm(name[5:], num_classes, in_chans, pretrained, drop_rate, img_size), "timm")
    if name.startswith("tv:"):
        return (*backbones.create_tv(name[3:], num_classes, in_chans, pretrained, drop_rate, img_size), "tv")
    if name.startswith("xrv:"):
        from cxrlab.models.xrv import create_xrv

        return (*create_xrv(name[4:], num_classes, in_chans, pretrained, drop_rate, img_size), "xrv")
    if name not in MODELS:
        raise CxrlabError(unknown_name_message("model", name, MODELS.names()) + ", or timm:NAME / tv:NAME / xrv:NAME")
    model, contract = MODELS.get(name)(num_classes, in_chans, pretrained, drop_rate, img_size)
    return model, contract, "ours"


def create_model(name: str, num_classes: int, in_chans: int = 1, pretrained: bool = False,
                 weights: str | None = None, drop_rate: float | None = None,
                 class_names: Sequence[str] | None = None, img_size: int = 224,
                 weights_sha256: str | None = None) -> nn.Module:
    """Build a classifier by name.

    Args:
        name: a paper model (``cnn_baseline``, ``cnn_gap``, ``resnet34_scratch``, ``vit_v1``, ``vit_v2``,
            ``vit_multiscale``), ``timm:NAME``, ``tv:NAME`` or ``xrv:densenet121`` / ``xrv:resnet50``
            (torchxrayvision's architectures, for its weights files: ``cxrlab.models.xrv``).
        num_classes: number of logits.
        in_chans: 1 (grayscale) or 3.
        pretrained: load the hub's ImageNet weights (needs network or a warm cache).
        weights: a local weights file or folder (safetensors or a plain state dict); overrides ``pretrained``.
        drop_rate: head dropout (None: the model's default).
        class_names: names of the outputs (default ``class_0``...).
        img_size: input side; fixes the paper CNN's flatten size and transformers' position grids.
        weights_sha256: pin of the ``weights`` file, verified before loading.

    Returns:
        An ``nn.Module`` with the contract attributes (``cam_layer``, ``data_config``, ``class_names``...).
    """
    if num_classes < 1:
        raise CxrlabError(f"num_classes must be at least 1, got {num_classes}")
    if in_chans not in (1, 3):
        raise CxrlabError(f"model.in_chans must be 1 or 3, got {in_chans}")
    kwargs = {"num_classes": num_classes, "in_chans": in_chans, "pretrained": pretrained, "weights": weights,
              "drop_rate": drop_rate, "class_names": list(class_names) if class_names else None,
              "img_size": img_size, "weights_sha256": weights_sha256}
    # A local file replaces the hub download: build the bare architecture, then load the file into it.
    model, contract, source = _build(name, num_classes, in_chans, pretrained and not weights, drop_rate, img_size)
    annotate(model, name=name, kwargs=kwargs, class_names=class_names, cam_layer=contract["cam_layer"],
             cam_reshape=contract["cam_reshape"], config=contract["config"],
             head_prefixes=contract["head_prefixes"], source=source)
    model.fresh_keys = []  # state-dict keys a weights file did not provide (a new head)
    if weights:
        model.fresh_keys = W.load_weights(model, weights, weights_sha256)
        _use_folder_normalisation(model, weights, in_chans, img_size)
    elif weights_sha256:
        raise CxrlabError("model.weights_sha256 is set but model.weights is not; pin the sha256 of a local file")
    return model


def _use_folder_normalisation(model: nn.Module, weights: str, in_chans: int, img_size: int) -> None:
    """A Hugging Face model folder states the normalisation its encoder was trained with: use it."""
    from cxrlab.models.key_maps import folder_normalisation

    found = folder_normalisation(weights)
    if found is not None:
        model.data_config = data_config(found[0], found[1], in_chans, img_size)


def rebuild_kwargs(model_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``model_kwargs`` from a checkpoint, made safe to rebuild the bare architecture (no download, no file)."""
    return {**model_kwargs, "pretrained": False, "weights": None, "weights_sha256": None}


def list_models(source: str | None = None) -> list[str]:
    """Our model names, the curated ``timm:``/``tv:`` backbones and ``xrv:`` (``source``: ours, timm, tv or xrv)."""
    from cxrlab.models.xrv import XRV_NATIVE_SIZE

    names = {"ours": MODELS.names(), "timm": [f"timm:{n}" for n in CURATED_TIMM],
             "tv": [f"tv:{n}" for n in CURATED_TV], "xrv": [f"xrv:{n}" for n in XRV_NATIVE_SIZE]}
    if source is not None and source not in names:
        raise CxrlabError(f"unknown model source {source!r}; valid: ours, timm, tv, xrv")
    return [n for key, group in names.items() if source in (None, key) for n in group]


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def model_summary(model: nn.Module) -> dict[str, Any]:
    """A small dict describing a built model (name, parameters, channels, image size, CAM layer...)."""
    cfg = getattr(model, "data_config", {})
    return {
        "name": getattr(model, "model_name", type(model).__name__),
        "source": getattr(model, "source", "?"),
        "params": count_parameters(model),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "in_chans": cfg.get("input_size", (None,))[0],
        "img_size": cfg.get("input_size", (None, None, None))[-1],
        "num_classes": len(getattr(model, "class_names", [])),
        "cam_layer": getattr(model, "cam_layer", None),
        "has_dropout": getattr(model, "has_dropout", None),
        "mean": cfg.get("mean"),
        "std": cfg.get("std"),
    }


def meta_model(name: str, num_classes: int = 15, in_chans: int = 3, img_size: int = 224) -> nn.Module:
    """Build ``name`` on the meta device (no memory, no init cost): for parameter counts of huge models.

    A few constructors compute with real tensors while building (torchvision's RegNets derive their widths with
    ``torch.pow``), which the meta device cannot do: those are built on the CPU instead."""
    try:
        with torch.device("meta"):
            return create_model(name, num_classes, in_chans=in_chans, img_size=img_size)
    except NotImplementedError:
        return create_model(name, num_classes, in_chans=in_chans, img_size=img_size)
