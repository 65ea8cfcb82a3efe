"""``cxrlab train`` / ``predict`` / ``data preview`` through ``cxrlab.cli.main``: happy paths and one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from train_helpers import overrides

from cxrlab.cli import main


def _write_cfg(tmp_path: Path, text: str = "name: t\n") -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


def _train(tmp_path: Path, data, out: Path, *extra: str, **kw) -> int:
    return main(["train", "--config", _write_cfg(tmp_path), "--set", *overrides(data, **kw), *extra, "--out", str(out)])


def _error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    err = "\n".join(line for line in lines if not line.startswith("warning: "))  # provenance notes may precede
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_train_predict_preview(tiny_ml, tmp_path: Path, capsys):
    run = tmp_path / "run"
    assert _train(tmp_path, tiny_ml, run, "--set", "train.epochs=1") == 0
    assert len(pd.read_csv(run / "metrics.csv")) == 1
    out = tmp_path / "p.csv"
    assert main(["predict", str(run), "--split", "test", "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == len(pd.read_csv(run / "predictions/test.csv"))
    png = tmp_path / "grid.png"
    assert main(["data", "preview", "--index", tiny_ml["data.index"], "--cache", tiny_ml["data.cache"],
                 "--policy", "lab_b", "--n", "4", "--image-size", "32", "--out", str(png)]) == 0
    assert png.stat().st_size > 0
    capsys.readouterr()
    # bad inputs on an existing run
    assert _train(tmp_path, tiny_ml, run) == 2
    assert "already holds a run; add --resume" in _error(capsys)
    assert _train(tmp_path, tiny_ml, run, "--resume", model__name="resnet34_scratch") == 2
    assert "checkpoint of model cnn_gap" in _error(capsys)
    assert main(["predict", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "not found" in _error(capsys)


def test_unknown_key_and_missing_config(tmp_path: Path, capsys):
    assert main(["train", "--config", _write_cfg(tmp_path), "--set", "train.epoch=2", "--out", "x"]) == 2
    assert "did you mean 'train.epochs'" in _error(capsys)
    assert main(["train", "--config", str(tmp_path / "none.yaml"), "--out", "x"]) == 2
    assert "does not exist" in _error(capsys)
    assert main(["train", "--config", _write_cfg(tmp_path), "--set", "data.index=x", "--out", str(tmp_path / "r")]) == 2
    assert "x does not exist" in _error(capsys)


def test_resume_without_run(tiny_ml, tmp_path: Path, capsys):
    assert _train(tmp_path, tiny_ml, tmp_path / "r", "--resume") == 2
    assert "does not exist; run without --resume" in _error(capsys)


def test_split_without_val(tiny_ml, tmp_path: Path, capsys):
    split = pd.read_csv(tiny_ml["data.split"])
    split["split"] = split["split"].replace("val", "train")
    split.to_csv(tmp_path / "noval.csv", index=False)
    assert _train(tmp_path, tiny_ml, tmp_path / "r", data__split=tmp_path / "noval.csv") == 2
    assert "has no val images" in _error(capsys)


def test_predict_split_the_run_lacks(tiny_ml, tmp_path: Path, capsys):
    split = pd.read_csv(tiny_ml["data.split"])
    split["split"] = split["split"].replace("test", "train")
    split.to_csv(tmp_path / "notest.csv", index=False)
    run = tmp_path / "r"
    assert _train(tmp_path, tiny_ml, run, data__split=tmp_path / "notest.csv", train__epochs=1) == 0
    assert not (run / "predictions/test.csv").exists()
    capsys.readouterr()
    assert main(["predict", str(run), "--split", "test", "--out", str(tmp_path / "p.csv")]) == 2
    assert "has no 'test' images" in _error(capsys)
    assert main(["predict", str(run), "--images", str(tmp_path / "none"), "--out", str(tmp_path / "p.csv")]) == 2
    assert "does not exist" in _error(capsys)


def test_class_without_train_positives(tiny_ml, tmp_path: Path, capsys):
    from cxrlab.data.index import load_index, write_index

    index = load_index(tiny_ml["data.index"])
    train = set(pd.read_csv(tiny_ml["data.split"]).query("split == 'train'")["image_id"])
    index.frame.loc[index.frame["image_id"].isin(train), "Mass"] = 0
    write_index(index, tmp_path / "idx")
    assert _train(tmp_path, tiny_ml, tmp_path / "r", data__index=tmp_path / "idx") == 2
    assert "class 'Mass' has no positive image in the train part" in _error(capsys)


def test_image_size_the_model_cannot_take(tiny_ml, tmp_path: Path, capsys, monkeypatch):
    assert _train(tmp_path, tiny_ml, tmp_path / "r", model__name="vit_v1", data__image_size=20) == 2
    assert "img_size=20" in _error(capsys)  # the factory's own one-line message

    import cxrlab.models

    real = cxrlab.models.create_model

    class Fixed(torch.nn.Module):  # a model that only takes 64 x 64, like a fixed-grid transformer
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            if x.shape[-1] != 64:
                raise RuntimeError(f"Input height ({x.shape[-1]}) doesn't match model (64).")
            return self.inner(x)

    monkeypatch.setattr(cxrlab.models, "create_model", lambda *a, **k: Fixed(real(*a, **k)))
    assert _train(tmp_path, tiny_ml, tmp_path / "r", data__image_size=48) == 2
    err = _error(capsys)
    assert "cannot take data.image_size=48 (Input height (48)" in err and "sizes that work: 64;" in err


def test_nan_loss_stops_with_epoch_and_step(tiny_ml, tmp_path: Path, capsys, monkeypatch):
    import cxrlab.losses

    real = cxrlab.losses.build_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        loss = real(*args, **kwargs)

        def forward(logits, target, weight=None):
            if torch.is_grad_enabled():
                calls["n"] += 1
            value = loss(logits, target, weight)
            return value * float("nan") if calls["n"] > 5 else value  # 3 train steps per epoch: dies in epoch 2

        return forward

    monkeypatch.setattr(cxrlab.losses, "build_loss", lambda *a, **k: _Wrap(poisoned(*a, **k)))
    assert _train(tmp_path, tiny_ml, tmp_path / "r") == 2
    err = _error(capsys)
    assert re.search(r"loss became nan at epoch 2, step \d", err) and "last_state.pt" in err
    metrics = pd.read_csv(tmp_path / "r/metrics.csv")
    assert metrics["epoch"].tolist() == [1]  # epoch 1's checkpoint is intact
    assert main(["predict", str(tmp_path / "r"), "--split", "val", "--out", str(tmp_path / "p.csv")]) == 0


class _Wrap(torch.nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, logits, target, weight=None):
        return self.fn(logits, target, weight)


@pytest.mark.parametrize("argv", [["train", "--config", "x.yaml"], ["predict", "run"]])
def test_required_arguments(argv):
    assert main(argv) == 2
