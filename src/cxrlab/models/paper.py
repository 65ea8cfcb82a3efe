"""The S1 paper's models, built from scratch and faithful to its spec (MISSION.md, S1).

Dense and attention layers use Keras' defaults (Glorot-uniform kernels, zero biases, LayerNorm eps 1e-6)
because the paper trained in Keras; parameter counts therefore match what Keras' ``model.summary()`` shows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from cxrlab.errors import CxrlabError


def _keras_init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class PaperCNN(nn.Module):
    """Conv3x3-32 valid + ReLU + MaxPool2, Conv3x3-64 valid + ReLU + MaxPool2, then a Dense-512 head.

    ``global_pool=False`` is the paper's Flatten version (95.6M parameters at 224, 99% in the first dense
    layer: it is built to overfit); ``global_pool=True`` is our GAP variant (about 60k parameters).
    """

    def __init__(self, num_classes: int, in_chans: int = 3, img_size: int = 224, global_pool: bool = False,
                 drop_rate: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.side = ((img_size - 2) // 2 - 2) // 2  # valid convs and floor pooling, as in Keras
        if self.side < 1:
            raise CxrlabError(f"model.img_size={img_size} is too small for the paper CNN; use at least 10 "
                              "(data.image_size in a config)")
        self.global_pool = global_pool
        flat = 64 if global_pool else 64 * self.side * self.side
        self.head = nn.Sequential(nn.Linear(flat, 512), nn.ReLU(), nn.Dropout(drop_rate), nn.Linear(512, num_classes))
        _keras_init(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 64, side, side)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        if self.global_pool:
            return self.head(f.mean(dim=(2, 3)))
        if f.shape[-1] != self.side:
            raise CxrlabError(f"cnn_baseline was built for a {self.side}x{self.side} feature map but got "
                              f"{f.shape[-1]}x{f.shape[-1]}; set model.img_size (data.image_size in a config) to the "
                              "training image size")
        return self.head(f.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class ResNet34Scratch(ResNet):
    """torchvision's ResNet (BasicBlocks [3, 4, 6, 3], 64-128-256-512, GAP, Dense C; Kaiming-normal conv
    init) with a 1- or 3-channel stem and an optional head dropout. Keys match torchvision's ``resnet34``."""

    def __init__(self, num_classes: int, in_chans: int = 3, drop_rate: float = 0.0) -> None:
        super().__init__(BasicBlock, [3, 4, 6, 3], num_classes=num_classes)
        if in_chans != 3:
            self.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.drop = nn.Dropout(drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 512, h, w)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(torch.flatten(self.avgpool(f), 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class KerasAttention(nn.Module):
    """Keras ``MultiHeadAttention(num_heads, key_dim=dim)``: every head is ``dim`` wide (not dim / heads),
    which is what the Keras ViT example does and why its blocks hold 66k attention parameters at dim 64."""

    def __init__(self, dim: int, num_heads: int, key_dim: int, dropout: float) -> None:
        super().__init__()
        self.num_heads, self.key_dim, self.dropout = num_heads, key_dim, dropout
        self.qkv = nn.Linear(dim, 3 * num_heads * key_dim)
        self.proj = nn.Linear(num_heads * key_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.key_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(b, n, self.num_heads * self.key_dim))


def _mlp(sizes: list[int], in_dim: int, dropout: float) -> nn.Sequential:
    """Keras example ``mlp()``: Dense + GELU + Dropout for every size."""
    layers: list[nn.Module] = []
    for size in sizes:
        layers += [nn.Linear(in_dim, size), nn.GELU(), nn.Dropout(dropout)]
        in_dim = size
    return nn.Sequential(*layers)


class Block(nn.Module):
    """Pre-LN encoder block of the Keras ViT example."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = KerasAttention(dim, num_heads, key_dim=dim, dropout=dropout)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _mlp([int(dim * mlp_ratio), dim], dim, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PaperViT(nn.Module):
    """ViT from the Keras example (no class token): patch embedding + learned positions, pre-LN blocks, a
    final LayerNorm, then head = flatten of all tokens -> Dropout 0.5 -> MLP [2048, 1024] (GELU, dropout
    0.5) -> Dense C. At 224 with patch 32 (49 tokens), dim 64, depth 8: 9.40M parameters for 15 classes.

    ``vit_v2`` is the same network; its differences (L2 on dense kernels as weight decay, SGD with momentum,
    ReduceLROnPlateau, early stopping restoring the best weights) live in ``configs/`` (the recipe).
    """

    def __init__(self, num_classes: int, in_chans: int = 3, img_size: int = 224, patch_size: int = 32,
                 dim: int = 64, depth: int = 8, num_heads: int = 4, mlp_ratio: float = 2.0, dropout: float = 0.1,
                 head_units: tuple[int, ...] = (2048, 1024), drop_rate: float = 0.5) -> None:
        super().__init__()
        if img_size < patch_size:
            raise CxrlabError(f"model.img_size={img_size} is smaller than the ViT patch ({patch_size}); use a "
                              "multiple of the patch (data.image_size in a config)")
        self.grid = img_size // patch_size
        self.num_patches = self.grid * self.grid
        # A stride-p conv equals Keras' extract_patches + Dense (same parameters, same valid cropping).
        self.patch_embed = nn.Conv2d(in_chans, dim, patch_size, stride=patch_size)
        self.pos_embed = nn.Parameter(torch.empty(1, self.num_patches, dim).uniform_(-0.05, 0.05))  # Keras Embedding
        self.blocks = nn.Sequential(*[Block(dim, num_heads, mlp_ratio, dropout) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head_drop = nn.Dropout(drop_rate)
        self.head_mlp = _mlp(list(head_units), self.num_patches * dim, drop_rate)
        self.head = nn.Linear(head_units[-1], num_classes)
        _keras_init(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, N, D)
        if x.shape[1] != self.num_patches:
            raise CxrlabError(f"vit was built for {self.num_patches} patches but the image gives {x.shape[1]}; "
                              "set model.img_size (data.image_size in a config) to the "
                              "training image size")
        return self.norm(self.blocks(x + self.pos_embed))

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_mlp(self.head_drop(f.flatten(1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
