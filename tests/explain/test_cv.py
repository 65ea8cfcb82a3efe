import json

import pytest

from cxrlab.cli import main
from cxrlab.config import load_config
from cxrlab.cv import run_cv
from cxrlab.data.phantom import make_phantom_index
from cxrlab.data.splits import load_split


def _config(tmp_path, n=48):
    make_phantom_index(tmp_path / "ph", n=n, size=32, seed=0)
    return load_config(None, [f"data.index={tmp_path / 'ph' / 'index'}", f"data.split={tmp_path / 'nosplit.csv'}",
                              "data.image_size=32", "data.cache_size=32", "model.name=cnn_gap", "train.epochs=1",
                              "train.batch_size=16", "augment.policy=none", "train.device=cpu", "train.threads=1"])


@pytest.mark.slow
def test_two_fold_cv_smoke_and_resume(tmp_path):
    cfg = _config(tmp_path)
    out = tmp_path / "cv"
    summary = run_cv(cfg, folds=2, out=out)
    split = load_split(out / "split.csv")
    assert sorted(split["fold"].dropna().unique().tolist()) == [0, 1]
    assert (out / "fold0" / "manifest.json").exists() and (out / "fold1" / "predictions" / "val.csv").exists()
    assert len(summary["folds"]) == 2 and "mean" in summary["aggregate"]["macro_auroc"]
    oof = (out / "oof.csv").read_text().splitlines()
    assert len(oof) - 1 == (split["split"] != "test").sum()  # every non-test image predicted once
    assert "ensemble" in summary["test"] and (out / "test_ensemble.csv").exists()
    stamp = (out / "fold0" / "manifest.json").stat().st_mtime
    again = run_cv(cfg, folds=2, out=out)  # finished folds are skipped
    assert (out / "fold0" / "manifest.json").stat().st_mtime == stamp
    assert again["aggregate"] == summary["aggregate"]
    assert json.loads((out / "cv.json").read_text())["folds"][1]["fold"] == 1


def test_cv_cli_rejects_one_fold(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("model:\n  name: cnn_gap\n")
    assert main(["cv", "--config", str(tmp_path / "c.yaml"), "--folds", "1", "--out", str(tmp_path / "o")]) == 2
    assert "not a valid number of folds (2 to 1000)" in capsys.readouterr().err


@pytest.mark.slow  # about 20 s: three folds of four epochs
def test_cv_on_noise_labels_is_not_optimistic(tmp_path):
    """Pure-noise labels: nothing can be learned, so an honest out-of-fold AUROC is near 0.5. Selecting each
    fold's epoch on the fold that is then scored would pick its luckiest epoch (above 0.5); cv selects on an
    inner validation set carved from the training folds, and the outer fold never enters a fold's train or val."""
    import numpy as np
    import pandas as pd

    from cxrlab.data.index import load_index, write_index

    index = make_phantom_index(tmp_path / "ph", n=150, size=32, seed=0)
    rng = np.random.default_rng(0)
    frame = index.frame.copy()
    for c in index.classes:
        frame[c] = (rng.random(len(frame)) < 0.35).astype(float)  # labels unrelated to the images
    index.frame = frame
    write_index(index, tmp_path / "ph" / "index")
    cfg = load_config(None, [f"data.index={tmp_path / 'ph' / 'index'}", f"data.split={tmp_path / 'nosplit.csv'}",
                             "data.image_size=32", "data.cache_size=32", "model.name=cnn_gap", "train.epochs=4",
                             "train.lr=0.01", "train.batch_size=32", "augment.policy=none", "train.device=cpu",
                             "train.threads=1", "data.require_positives=false"])
    out = tmp_path / "cv"
    summary = run_cv(cfg, folds=3, out=out, test_ensemble=False)
    assert abs(summary["oof"]["macro_auroc"] - 0.5) < 0.08, summary["oof"]
    assert summary["oof"]["macro_classes"] == list(load_index(tmp_path / "ph" / "index").classes)
    folds = load_split(out / "split.csv")
    for k in range(3):
        outer = set(folds.loc[folds["fold"] == k, "image_id"].astype(str))
        used = pd.read_csv(out / f"fold{k}" / "split.csv", dtype=str)
        fitted = set(used.loc[used["split"].isin(["train", "val"]), "image_id"])
        assert outer and not outer & fitted  # neither trained nor selected on the fold it is scored on
        assert summary["folds"][k]["n"] == len(outer)
    assert summary["selection"]["on"] == "inner validation set"


def test_cv_cli_rejects_a_bad_inner_val(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("model:\n  name: cnn_gap\n")
    argv = ["cv", "--config", str(tmp_path / "c.yaml"), "--folds", "3", "--inner-val", "1.5",
            "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "--inner-val 1.5" in capsys.readouterr().err
