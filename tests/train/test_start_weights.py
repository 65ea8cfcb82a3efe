"""A run that starts from a local weights file records which file (path and sha256) in its manifest."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from train_helpers import overrides

from cxrlab.cli import main
from cxrlab.models import create_model
from cxrlab.utils import sha256_file


def test_manifest_records_the_start_weights_file(tiny_ml, tmp_path: Path):
    torch.manual_seed(0)
    weights = tmp_path / "start.pt"
    torch.save(create_model("cnn_gap", 4, in_chans=1, img_size=64).state_dict(), weights)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: t\n")
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--set", *overrides(tiny_ml, train__epochs=1),
                 f"model.weights={weights}", "--out", str(run)]) == 0
    start = json.loads((run / "manifest.json").read_text())["start_weights"]
    assert start == {"file": str(weights.resolve()), "sha256": sha256_file(weights), "model": "cnn_gap"}


def test_manifest_start_weights_is_null_from_scratch(tiny_ml, tmp_path: Path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: t\n")
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--set", *overrides(tiny_ml, train__epochs=1),
                 "--out", str(run)]) == 0
    assert json.loads((run / "manifest.json").read_text())["start_weights"] is None
