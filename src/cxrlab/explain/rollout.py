"""Attention rollout (Abnar & Zuidema 2020) for plain ViTs: timm ``VisionTransformer`` and our paper ViTs.

Rather than relying on a softmax module (timm uses fused ``scaled_dot_product_attention``), a hook on each
attention block's ``qkv`` projection recomputes softmax(q k^T / sqrt(d)) per head. Per layer the heads are
averaged, the identity (residual) added and rows renormalised; the layers are multiplied. The class token's
row (or, without one, the mean row) over the patch tokens is the map. A model with several token streams
(the multi-scale ViT: a patch-16 and a patch-32 branch) is rolled out per stream, each on its own grid, and
the streams' maps are averaged at the input size. Windowed attention (Swin) and CNNs have no global
token-to-token attention: they get an error that names Grad-CAM.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cxrlab.errors import CxrlabError
from cxrlab.explain.maps import normalise_maps


def attention_blocks(model: nn.Module) -> list[nn.Module]:
    """Attention modules with a global ``qkv`` projection (timm ``Attention``, our ``KerasAttention``)."""
    blocks = [m for m in model.modules() if isinstance(getattr(m, "qkv", None), nn.Linear) and hasattr(m, "num_heads")]
    name = getattr(model, "model_name", type(model).__name__)
    if not blocks:
        raise CxrlabError(f"attention rollout needs a vision transformer; {name} has no attention blocks "
                          "(a CNN): use --method gradcam (or gradcam++, hirescam, eigencam)")
    if any(hasattr(m, "window_size") or hasattr(m, "relative_position_bias_table") for m in blocks):
        raise CxrlabError(f"attention rollout needs global attention; {name} uses windowed (Swin) attention: "
                          "use --method gradcam with its token reshape")
    return blocks


def _head_dim(m: nn.Module) -> int:
    return int(getattr(m, "head_dim", None) or getattr(m, "key_dim", None) or m.qkv.out_features // (3 * m.num_heads))


def _attention_from_qkv(m: nn.Module, qkv: torch.Tensor) -> torch.Tensor:
    """(B, N, 3*H*d) -> head-averaged attention (B, N, N)."""
    b, n, _ = qkv.shape
    d = _head_dim(m)
    q, k, _ = qkv.reshape(b, n, 3, m.num_heads, d).permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, N, d) each
    if isinstance(getattr(m, "q_norm", None), nn.Module):
        q, k = m.q_norm(q), m.k_norm(k)
    attn = (q @ k.transpose(-2, -1) / math.sqrt(d)).softmax(dim=-1)
    return attn.mean(dim=1)


def token_streams(model: nn.Module) -> list[tuple[int, list[nn.Module]]]:
    """Attention blocks grouped by the transformer that owns them, each with its prefix-token count.

    The owner of a block is its nearest enclosing module with ``num_prefix_tokens`` (a timm ViT), else the
    model itself (our paper ViTs: no class token). One stream for a plain ViT, two for the multi-scale ViT.
    """
    blocks = {id(m) for m in attention_blocks(model)}
    owners = {name: mod for name, mod in model.named_modules() if hasattr(mod, "num_prefix_tokens")}
    streams: dict[str, tuple[int, list[nn.Module]]] = {}
    for name, mod in model.named_modules():
        if id(mod) not in blocks:
            continue
        owner = max((o for o in owners if o == "" or name.startswith(o + ".")), key=len, default="")
        prefix = int(getattr(owners.get(owner, model), "num_prefix_tokens", 0) or 0)
        streams.setdefault(owner, (prefix, []))[1].append(mod)
    return list(streams.values())


def _rollout(attentions: list[torch.Tensor], prefix: int, residual: float) -> torch.Tensor:
    """Multiply one stream's residual-mixed attentions; (B, side, side) relevance of its patch tokens."""
    n = attentions[0].shape[-1]
    eye = torch.eye(n, dtype=attentions[0].dtype)
    rollout = eye.expand(attentions[0].shape[0], n, n)
    for attn in attentions:
        a = residual * attn + (1 - residual) * eye
        rollout = (a / a.sum(dim=-1, keepdim=True)) @ rollout
    relevance = rollout[:, 0, prefix:] if prefix else rollout.mean(dim=1)  # (B, patches)
    side = math.isqrt(relevance.shape[1])
    if side * side != relevance.shape[1]:
        raise CxrlabError(f"cannot arrange {relevance.shape[1]} tokens in a square grid for rollout")
    return relevance.reshape(-1, side, side)


@torch.no_grad()
def attention_rollout(model: nn.Module, x: torch.Tensor, residual: float = 0.5) -> np.ndarray:
    """Rollout maps (B, H, W) in [0, 1] at the input size. Class-agnostic, as attention is."""
    streams = token_streams(model)
    captured: list[list[torch.Tensor]] = [[] for _ in streams]

    def capture(store: list[torch.Tensor], block: nn.Module):
        return lambda mod, inputs, output: store.append(_attention_from_qkv(block, output))

    hooks = [b.qkv.register_forward_hook(capture(store, b)) for (_, blocks), store in zip(streams, captured)
             for b in blocks]
    try:
        model.eval()
        model(x)
    finally:
        for h in hooks:
            h.remove()
    maps = []
    for (prefix, _), attentions in zip(streams, captured):
        grid = _rollout(attentions, prefix, residual)[:, None]
        up = F.interpolate(grid, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        maps.append(normalise_maps(up.numpy()))
    return normalise_maps(np.mean(maps, axis=0))
