"""Model factory: forward shape, 1/3 channels, the contract attributes, and parameter counts vs the spec."""

from __future__ import annotations

import copy

import pytest
import torch

from cxrlab.errors import CxrlabError
from cxrlab.models import create_model, list_models, model_summary
from cxrlab.models.factory import MODELS, count_parameters, meta_model

# (name, img_size): paper models at the smallest size they allow, backbones at tiny sizes.
PAPER = [("cnn_baseline", 32), ("cnn_gap", 32), ("resnet34_scratch", 32), ("vit_v1", 64), ("vit_v2", 64)]
BACKBONES = [
    ("timm:resnet18", 32), ("timm:densenet121", 32), ("timm:efficientnet_b0", 32), ("timm:convnext_tiny", 32),
    ("timm:vit_tiny_patch16_224", 32), ("timm:swin_tiny_patch4_window7_224", 64),
    ("tv:resnet18", 32), ("tv:efficientnet_b0", 32), ("tv:swin_t", 64), ("tv:densenet121", 32),
]


def _cam_map(model, x):
    """Run the model and return the Grad-CAM layer's activation as (B, D, h, w)."""
    seen = {}
    hook = model.get_submodule(model.cam_layer).register_forward_hook(lambda m, i, o: seen.setdefault("a", o))
    try:
        logits = model(x)
    finally:
        hook.remove()
    act = seen["a"]
    return logits, (model.cam_reshape(act) if model.cam_reshape else act)


def test_registry_holds_the_paper_models():
    assert {"cnn_baseline", "cnn_gap", "resnet34_scratch", "vit_v1", "vit_v2", "vit_multiscale"} <= set(MODELS.names())
    assert set(MODELS.names()) == {n for n, _ in PAPER} | {"vit_multiscale"}  # every registered model is tested


@pytest.mark.parametrize("name,size", PAPER + BACKBONES)
@pytest.mark.parametrize("in_chans", [1, 3])
def test_forward_contract(name, size, in_chans):
    torch.manual_seed(0)
    model = create_model(name, 3, in_chans=in_chans, img_size=size, class_names=["a", "b", "c"]).eval()
    x = torch.randn(2, in_chans, size, size)
    with torch.no_grad():
        logits, cam = _cam_map(model, x)
        assert torch.allclose(model.forward_head(model.forward_features(x)), logits, atol=1e-5)
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    assert cam.dim() == 4 and cam.shape[0] == 2 and cam.shape[-1] >= 1
    assert model.class_names == ["a", "b", "c"] and model.model_name == name
    assert model.model_kwargs["in_chans"] == in_chans and model.model_kwargs["img_size"] == size
    assert len(model.data_config["mean"]) == in_chans and model.data_config["input_size"] == (in_chans, size, size)
    assert isinstance(model.has_dropout, bool)


@pytest.mark.slow
@pytest.mark.parametrize("in_chans", [1, 3])
def test_vit_multiscale_forward(in_chans):
    model = create_model("vit_multiscale", 2, in_chans=in_chans, img_size=64).eval()
    with torch.no_grad():
        logits, cam = _cam_map(model, torch.randn(1, in_chans, 64, 64))
    assert logits.shape == (1, 2) and cam.shape == (1, 768, 4, 4)


def test_vit_multiscale_head_sizes_on_meta():
    model = meta_model("vit_multiscale")
    sizes = [(m.in_features, m.out_features) for m in model.head if isinstance(m, torch.nn.Linear)]
    assert sizes == [(1536, 1024), (1024, 512), (512, 15)]


