"""FLOPs per image of a model at its input size, counted by ``torch.utils.flop_counter.FlopCounterMode``.

The counter follows PyTorch's convention: a multiply-add is 2 FLOPs, and only matrix products and
convolutions are counted (elementwise ops, norms and activations are not), like most published GFLOPs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@torch.no_grad()
def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass of ``model`` on a zero tensor of ``input_shape`` (e.g. (1, 1, 224, 224))."""
    was_training = model.training
    model.eval()
    param = next(model.parameters(), None)
    x = torch.zeros(input_shape, device=param.device if param is not None else "cpu")
    try:
        with FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def gflops_per_image(model: nn.Module, in_chans: int, image_size: int) -> float:
    """GFLOPs of one image's forward pass at ``image_size`` (batch 1)."""
    return count_flops(model, (1, in_chans, image_size, image_size)) / 1e9
