"""``cxrlab select`` end to end with real (tiny) training: two folds, a TTA variant sharing its model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cxrlab.cli import main
from cxrlab.data.phantom import make_phantom_index
from cxrlab.predictions import read_predictions


@pytest.mark.slow  # four 1-epoch cnn_gap trainings on 32 px phantoms plus TTA predictions: ~20 s loaded
def test_select_cli_trains_once_per_recipe_and_predicts_with_tta(tmp_path, capsys):
    make_phantom_index(tmp_path / "ph", n=80, size=32, seed=0)
    common = [f"data.index={tmp_path / 'ph' / 'index'}", f"data.split={tmp_path / 'none.csv'}", "train.epochs=1",
              "data.image_size=32", "data.cache_size=32", "train.device=cpu", "train.threads=1",
              "augment.policy=none", "data.require_positives=false"]
    out = tmp_path / "sel"
    argv = ["select", "--candidate", "a=smoke", "--candidate", "a_tta=smoke,tta=shifts", "--candidate",
            "b=smoke,train.lr=0.0005", "--folds", "2", "--out", str(out), "--set", *common]
    assert main(argv) == 0
    summary = json.loads((out / "select.json").read_text())
    assert sorted(p.name for p in (out / "fold0").iterdir() if p.is_dir()) == ["a", "b"]  # a_tta reuses a
    plain = read_predictions(out / "fold1" / "a" / "predictions" / "test.csv")
    tta = read_predictions(out / "fold1" / "a_tta.test.csv")
    assert tta.image_ids == plain.image_ids and tta.meta["tta"] == "shifts"
    assert not np.allclose(tta.probs, plain.probs) and np.abs(tta.probs - plain.probs).max() < 0.2
    assert len(summary["folds"]) == 2 and set(summary["wins"]) == {"a", "a_tta", "b"}
    assert '"outer"' in capsys.readouterr().out
    assert main(argv) == 0  # a rerun reuses everything
    assert json.loads((out / "select.json").read_text())["outer"] == summary["outer"]
