"""End to end: Grad-CAM of a briefly trained model hits the phantom's planted boxes far more often than chance
and than the same model re-initialised (the model-randomisation check in localization.json)."""

import json

import pytest

from cxrlab.cli import main


@pytest.mark.slow
def test_trained_gradcam_hits_planted_boxes(tmp_path):
    from cxrlab.config import load_config
    from cxrlab.data.phantom import make_phantom_index
    from cxrlab.data.splits import patient_level_split, write_split
    from cxrlab.train import fit

    index = make_phantom_index(tmp_path / "ph", n=200, size=64, seed=0, contrast=2.0, finding_scale=1.5)
    write_split(patient_level_split(index, 0.15, 0.15, seed=0), tmp_path / "split.csv", "patient", 0, index)
    cfg = load_config(None, [f"data.index={tmp_path / 'ph' / 'index'}", f"data.split={tmp_path / 'split.csv'}",
                             "data.image_size=64", "data.cache_size=64", "model.name=cnn_baseline",
                             "train.epochs=10", "train.batch_size=16", "train.lr=0.001", "augment.policy=none",
                             "train.device=cpu", "train.threads=1"])
    run = fit(cfg, tmp_path / "run")
    out = tmp_path / "exp"
    assert main(["explain", str(run), "--index", str(tmp_path / "ph" / "index"), "--split", "test", "--json",
                 "--bootstrap", "200", "--out", str(out)]) == 0
    loc = json.loads((out / "localization.json").read_text())
    pointing = loc["methods"]["gradcam"]["all"]["pointing"]
    assert loc["n_scored_pairs"] >= 20
    assert pointing["ci95"][0] > 3 * loc["chance_pointing"]  # well above chance, with its interval
    assert loc["sanity"]["trained_pointing"] >= loc["sanity"]["random_pointing"] + 0.2
    assert loc["sanity"]["verdict"] == "pass"
