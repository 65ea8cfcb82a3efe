import numpy as np
import pytest
import torch

from cxrlab.errors import CxrlabError
from cxrlab.explain.cam import compute_cams, normalise_maps, peak
from cxrlab.explain.rollout import attention_rollout
from cxrlab.models import create_model

CASES = [("cnn_gap", 1, 32), ("timm:resnet18", 3, 64), ("timm:vit_tiny_patch16_224", 1, 32),
         ("timm:swin_tiny_patch4_window7_224", 1, 64), ("vit_v1", 1, 64)]


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: create_model(name, 3, in_chans=ch, img_size=size) for name, ch, size in CASES}


@pytest.mark.parametrize("name,ch,size", CASES)
@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "hirescam", "eigencam"])
def test_cam_shape_and_range(models, name, ch, size, method):
    x = torch.randn(2, ch, size, size)
    maps = compute_cams(models[name], x, [0, 2], method)
    assert maps.shape == (2, size, size) and maps.dtype == np.float32
    assert maps.min() >= 0 and maps.max() <= 1
    peaks = maps.max(axis=(1, 2))
    # gradient methods may give an all-zero (ReLU'd) map on a random model; never anything else
    assert np.isin(peaks, [0.0, 1.0]).all()
    if method == "eigencam":
        assert np.isclose(peaks, 1).all()


@pytest.mark.parametrize("name", ["timm:vit_tiny_patch16_224", "vit_v1"])
def test_rollout_on_vits(models, name):
    size = dict((n, s) for n, _, s in CASES)[name]
    maps = attention_rollout(models[name], torch.randn(2, 1, size, size))
    assert maps.shape == (2, size, size) and maps.min() >= 0 and np.isclose(maps.max(), 1)


def test_rollout_on_multiscale_vit_averages_its_two_streams():
    from cxrlab.explain.rollout import token_streams
    from cxrlab.models.multiscale import MultiScaleViT

    torch.manual_seed(0)
    model = MultiScaleViT(3, in_chans=1, img_size=64,
                          branches={"vit16": "vit_tiny_patch16_224", "vit32": "vit_small_patch32_224"})
    streams = token_streams(model)
    assert [(prefix, len(blocks)) for prefix, blocks in streams] == [(1, 12), (1, 12)]
    maps = attention_rollout(model, torch.randn(2, 1, 64, 64))
    assert maps.shape == (2, 64, 64) and maps.min() >= 0 and np.isclose(maps.max(), 1)


@pytest.mark.parametrize("name", ["cnn_gap", "timm:swin_tiny_patch4_window7_224"])
def test_rollout_refuses_cnn_and_swin_naming_gradcam(models, name):
    with pytest.raises(CxrlabError, match="gradcam"):
        attention_rollout(models[name], torch.randn(1, 1, 64, 64))


def test_unknown_method_lists_valid(models):
    with pytest.raises(CxrlabError, match="valid: gradcam"):
        compute_cams(models["cnn_gap"], torch.randn(1, 1, 32, 32), [0], "scorecam")


def test_normalise_and_peak():
    m = np.zeros((2, 4, 5), dtype=np.float32)
    m[0, 1, 3] = 5
    out = normalise_maps(m)
    assert out[0].max() == 1 and out[1].max() == 0  # a flat map highlights nothing
    assert peak(out[0]) == (3, 1)
