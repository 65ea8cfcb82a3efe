"""train.amp on the CPU: bf16 autocast where the processor has native bf16, refused where it has not, recorded in
the manifest; the validation pass stays float32 so saved predictions equal ``predict``'s."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from train_helpers import overrides

import cxrlab.train.precision as precision
from cxrlab.cli import main
from cxrlab.config import load_config
from cxrlab.errors import CxrlabError
from cxrlab.predictions import read_predictions
from cxrlab.train import fit

CPU = torch.device("cpu")


def test_cpu_flag_is_read_from_cpuinfo(tmp_path: Path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_vnni avx512_bf16 amx_tile\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd sve i8mm bf16\n")
    old = tmp_path / "old"
    old.write_text("flags\t\t: fpu sse2 avx2 avx512f avx512bw\n")
    assert precision.cpu_bf16_flag(x86) == "avx512_bf16" and precision.cpu_bf16_flag(arm) == "bf16"
    assert precision.cpu_bf16_flag(old) is None and precision.cpu_bf16_flag(tmp_path / "missing") is None


@pytest.mark.parametrize("flag", [None, "amx_bf16"])
@pytest.mark.parametrize("auto_bf16", [False, True])
def test_resolution_on_cpu(monkeypatch, flag, auto_bf16):
    monkeypatch.setattr(precision, "cpu_bf16_flag", lambda: flag)
    monkeypatch.setattr(precision, "CPU_AUTO_BF16", auto_bf16)
    assert precision.resolve_precision("off", CPU).used == "fp32"
    assert precision.resolve_precision("auto", CPU).used == ("bf16" if flag and auto_bf16 else "fp32")
    with pytest.raises(CxrlabError, match="needs a GPU"):
        precision.resolve_precision("fp16", CPU)
    if flag:
        p = precision.resolve_precision("bf16", CPU)
        assert p.dtype is torch.bfloat16 and p.record() == {"requested": "bf16", "used": "bf16", "cpu_bf16": flag}
    else:
        with pytest.raises(CxrlabError, match="train.amp=bf16 on the CPU needs native bfloat16.*train.amp=off"):
            precision.resolve_precision("bf16", CPU)


def test_bf16_is_refused_as_one_line_where_unsupported(tiny_ml, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(precision, "cpu_bf16_flag", lambda: None)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  epochs: 1\n")
    args = ["train", "--config", str(cfg), "--out", str(tmp_path / "run"), "--set",
            *overrides(tiny_ml, train__amp="bf16", train__epochs=1)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: train.amp=bf16 on the CPU needs native bfloat16")
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_bf16_run_trains_in_bf16_records_it_and_evaluates_in_fp32(tiny_ml, tmp_path: Path, monkeypatch):
    from cxrlab.predict import predict_run

    monkeypatch.setattr(precision, "cpu_bf16_flag", lambda: "avx512_bf16")  # torch runs bf16 on any CPU
    dtypes: list[torch.dtype] = []  # output dtype of every convolution, training and validation

    def hook(module, args, out):
        if isinstance(module, torch.nn.Conv2d):
            dtypes.append(out.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        bf16 = fit(load_config(None, overrides(tiny_ml, train__amp="bf16", train__epochs=1)), tmp_path / "bf16")
    finally:
        handle.remove()
    assert torch.bfloat16 in dtypes and torch.float32 in dtypes  # bf16 training steps, float32 validation
    manifest = json.loads((bf16 / "manifest.json").read_text())
    assert manifest["precision"] == {"requested": "bf16", "used": "bf16", "cpu_bf16": "avx512_bf16"}
    saved, again = read_predictions(bf16 / "predictions/val.csv"), predict_run(bf16, split="val")
    np.testing.assert_allclose(again.probs, saved.probs, atol=1e-5)
    fp32 = fit(load_config(None, overrides(tiny_ml, train__amp="off", train__epochs=1)), tmp_path / "fp32")
    assert json.loads((fp32 / "manifest.json").read_text())["precision"]["used"] == "fp32"
    losses = [pd.read_csv(r / "metrics.csv")["train_loss"].iloc[0] for r in (bf16, fp32)]
    assert losses[0] != losses[1] and losses[0] == pytest.approx(losses[1], rel=0.05)  # same run, other rounding
