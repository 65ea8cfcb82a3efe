"""Weights trained on many datasets, from local files in their source's own format.

torchxrayvision's DenseNet-121 (a pickled model, as the package publishes it, and a plain state dict) and ResNet-50
(torchvision's network with a 1-channel stem, saved as the package saves it), and a Hugging Face DINOv2 encoder
folder (the format of CXR self-supervised encoders such as RAD-DINO): each file is written here by the source
package itself (installed, never downloaded), loaded into cxrlab, and must give the source model's outputs on the
same images, preprocessed by cxrlab's own evaluation transform.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from cxrlab.data.transforms import build_transform
from cxrlab.errors import CxrlabError
from cxrlab.models import create_model
from cxrlab.models.xrv import XRV_PATHOLOGIES


def _images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """(n, size, size) uint8 chest-like images."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = 110 + 70 * np.cos(3 * (xx - 0.5)) * np.cos(2 * (yy - 0.5))
    return np.clip(base + rng.normal(0, 20, (n, size, size)), 0, 255).astype(np.uint8)


def _ours_input(model, images: np.ndarray) -> torch.Tensor:
    """cxrlab's evaluation transform with the model's own normalisation (what train/predict/serve use)."""
    dc = model.data_config
    tf = build_transform("none", False, images.shape[-1], in_chans=dc["input_size"][0], mean=dc["mean"], std=dc["std"])
    return torch.stack([tf(torch.from_numpy(img)[None]) for img in images])


def _randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Perturb every parameter and BatchNorm statistic, so a wrong key or a swapped tensor cannot go unseen."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                noise = torch.randn(t.shape, generator=gen) * 0.05
                t.copy_(t.abs() + 0.5 + noise.abs() if name.endswith("running_var") else t + noise)


@pytest.fixture(scope="module")
def xrv():
    return pytest.importorskip("torchxrayvision")


@pytest.fixture(scope="module")
def xrv_densenet(xrv):
    torch.manual_seed(0)
    model = xrv.models.DenseNet(weights=None)  # the package's network, no download
    _randomise(model)
    return model.eval()


@pytest.mark.parametrize("fmt", ["pickled_model", "state_dict"])
def test_xrv_densenet_file_gives_the_packages_outputs(xrv, xrv_densenet, tmp_path, fmt):
    path = tmp_path / "xrv-densenet121.pt"
    torch.save(xrv_densenet if fmt == "pickled_model" else xrv_densenet.state_dict(), path)
    ours = create_model("xrv:densenet121", 18, in_chans=1, weights=str(path), class_names=XRV_PATHOLOGIES).eval()
    assert ours.fresh_keys == []
    images = _images(3, 224)
    theirs_in = torch.from_numpy(np.stack([xrv.utils.normalize(img, 255) for img in images]))[:, None].float()
    ours_in = _ours_input(ours, images)
    assert torch.allclose(ours_in, theirs_in, atol=1e-3)  # the same [-1024, 1024] scaling, to float rounding
    with torch.no_grad():
        expected, got = xrv_densenet(theirs_in), ours(ours_in)
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5), (got - expected).abs().max()
    assert list(xrv_densenet.targets if hasattr(xrv_densenet, "targets") else XRV_PATHOLOGIES) == list(XRV_PATHOLOGIES)


def test_xrv_resnet50_state_dict_gives_the_source_outputs(tmp_path):
    import torchvision

    # torchxrayvision's ResNet-50: torchvision's network with a 1-channel conv1; it saves self.model.state_dict()
    torch.manual_seed(1)
    net = torchvision.models.resnet50(weights=None, num_classes=18)
    net.conv1 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    _randomise(net, seed=1)
    net.eval()
    torch.save(net.state_dict(), tmp_path / "resnet50-res512-all.pt")
    ours = create_model("xrv:resnet50", 18, in_chans=1, weights=str(tmp_path / "resnet50-res512-all.pt"),
                        img_size=96).eval()
    assert ours.fresh_keys == []
    x = _ours_input(ours, _images(2, 96, seed=1))
    with torch.no_grad():
        assert torch.allclose(ours(x), net(x), atol=1e-5, rtol=1e-5)


def test_xrv_backbone_with_our_classes_keeps_features_and_takes_a_new_head(xrv_densenet, tmp_path):
    path = tmp_path / "w.pt"
    torch.save(xrv_densenet, path)
    ours = create_model("xrv:densenet121", 4, in_chans=1, weights=str(path), img_size=96).eval()
    assert set(ours.fresh_keys) == {"classifier.weight", "classifier.bias"}
    x = torch.randn(2, 1, 96, 96) * 500
    with torch.no_grad():
        assert torch.allclose(ours.forward_features(x), xrv_densenet.features2(x), atol=1e-5, rtol=1e-5)
        assert ours(x).shape == (2, 4)


def test_xrv_models_refuse_three_channels_and_hub_download():
    with pytest.raises(CxrlabError, match="1-channel"):
        create_model("xrv:densenet121", 3, in_chans=3)
    with pytest.raises(CxrlabError, match="model.weights=PATH"):
        create_model("xrv:resnet50", 3, in_chans=1, pretrained=True)
    with pytest.raises(CxrlabError, match="xrv:densenet121, xrv:resnet50"):
        create_model("xrv:densenet201", 3, in_chans=1)


class _Payload:
    """Stands for a malicious pickle: unpickling it must never call os.system."""

    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_pickle_of_anything_but_network_modules_is_refused_unrun(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"features.conv0.weight": _Payload()}, fh)
    torch.save({"model": _Payload()}, tmp_path / "evil2.pt")
    for file in (path, tmp_path / "evil2.pt"):
        with pytest.raises(CxrlabError, match="weights") as err:
            create_model("xrv:densenet121", 18, in_chans=1, weights=str(file))
        assert "\n" not in str(err.value)


def test_hf_dinov2_folder_loads_into_timm_with_its_normalisation(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                                    intermediate_size=1536, image_size=224, patch_size=14)
    torch.manual_seed(2)
    hf = transformers.Dinov2Model(cfg)
    _randomise(hf, seed=2)  # layer scales, norms and biases all differ, so a swapped key shows
    hf.eval()
    folder = tmp_path / "rad-dino-like"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in hf.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.53] * 3, "image_std": [0.26] * 3}))
    ours = create_model("timm:vit_small_patch14_dinov2", 5, in_chans=3, weights=str(folder), img_size=224).eval()
    assert set(ours.fresh_keys) == {"head.weight", "head.bias"}
    assert ours.data_config["mean"] == (0.53, 0.53, 0.53) and ours.data_config["std"] == (0.26, 0.26, 0.26)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = hf(pixel_values=x).last_hidden_state
        got = ours.forward_features(x)
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5), (got - expected).abs().max()
    gray = create_model("timm:vit_small_patch14_dinov2", 5, in_chans=1, weights=str(folder), img_size=224).eval()
    g = torch.randn(1, 1, 224, 224)
    with torch.no_grad():  # a gray image through the summed stem = the RGB encoder on the repeated image
        assert torch.allclose(gray.forward_features(g), hf(pixel_values=g.repeat(1, 3, 1, 1)).last_hidden_state,
                              atol=1e-4, rtol=1e-4)
