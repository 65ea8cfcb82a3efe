"""End-to-end training on tiny phantoms: the run directory, exact resume, prediction, reloading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load_file
from train_helpers import overrides

from cxrlab.config import load_config
from cxrlab.errors import CxrlabError
from cxrlab.predictions import read_predictions
from cxrlab.train import fit
from cxrlab.train.checkpoint import load_state

LOSS_COLUMNS = ["epoch", "train_loss", "val_loss", "val_metric", "lr"]


def _fit(data, out: Path, **extra) -> Path:
    return fit(load_config(None, overrides(data, **extra)), out)


def test_run_directory_contents(tiny_ml, tmp_path: Path):
    run = _fit(tiny_ml, tmp_path / "run")
    for rel in ("config.yaml", "split.csv", "metrics.csv", "manifest.json", "checkpoints/best.safetensors",
                "checkpoints/best.json", "checkpoints/last.safetensors", "checkpoints/last_state.pt",
                "predictions/val.csv", "predictions/val.json", "predictions/test.csv"):
        assert (run / rel).exists(), rel
    metrics = pd.read_csv(run / "metrics.csv")
    assert list(metrics.columns) == LOSS_COLUMNS + ["seconds", "images_per_s", "train_metric", "selected_on"]
    assert (metrics["selected_on"] == "val_metric").all()
    assert metrics["epoch"].tolist() == [1, 2] and np.isfinite(metrics["train_loss"]).all()
    info = json.loads((run / "checkpoints/best.json").read_text())
    assert info["model_name"] == "cnn_gap" and info["task"] == "multilabel"
    assert info["classes"] == ["Nodule", "Mass", "Effusion", "Opacity"]
    assert {"image_size", "in_chans", "mean", "std", "cache_size", "policy"} <= set(info["preprocess"])
    preds = read_predictions(run / "predictions/val.csv")
    assert preds.meta["split"] == "val" and preds.meta["checkpoint_sha256"] == info["weights_sha256"]
    assert preds.patient_ids is not None and preds.probs.shape == (len(preds.image_ids), 4)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["data"]["index_sha256"] and manifest["environment"]["torch"] and manifest["seed"] == 0
    assert manifest["val_metric"]["name"] == "macro_auroc" and manifest["val_metric"]["selected_on"] == "val_metric"
    assert info["metric_classes"] == manifest["val_metric"]["classes"]
    # the checkpoint was selected on exactly the number evaluate reports for its validation predictions
    from cxrlab.evaluate.evaluate import evaluate_predictions

    reported = evaluate_predictions(run / "predictions/val.csv", labels=tiny_ml["data.index"], bootstrap=0,
                                    report=False)
    assert reported["macro"]["classes"] == info["metric_classes"]
    assert reported["macro"]["auroc"] == pytest.approx(info["val_metric"], abs=1e-9)
    assert info["val_metric"] == pytest.approx(metrics["val_metric"].max(), abs=1e-6)
    state = load_state(run / "checkpoints/last_state.pt")  # weights_only=True: no pickled objects
    assert state["epoch"] == 2 and "optimizer" in state and "rng" in state


def test_load_run_model_and_predict_match_training(tiny_ml, tmp_path: Path):
    from cxrlab.predict import load_run, predict_run

    run = _fit(tiny_ml, tmp_path / "run", train__epochs=1)
    model, info = load_run(run)
    assert info.model_name == "cnn_gap" and not model.training
    again = predict_run(run, split="val")
    saved = read_predictions(run / "predictions/val.csv")
    assert again.image_ids == saved.image_ids
    np.testing.assert_allclose(again.probs, saved.probs, atol=1e-5)
    files = predict_run(run, images=Path(tiny_ml["data.index"]).parent / "images")
    assert len(files.image_ids) == 96 and files.meta["split"] == "images"


def _interrupt_after(monkeypatch, stop_epoch: int) -> None:
    """Make fit die (like a kill) right after ``stop_epoch`` finished and was checkpointed."""
    import cxrlab.train.fitting as f

    real = f._epoch

    def epoch_then_die(s, epoch):
        out = real(s, epoch)
        if epoch == stop_epoch:
            raise KeyboardInterrupt
        return out

    monkeypatch.setattr(f, "_epoch", epoch_then_die)


@pytest.mark.parametrize("extra", [{}, {"train__ema": 0.9, "augment__policy": "medical", "augment__mixup": 0.4}])
def test_killed_and_resumed_equals_uninterrupted(tiny_ml, tmp_path: Path, monkeypatch, extra):
    full = _fit(tiny_ml, tmp_path / "full", train__epochs=3, **extra)
    cfg = load_config(None, overrides(tiny_ml, train__epochs=3, **extra))
    with monkeypatch.context() as m:
        _interrupt_after(m, 1)
        with pytest.raises(KeyboardInterrupt):
            fit(cfg, tmp_path / "resumed")
    assert pd.read_csv(tmp_path / "resumed/metrics.csv")["epoch"].tolist() == [1]
    fit(cfg, tmp_path / "resumed", resume=True)
    for name in ("best", "last"):
        a = load_file(full / f"checkpoints/{name}.safetensors")
        b = load_file(tmp_path / f"resumed/checkpoints/{name}.safetensors")
        assert a.keys() == b.keys()
        for k in a:
            assert (a[k] == b[k]).all(), f"{name}:{k}"
    ma, mb = pd.read_csv(full / "metrics.csv"), pd.read_csv(tmp_path / "resumed/metrics.csv")
    pd.testing.assert_frame_equal(ma[LOSS_COLUMNS], mb[LOSS_COLUMNS])
    pa = read_predictions(full / "predictions/test.csv")
    pb = read_predictions(tmp_path / "resumed/predictions/test.csv")
    np.testing.assert_array_equal(pa.probs, pb.probs)


def test_multiclass_with_sampler_schedule_and_swa(tiny_mc, tmp_path: Path, monkeypatch):
    monkeypatch.setattr("cxrlab.train.precision.cpu_bf16_flag", lambda: "avx512_bf16")  # bf16 on any CI CPU
    run = _fit(tiny_mc, tmp_path / "mc", loss__name="focal", loss__gamma=2.0, sampler__name="balanced",
               schedule__name="plateau", optim__name="sgd", train__swa_start=1, train__accumulate=2,
               train__clip_grad=1.0, augment__policy="lab_b", augment__cutmix=1.0, train__amp="bf16")
    assert (run / "checkpoints/swa.safetensors").exists()
    preds = read_predictions(run / "predictions/val.csv")
    np.testing.assert_allclose(preds.probs.sum(axis=1), 1.0, atol=1e-4)  # softmax rows
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["val_metric"].between(0, 1).all()  # macro-F1


def test_fp16_on_cpu_is_refused(tiny_ml, tmp_path: Path):
    with pytest.raises(CxrlabError, match="train.amp=fp16 needs a GPU"):
        _fit(tiny_ml, tmp_path / "r", train__amp="fp16")


def test_layerwise_lrs_and_step_schedule(tiny_ml, tmp_path: Path):
    from cxrlab.train.fitting import build_model
    from cxrlab.train.optim import build_optimizer

    cfg = load_config(None, overrides(tiny_ml, optim__layer_lrs="{features: 1e-5}", optim__weight_decay=0.01))
    model = build_model(cfg, ["a", "b"])
    opt = build_optimizer(model, cfg.optim, cfg.train.lr)
    lrs = sorted({g["lr"] for g in opt.param_groups})
    assert lrs == [pytest.approx(1e-5), pytest.approx(3e-3)]
    assert any(g["weight_decay"] == 0 for g in opt.param_groups)  # biases are not decayed
    run = _fit(tiny_ml, tmp_path / "lw", optim__layer_lrs="{features: 1e-5}", schedule__name="step",
               schedule__step_size=1, schedule__factor=0.5)
    assert pd.read_csv(run / "metrics.csv")["lr"].tolist() == pytest.approx([3e-3, 1.5e-3])


def test_same_seed_same_metrics_other_seed_differs(tiny_ml, tmp_path: Path):
    runs = [_fit(tiny_ml, tmp_path / name, train__epochs=1, train__seed=seed, augment__policy="medical")
            for name, seed in (("a", 3), ("b", 3), ("c", 4))]
    a, b, c = (pd.read_csv(r / "metrics.csv")[LOSS_COLUMNS] for r in runs)
    pd.testing.assert_frame_equal(a, b)
    assert a["train_loss"].iloc[0] != c["train_loss"].iloc[0]


def test_per_row_weights_reach_the_loss(tiny_ml, tmp_path: Path, monkeypatch, recwarn):
    import cxrlab.losses
    from cxrlab.data.index import load_index, write_index
    from cxrlab.data.splits import make_split

    index = load_index(tiny_ml["data.index"])
    index.frame["weight"] = 0.5  # e.g. pseudo-labelled rows
    write_index(index, tmp_path / "idx")
    make_split(load_index(tmp_path / "idx"), tmp_path / "split.csv", val=0.2, test=0.2, seed=0)  # the new index's own
    seen = []
    real = cxrlab.losses.build_loss

    def spy(*args, **kwargs):
        loss = real(*args, **kwargs)
        original = loss.forward

        def forward(logits, target, weight=None):
            seen.append(weight)
            return original(logits, target, weight)

        loss.forward = forward
        return loss

    monkeypatch.setattr(cxrlab.losses, "build_loss", spy)
    _fit(tiny_ml, tmp_path / "r", train__epochs=1, data__index=tmp_path / "idx", data__split=tmp_path / "split.csv")
    train_weights = [w for w in seen if w is not None]
    assert train_weights and all(float(w.min()) == 0.5 for w in train_weights)
    assert not [w for w in recwarn if "made from another index" in str(w.message)]


def test_kfold_split_trains_the_chosen_fold(tiny_ml, tmp_path: Path):
    from cxrlab.data.index import load_index
    from cxrlab.data.splits import load_split, make_split

    make_split(load_index(tiny_ml["data.index"]), tmp_path / "folds.csv", folds=3, test=0.15, seed=0)
    run = _fit(tiny_ml, tmp_path / "r", train__epochs=1, data__split=tmp_path / "folds.csv", data__fold=1)
    used = pd.read_csv(run / "split.csv")
    folds = load_split(tmp_path / "folds.csv")
    val_ids = set(folds.loc[folds["fold"] == 1, "image_id"])
    assert set(used.loc[used["split"] == "val", "image_id"]) == val_ids
    assert set(read_predictions(run / "predictions/val.csv").image_ids) == val_ids


def test_undefined_val_metric_selects_on_val_loss_for_the_whole_run(tiny_ml, tmp_path: Path):
    """A val set where no class has both label values: the macro AUROC is undefined (NaN, never a stand-in), and
    every epoch is selected on val loss, stated in metrics.csv and the manifest (no per-epoch mix of scales)."""
    from cxrlab.data.index import load_index, write_index

    index = load_index(tiny_ml["data.index"])
    split = pd.read_csv(tiny_ml["data.split"], dtype=str)
    val = index.frame["image_id"].astype(str).isin(split.loc[split["split"] == "val", "image_id"])
    index.frame.loc[val, list(index.classes)] = 0.0
    write_index(index, tmp_path / "idx")
    with pytest.warns(UserWarning, match="made from another index"):  # the same split on purpose: its val rows
        run = _fit(tiny_ml, tmp_path / "r", train__epochs=3, data__index=tmp_path / "idx")
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["val_metric"].isna().all() and (metrics["selected_on"] == "val_loss").all()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["val_metric"]["selected_on"] == "val_loss" and manifest["val_metric"]["classes"] == []
    assert manifest["best_epoch"] == int(metrics.loc[metrics["val_loss"].idxmin(), "epoch"])
