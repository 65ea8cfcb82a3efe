"""Weights: local safetensors/state-dict loading, architecture checks, sha256 pins, and the offline error."""

from __future__ import annotations

import time

import pytest
import torch
from safetensors.torch import save_file

from cxrlab.errors import CxrlabError
from cxrlab.models import create_model
from cxrlab.models import weights as W
from cxrlab.utils import sha256_file


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Offline mode with empty hub caches, so no test can touch the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(W, "timm_weights_cached", lambda name: False)  # a warm HF cache must not hide the path


def _save(model, path):
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_round_trip_through_safetensors_file_and_folder(tmp_path):
    torch.manual_seed(0)
    src = create_model("vit_v1", 3, in_chans=1, img_size=64).eval()
    _save(src, tmp_path / "model.safetensors")
    x = torch.randn(2, 1, 64, 64)
    for where in (tmp_path / "model.safetensors", tmp_path):
        loaded = create_model("vit_v1", 3, in_chans=1, img_size=64, weights=str(where)).eval()
        with torch.no_grad():
            assert torch.allclose(src(x), loaded(x))
        assert loaded.fresh_keys == []


def test_torch_state_dict_with_ddp_prefix_and_pinned_sha(tmp_path):
    src = create_model("cnn_gap", 2, img_size=32).eval()
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in src.state_dict().items()}}, path)
    loaded = create_model("cnn_gap", 2, img_size=32, weights=str(path), weights_sha256=sha256_file(path)).eval()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(src(x), loaded(x))


def test_sha256_mismatch_is_an_error(tmp_path):
    path = _save(create_model("cnn_gap", 2, img_size=32), tmp_path / "w.safetensors")
    with pytest.raises(CxrlabError, match="does not match the pinned model.weights_sha256"):
        create_model("cnn_gap", 2, img_size=32, weights=str(path), weights_sha256="0" * 64)


def test_mismatched_architecture_names_keys(tmp_path):
    path = _save(create_model("cnn_gap", 2, img_size=32), tmp_path / "w.safetensors")
    with pytest.raises(CxrlabError, match=r"does not fit vit_v1: .* keys \(") as info:
        create_model("vit_v1", 2, img_size=64, weights=str(path))
    assert "\n" not in str(info.value)


def test_other_class_count_keeps_a_fresh_head_and_adapts_first_conv(tmp_path):
    torch.manual_seed(0)
    src = create_model("tv:resnet18", 1000, in_chans=3, img_size=32)
    # A bare torchvision state dict (hub layout: conv1.weight ... fc.weight), RGB, 1000 classes.
    bare = {k.removeprefix("model."): v for k, v in src.state_dict().items() if not k.startswith("head.")}
    bare["fc.weight"], bare["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    path = tmp_path / "resnet18.pth"
    torch.save(bare, path)
    model = create_model("tv:resnet18", 4, in_chans=1, img_size=32, weights=str(path))
    expected = src.model.conv1.weight.sum(dim=1, keepdim=True)
    assert torch.allclose(model.model.conv1.weight, expected)
    assert set(model.fresh_keys) == {"head.1.weight", "head.1.bias"}


def test_timm_weights_with_other_head_and_grid(tmp_path):
    src = create_model("timm:vit_tiny_patch16_224", 10, in_chans=3, img_size=64)
    path = _save(src, tmp_path / "vit.safetensors")
    model = create_model("timm:vit_tiny_patch16_224", 2, in_chans=1, img_size=32, weights=str(path))
    assert model.pos_embed.shape == (1, 1 + 4, 192)  # resampled from the 4x4 grid to 2x2
    assert set(model.fresh_keys) == {"head.weight", "head.bias"}


def test_missing_file_and_unsafe_file(tmp_path):
    with pytest.raises(CxrlabError, match="does not exist"):
        create_model("cnn_gap", 2, img_size=32, weights=str(tmp_path / "nope.safetensors"))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CxrlabError, match="cannot read it safely"):
        create_model("cnn_gap", 2, img_size=32, weights=str(bad))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CxrlabError, match="no \\*.safetensors"):
        create_model("cnn_gap", 2, img_size=32, weights=str(tmp_path / "empty"))


@pytest.mark.parametrize("name", ["timm:resnet18", "tv:resnet18", "resnet34_scratch", "vit_multiscale"])
def test_offline_pretrained_without_file_fails_fast(offline, name):
    start = time.perf_counter()
    with pytest.raises(CxrlabError, match="model.weights=PATH") as info:
        create_model(name, 2, img_size=32, pretrained=True)
    assert "model.pretrained=false" in str(info.value) and "\n" not in str(info.value)
    assert time.perf_counter() - start < 5


def test_sha_without_weights_is_an_error():
    with pytest.raises(CxrlabError, match="weights_sha256"):
        create_model("cnn_gap", 2, img_size=32, weights_sha256="ab" * 32)


def test_probe_uses_a_local_socket_only(monkeypatch):
    """The hub probe: a listening local port is "online", a closed one "offline" (no real network)."""
    import socket

    for var in W.OFFLINE_ENV:
        monkeypatch.delenv(var, raising=False)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        monkeypatch.setitem(W.HUB_HOSTS, "timm", ("127.0.0.1", port))
        assert W.is_offline("timm", timeout=1.0) is False
    finally:
        server.close()
    monkeypatch.setitem(W.HUB_HOSTS, "timm", ("127.0.0.1", port))  # now closed: refused at once
    start = time.perf_counter()
    assert W.is_offline("timm", timeout=1.0) is True
    assert time.perf_counter() - start < 2
