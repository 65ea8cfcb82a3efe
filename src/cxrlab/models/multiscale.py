"""S2's multi-scale ViT: ViT-B/16 and ViT-B/32 (timm) pooled features, concatenated, then an MLP head
1536-1024-512-C (GELU, dropout). Pretrained through timm's hub weights for both branches, or a local file
holding the whole model's state dict (``model.weights``)."""

from __future__ import annotations

import torch
from torch import nn

from cxrlab.errors import CxrlabError
from cxrlab.models import weights as W

BRANCHES = {"vit16": "vit_base_patch16_224", "vit32": "vit_base_patch32_224"}


class MultiScaleViT(nn.Module):
    """Two ViT-B branches (patch 16 and 32) whose class-token features are fused by an MLP head."""

    def __init__(self, num_classes: int, in_chans: int = 3, img_size: int = 224, pretrained: bool = False,
                 drop_rate: float | None = None, branches: dict[str, str] | None = None) -> None:
        super().__init__()
        import timm

        branches = branches or BRANCHES
        if img_size % 32:
            raise CxrlabError(f"vit_multiscale needs model.img_size (data.image_size in a config) divisible by 32, got "
                              f"{img_size}")
        if pretrained and not all(W.timm_weights_cached(n) for n in branches.values()) and W.is_offline("timm"):
            raise W.offline_error("vit_multiscale")
        self.branch_names = list(branches)
        for attr, timm_name in branches.items():
            setattr(self, attr, timm.create_model(timm_name, pretrained=pretrained, num_classes=0,
                                                  in_chans=in_chans, img_size=img_size))
        width = sum(getattr(self, a).num_features for a in self.branch_names)  # 768 + 768 for ViT-B
        p = 0.1 if drop_rate is None else float(drop_rate)
        self.head = nn.Sequential(
            nn.Linear(width, 1024), nn.GELU(), nn.Dropout(p),
            nn.Linear(1024, 512), nn.GELU(), nn.Dropout(p),
            nn.Linear(512, num_classes),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([getattr(self, a)(x) for a in self.branch_names], dim=1)  # (B, 1536)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.head(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))
