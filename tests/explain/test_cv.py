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