@pytest.mark.parametrize("name,expected", [
    ("cnn_baseline", 95_579_087),   # spec: about 95.6M (Keras count, valid padding)
    ("resnet34_scratch", 21_292_367),  # spec: about 21.3M
    ("vit_v1", 9_403_663),          # Keras ViT example at 224, patch 32, key_dim = 64 per head
    ("vit_v2", 9_403_663),
])
def test_parameter_counts_match_the_spec(name, expected):
    n = count_parameters(meta_model(name, 15, in_chans=3, img_size=224))
    assert n == expected
    spec = {"cnn_baseline": 95.6e6, "resnet34_scratch": 21.3e6, "vit_v1": 9.4e6, "vit_v2": 9.4e6}[name]
    assert abs(n - spec) / spec < 0.02


def test_list_models_and_summary():
    names = list_models()
    assert names[:6] == sorted(MODELS.names()) and "timm:swin_large_patch4_window7_224" in names
    assert "tv:resnet50" in list_models("tv") and all(n.startswith("timm:") for n in list_models("timm"))
    summary = model_summary(create_model("cnn_gap", 2, in_chans=1, img_size=32))
    assert summary["params"] > 0 and summary["in_chans"] == 1 and summary["cam_layer"] == "features.4"


def test_deepcopy_keeps_contract():
    model = create_model("vit_v1", 2, in_chans=1, img_size=64)
    clone = copy.deepcopy(model)  # EMA / SWA copy the model
    assert clone.cam_layer == "norm" and clone.cam_reshape(torch.zeros(1, 4, 64)).shape == (1, 64, 2, 2)


def test_drop_rate_controls_head_dropout():
    assert create_model("tv:resnet18", 2, drop_rate=0.1, img_size=32).has_dropout
    assert not create_model("tv:resnet18", 2, img_size=32).has_dropout
    assert not create_model("tv:efficientnet_b0", 2, img_size=32).has_dropout  # its own Dropout(0.2) is replaced
    assert create_model("timm:resnet18", 2, drop_rate=0.25, img_size=32).has_dropout


@pytest.mark.parametrize("kwargs,match", [
    ({"name": "cnn_basline"}, "did you mean 'cnn_baseline'"),
    ({"name": "timm:resnet1800"}, "unknown timm model"),
    ({"name": "tv:resnet1800"}, "unknown torchvision model"),
    ({"name": "cnn_gap", "in_chans": 2}, "1 or 3"),
    ({"name": "cnn_baseline", "img_size": 8}, "too small"),
    ({"name": "cnn_gap", "class_names": ["a"]}, "class_names"),
    ({"name": "vit_v1", "pretrained": True}, "model.pretrained=false"),
])
def test_bad_input_is_one_line_error(kwargs, match):
    kwargs = {"num_classes": 2, "img_size": 64, **kwargs}
    with pytest.raises(CxrlabError, match=match) as info:
        create_model(**kwargs)
    assert "\n" not in str(info.value)


def test_wrong_image_size_at_forward_names_the_fix():
    model = create_model("cnn_baseline", 2, in_chans=1, img_size=32)
    with pytest.raises(CxrlabError, match="model.img_size"):
        model(torch.zeros(1, 1, 40, 40))


def test_rebuild_from_model_kwargs_gives_same_architecture():
    from cxrlab.models import rebuild_kwargs

    model = create_model("cnn_gap", 2, in_chans=1, img_size=32, drop_rate=0.2, class_names=["x", "y"])
    again = create_model(model.model_name, **rebuild_kwargs(model.model_kwargs))
    again.load_state_dict(model.state_dict())
    assert again.class_names == ["x", "y"] and again.head[2].p == 0.2


@pytest.mark.parametrize("name", list_models())
def test_every_listed_model_at_224_on_meta(name):
    """Every listed model (Swin-L, V2-L included) at 224, 1 channel: shapes only, on the meta device."""
    model = meta_model(name, 15, in_chans=1, img_size=224).eval()
    with torch.no_grad():
        logits, cam = _cam_map(model, torch.empty(2, 1, 224, 224, device="meta"))
    assert logits.shape == (2, 15)
    assert cam.dim() == 4 and cam.shape[0] == 2 and cam.shape[2] == cam.shape[3] >= 7
