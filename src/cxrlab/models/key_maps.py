"""Key mappings for weights files saved by other libraries, onto the architectures cxrlab builds.

Hugging Face ``Dinov2Model`` (the format of self-supervised CXR encoders such as RAD-DINO) onto timm's
``vit_*_patch14_dinov2``: the same network with other names, and q/k/v as three matrices where timm keeps one.
Both the transformers 4 names (``attention.attention.query``, ``attention.output.dense``) and the transformers 5
names (``attention.q_proj`` ... ``o_proj``) are read. A Hugging Face model folder also says how its images were
normalised (``preprocessor_config.json``: ``image_mean``, ``image_std``); ``folder_normalisation`` reads it so the
run preprocesses as the encoder was trained.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from cxrlab.errors import CxrlabError

HF_DINOV2_MARKER = "embeddings.patch_embeddings.projection.weight"
_EMBEDDINGS = {
    "embeddings.cls_token": "cls_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
}
_LAYER_PARTS = {
    "norm1": "norm1", "norm2": "norm2", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
    "attention.output.dense": "attn.proj", "attention.o_proj": "attn.proj",
}
_QKV = {"attention.attention.query": 0, "attention.attention.key": 1, "attention.attention.value": 2,
        "attention.q_proj": 0, "attention.k_proj": 1, "attention.v_proj": 2}
_LAYER_SCALES = {"layer_scale1.lambda1": "ls1.gamma", "layer_scale2.lambda1": "ls2.gamma"}
_LAYER_KEY = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")


def is_hf_dinov2(state: dict[str, torch.Tensor]) -> bool:
    """Whether ``state`` is a Hugging Face ``Dinov2Model`` state dict (optionally under a ``dinov2.`` prefix)."""
    return any(k.removeprefix("dinov2.") == HF_DINOV2_MARKER for k in state)


def hf_dinov2_to_timm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a Hugging Face ``Dinov2Model`` state dict to timm's keys; the mask token (pre-training only) is
    dropped and each block's q, k and v are stacked into ``attn.qkv``."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[int, str], list[torch.Tensor | None]] = {}
    for raw_key, value in state.items():
        key = raw_key.removeprefix("dinov2.")
        if key in _EMBEDDINGS:
            out[_EMBEDDINGS[key]] = value
            continue
        if key == "embeddings.mask_token" or key.startswith(("pooler.", "classifier.")):
            continue
        match = _LAYER_KEY.match(key)
        block, rest = (int(match.group(1)), match.group(2)) if match else (-1, "")
        part, _, kind = rest.rpartition(".")
        if rest in _LAYER_SCALES:
            out[f"blocks.{block}.{_LAYER_SCALES[rest]}"] = value
        elif part in _QKV and kind in ("weight", "bias"):
            qkv.setdefault((block, kind), [None, None, None])[_QKV[part]] = value
        elif part in _LAYER_PARTS and kind in ("weight", "bias"):
            out[f"blocks.{block}.{_LAYER_PARTS[part]}.{kind}"] = value
        else:
            raise CxrlabError(f"model.weights: unexpected key {raw_key!r} in a Hugging Face DINOv2 file; only the "
                              "plain Dinov2Model encoder (MLP, not SwiGLU) is supported")
    for (block, kind), parts in qkv.items():
        if any(p is None for p in parts):
            raise CxrlabError(f"model.weights: block {block} lacks one of query/key/value {kind}")
        out[f"blocks.{block}.attn.qkv.{kind}"] = torch.cat(parts, dim=0)  # (3D, D) / (3D,)
    return out


def folder_normalisation(weights: str | Path) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """``(image_mean, image_std)`` from a Hugging Face model folder's ``preprocessor_config.json``, or None."""
    path = Path(weights).expanduser()
    config = path / "preprocessor_config.json" if path.is_dir() else path.parent / "preprocessor_config.json"
    if not config.is_file():
        return None
    try:
        data = json.loads(config.read_text())
        mean, std = data["image_mean"], data["image_std"]
        mean = tuple(float(v) for v in (mean if isinstance(mean, list) else [mean]))
        std = tuple(float(v) for v in (std if isinstance(std, list) else [std]))
    except (ValueError, KeyError, TypeError) as exc:
        raise CxrlabError(f"{config}: cannot read image_mean/image_std ({type(exc).__name__}); fix or remove the "
                          "file") from None
    if not mean or len(mean) != len(std) or min(std) <= 0:
        raise CxrlabError(f"{config}: image_mean/image_std must be lists of equal length with std > 0")
    return mean, std
