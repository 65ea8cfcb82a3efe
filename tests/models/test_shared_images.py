"""Real NIH images through a model, normalised with the model's own ``data_config``."""

from __future__ import annotations

import pytest
import torch

from cxrlab.models import create_model


@pytest.mark.shared
@pytest.mark.parametrize("name,in_chans", [("cnn_gap", 1), ("timm:resnet18", 3)])
def test_real_images_forward(shared_data, name, in_chans):
    from cxrlab.data.images import read_image, resize_image

    files = sorted((shared_data / "nih-sample" / "images").glob("*.png"))[:2]
    assert files, "nih-sample has no PNGs"
    model = create_model(name, 15, in_chans=in_chans, img_size=64).eval()
    cfg = model.data_config
    x = torch.stack([torch.from_numpy(resize_image(read_image(f), 64)) for f in files]).float().div(255)
    x = x[:, None].expand(-1, in_chans, -1, -1)  # (B, C, 64, 64): gray repeated for RGB backbones
    x = (x - torch.tensor(cfg["mean"])[:, None, None]) / torch.tensor(cfg["std"])[:, None, None]
    with torch.no_grad():
        probs = torch.sigmoid(model(x))
    assert probs.shape == (2, 15) and torch.isfinite(probs).all()
    assert x.mean().abs() < 3  # the statistics put real radiographs in a sane range
