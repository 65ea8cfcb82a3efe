"""cxrlab export: contract, parity, OOD sidecar, one-line errors; every tested factory model exports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cxrlab.cli import main
from cxrlab.deploy.export import parity, to_onnx
from cxrlab.deploy.onnx_engine import OnnxEngine
from cxrlab.errors import CxrlabError
from cxrlab.models import create_model


def test_export_writes_model_contract_and_gate(exported):
    out, contract = exported
    on_disk = json.loads(out.with_suffix(".json").read_text())
    assert on_disk["schema"] == "cxrlab.deploy/1"
    assert on_disk["parity"]["passed"] and on_disk["parity"]["source"] == "validation"
    assert on_disk["parity"]["max_abs_prob_diff"] <= 1e-4
    run = on_disk["run"]
    assert run["task"] == "multilabel" and run["classes"] and run["preprocess"]["image_size"] == 32
    assert set(on_disk["operating"]["thresholds"]) == set(run["classes"])
    assert on_disk["ood"]["file"] == "model.ood.safetensors" and out.with_suffix(".ood.safetensors").exists()
    meta = OnnxEngine(out).metadata  # the contract travels inside the ONNX file too
    assert meta["run"]["classes"] == run["classes"] and meta["parity"]["passed"]


def test_dynamic_batch_axis(exported):
    out, contract = exported
    engine = OnnxEngine(out)
    c, h, w = contract["inputs"]["image"][1:]
    for b in (1, 5):
        logits, feats = engine.run(np.zeros((b, c, h, w), np.float32))
        assert logits.shape == (b, len(contract["run"]["classes"])) and feats.shape[0] == b


def test_export_cli_prints_parity(tiny_run, tmp_path, capsys):
    assert main(["export", str(tiny_run[0]), "--out", str(tmp_path / "m.onnx"), "--opset", "18"]) == 0
    out = capsys.readouterr().out
    assert "parity: max |prob diff|" in out and "validation images" in out
    assert json.loads((tmp_path / "m.json").read_text())["opset"] == 18


def test_export_without_the_runs_images_uses_a_synthetic_batch(tiny_run, tmp_path):
    from cxrlab.deploy.export import export_run

    run = tmp_path / "run"
    shutil.copytree(tiny_run[0], run)
    (run / "split.csv").unlink()  # as on a machine that has the checkpoint but not the data
    contract = export_run(run, tmp_path / "m.onnx")
    assert contract["parity"]["source"].startswith("synthetic") and contract["parity"]["passed"]
    assert contract["ood"] is None and contract["operating"] is None


def test_export_errors_are_one_line(tiny_run, tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "m.onnx")]) == 2
    assert main(["export", str(tiny_run[0]), "--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert ".onnx" in err[1]


class _Unexportable(nn.Module):
    def forward_features(self, x):
        return torch.linalg.svdvals(x[:, 0])

    def forward_head(self, f):
        return f[:, :2]

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def test_unexportable_operator_is_named(tmp_path, capfd):
    with pytest.raises(CxrlabError, match="aten::linalg_svdvals"):
        to_onnx(_Unexportable(), torch.randn(2, 1, 8, 8), tmp_path / "bad.onnx")
    captured = capfd.readouterr()
    assert "Torch IR graph" not in captured.out + captured.err  # the exporter's graph dump is silenced


def test_parity_failure_is_an_error(tiny_run, tmp_path, monkeypatch):
    import cxrlab.deploy.export as E

    monkeypatch.setattr(E, "parity", lambda *a, **k: 0.5)
    with pytest.raises(CxrlabError, match="parity check failed"):
        E.export_run(tiny_run[0], tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "m.json").exists()


# (factory name, input size, kwargs); the small ones run by default, big ones are slow tests.
FAST = [("cnn_gap", 32, {}), ("cnn_baseline", 32, {}), ("vit_v1", 32, {}), ("timm:resnet18", 64, {})]
SLOW = [("resnet34_scratch", 64, {}), ("vit_v2", 64, {}), ("vit_multiscale", 224, {}),
        ("timm:resnet50", 64, {}), ("timm:densenet121", 64, {}), ("timm:efficientnet_b0", 64, {}),
        ("timm:convnext_tiny", 64, {}), ("timm:vit_base_patch16_224", 224, {}),
        ("timm:swin_tiny_patch4_window7_224", 224, {}), ("tv:resnet18", 64, {}), ("tv:efficientnet_b0", 64, {})]


def _check_model(name: str, size: int, kwargs: dict, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model(name, 3, in_chans=1, img_size=size, **kwargs).eval()
    x = torch.randn(3, 1, size, size)
    path = to_onnx(model, x[:2], tmp_path / "m.onnx")  # traced at batch 2, checked at batch 3
    assert parity(path, model, x, "multilabel") <= 1e-4


@pytest.mark.parametrize(("name", "size", "kwargs"), FAST, ids=[m[0] for m in FAST])
def test_model_exports_with_parity(name, size, kwargs, tmp_path):
    _check_model(name, size, kwargs, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "size", "kwargs"), SLOW, ids=[m[0] for m in SLOW])
def test_big_model_exports_with_parity(name, size, kwargs, tmp_path):
    _check_model(name, size, kwargs, tmp_path)


def test_export_never_writes_over_a_checkpoint_json(tiny_run, capsys):
    ckpt = tiny_run[0] / "checkpoints"
    before = (ckpt / "best.json").read_bytes()
    assert main(["export", str(tiny_run[0]), "--out", str(ckpt / "best.onnx")]) == 2
    assert "best.json" in capsys.readouterr().err and (ckpt / "best.json").read_bytes() == before
    assert not (ckpt / "best.onnx").exists()
