"""model.freeze (linear probe, gradual unfreezing) and train.log (tensorboard; mlflow guarded)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from safetensors.torch import load_file

from cxrlab.config import load_config
from cxrlab.errors import CxrlabError
from cxrlab.train import fit
from cxrlab.train.freeze import describe


def _cfg(tiny_data, *extra):
    sets = [f"data.{k}={v}" for k, v in tiny_data.items()] + [
        "data.image_size=64", "model.name=cnn_gap", "train.batch_size=16", "train.device=cpu", "augment.policy=none",
        "train.deterministic=true", *extra]
    return load_config(None, sets)


def _split(path, head=("head.", "fc.", "classifier.")):
    w = load_file(path / "checkpoints" / "last.safetensors")
    backbone = {k: v for k, v in w.items() if not k.startswith(head)}
    return backbone, {k: v for k, v in w.items() if k.startswith(head)}


def test_linear_probe_trains_the_head_only_and_gradual_unfreezing_frees_the_backbone(tmp_path, tiny_data):
    one = fit(_cfg(tiny_data, "train.epochs=1", "model.freeze=backbone"), tmp_path / "one")
    two = fit(_cfg(tiny_data, "train.epochs=2", "model.freeze=backbone"), tmp_path / "two")
    gradual = fit(_cfg(tiny_data, "train.epochs=2", "model.freeze=backbone", "model.unfreeze_epoch=2"), tmp_path / "g")
    b1, h1 = _split(one)
    b2, h2 = _split(two)
    bg, _ = _split(gradual)
    assert h1 and b1
    assert all(torch.equal(b1[k], b2[k]) for k in b1)  # frozen backbone (weights and BN statistics) never moved
    assert any(not torch.equal(h1[k], h2[k]) for k in h1)  # the head trained
    assert any(not torch.equal(b1[k], bg[k]) for k in b1)  # unfrozen at epoch 2


def test_freeze_settings_are_validated_and_described():
    with pytest.raises(CxrlabError, match="model.unfreeze_epoch"):
        load_config(None, ["model.unfreeze_epoch=3"])
    with pytest.raises(CxrlabError, match="model.freeze"):
        load_config(None, ["model.freeze=everything"])
    assert describe(load_config(None, ["model.freeze=backbone"])) == "linear probe (head only)"
    assert "gradual" in describe(load_config(None, ["model.freeze=backbone", "model.unfreeze_epoch=2"]))


def test_tensorboard_log_writes_events_beside_the_run(tmp_path, tiny_data):
    pytest.importorskip("tensorboard")  # the track extra (in dev, so CI runs this)
    run = fit(_cfg(tiny_data, "train.epochs=1", "train.log=tensorboard"), tmp_path / "tb")
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert (run / "metrics.csv").exists()


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is not None, reason="mlflow is installed")
def test_mlflow_without_the_package_is_a_one_line_error(tmp_path, tiny_data):
    with pytest.raises(CxrlabError, match=r"pip install 'cxrlab\[track\]'"):
        fit(_cfg(tiny_data, "train.epochs=1", "train.log=mlflow"), tmp_path / "ml")
