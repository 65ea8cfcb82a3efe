"""Attention rollout (Abnar & Zuidema 2020) for plain ViTs: timm ``VisionTransformer`` and our paper ViTs.

Rather than relying on a softmax module (timm uses fused ``scaled_dot_product_attention``), a hook on each
attention block's ``qkv`` projection recomputes softmax(q k^T / sqrt(d)) per head. Per layer the heads are
averaged, the identity (residual) added and rows renormalised; the layers are multiplied. The class token's
row (or, without one, the mean row) over the patch tokens is the map. Windowed attention (Swin) and CNNs have
no global token-to-token attention: they get an error that names Grad-CAM.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cxrlab.errors import CxrlabError


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


@torch.no_grad()
def attention_rollout(model: nn.Module, x: torch.Tensor, residual: float = 0.5) -> np.ndarray:
    """Rollout maps (B, H, W) in [0, 1] at the input size. Class-agnostic, as attention is."""
    from cxrlab.explain.cam import normalise_maps

    blocks = attention_blocks(model)
    captured: list[torch.Tensor] = []
    hooks = [m.qkv.register_forward_hook(lambda mod, i, o, m=m: captured.append(_attention_from_qkv(m, o)))
             for m in blocks]
    try:
        model.eval()
        model(x)
    finally:
        for h in hooks:
            h.remove()
    if len({a.shape[-1] for a in captured}) != 1:
        raise CxrlabError("attention rollout needs one token grid; this model mixes several (multi-scale): "
                          "use --method gradcam")
    n = captured[0].shape[-1]
    eye = torch.eye(n, dtype=captured[0].dtype)
    rollout = eye.expand(x.shape[0], n, n)
    for attn in captured:
        a = residual * attn + (1 - residual) * eye
        rollout = (a / a.sum(dim=-1, keepdim=True)) @ rollout
    prefix = int(getattr(model, "num_prefix_tokens", 0) or 0)
    relevance = rollout[:, 0, prefix:] if prefix else rollout.mean(dim=1)  # (B, patches)
    side = math.isqrt(relevance.shape[1])
    if side * side != relevance.shape[1]:
        raise CxrlabError(f"cannot arrange {relevance.shape[1]} tokens in a square grid for rollout")
    grid = relevance.reshape(-1, 1, side, side)
    maps = F.interpolate(grid, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return normalise_maps(maps.numpy())
