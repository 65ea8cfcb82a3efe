"""Slow end-to-end checks: the loop learns an easy phantom, and DDP with two CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from train_helpers import make_tiny, overrides

from cxrlab.config import load_config
from cxrlab.predictions import read_predictions
from cxrlab.train import fit


@pytest.mark.slow
def test_learns_easy_phantom(tmp_path: Path):
    data = make_tiny(tmp_path / "ph", 240, contrast=5.0, finding_scale=1.5)
    cfg = load_config(None, overrides(data, model__name="timm:resnet10t", train__epochs=6, train__batch_size=8,
                                      train__lr=3e-3, train__deterministic="false"))
    run = fit(cfg, tmp_path / "run")
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["val_metric"].max() > 0.9, metrics
    assert metrics["train_loss"].iloc[-1] < metrics["train_loss"].iloc[0]


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path: Path):
    data = make_tiny(tmp_path / "ph", 64)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: ddp\n")
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "cxrlab",
           "train", "--config", str(cfg), "--set", *overrides(data, train__batch_size=8), "--out", str(out)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("epoch 2/2") == 1  # only rank 0 reports and writes
    assert len(pd.read_csv(out / "metrics.csv")) == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["world_size"] == 2
    val = read_predictions(out / "predictions/val.csv")
    split = pd.read_csv(data["data.split"])
    assert sorted(val.image_ids) == sorted(split.loc[split["split"] == "val", "image_id"])  # gathered, no dupes


@pytest.mark.slow
@pytest.mark.shared
def test_smoke_recipe_on_nih_sample(shared_data: Path, tmp_path: Path):
    from cxrlab.cli import main

    out = tmp_path / "nih"
    assert main(["data", "index", str(shared_data / "nih-sample"), "--format", "nih", "--out", str(out / "index")]) == 0
    assert main(["data", "split", str(out / "index"), "--out", str(out / "split.csv")]) == 0
    assert main(["data", "cache", str(out / "index"), "--out", str(out / "cache"), "--size", "64"]) == 0
    config = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"
    assert main(["train", "--config", str(config), "--set", f"data.index={out / 'index'}",
                 f"data.split={out / 'split.csv'}", f"data.cache={out / 'cache'}", "data.image_size=64",
                 "train.epochs=1", "train.device=cpu", "--out", str(out / "run")]) == 0
    preds = read_predictions(out / "run/predictions/test.csv")
    assert len(preds.classes) == 15 and len(preds.image_ids) > 0


@pytest.mark.slow
def test_compiled_training_saves_plain_weights(tiny_ml: dict[str, str], tmp_path: Path):
    """train.compile wraps the model in torch.compile; the checkpoint must still load into the plain model."""
    import numpy as np
    from safetensors.torch import load_file

    from cxrlab.predict import predict_run

    cfg = load_config(None, overrides(tiny_ml, train__compile="true", train__epochs=1, train__deterministic="false"))
    run = fit(cfg, tmp_path / "run")
    assert not any("_orig_mod" in k for k in load_file(run / "checkpoints/best.safetensors"))
    saved = read_predictions(run / "predictions/val.csv")
    again = predict_run(run, split="val")
    order = [again.image_ids.index(i) for i in saved.image_ids]
    np.testing.assert_allclose(again.probs[order], saved.probs, atol=1e-4)
