"""FLOP counting against a hand count on a tiny known model."""

from __future__ import annotations

from torch import nn

from cxrlab.models.flops import count_flops, gflops_per_image


def test_flops_of_a_tiny_known_model_match_a_hand_count():
    # conv 1->4, 3x3, padding 1 on 8x8: 4 output maps x 64 positions x 9 MACs; linear 256->3: 256*3 MACs
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(256, 3))
    hand = 2 * (4 * 64 * 9) + 2 * (256 * 3)
    assert count_flops(model, (1, 1, 8, 8)) == hand
    assert count_flops(model, (2, 1, 8, 8)) == 2 * hand  # linear in the batch
    assert gflops_per_image(model, 1, 8) == hand / 1e9
    assert model.training  # the counter leaves the mode as it found it
