import json

import numpy as np
import pandas as pd
import torch

from cxrlab.cli import main
from cxrlab.explain.run import ExplainOptions, explain_run, reinitialise
from cxrlab.models import create_model
from cxrlab.predictions import read_predictions


def test_explain_cli_on_run_split_with_gallery(tiny_run, tmp_path):
    run, index_dir = tiny_run
    out = tmp_path / "exp"
    argv = ["explain", str(run), "--index", str(index_dir), "--split", "test", "--method", "gradcam,eigencam",
            "--max-images", "4", "--bootstrap", "50", "--out", str(out)]
    assert main(argv) == 0
    loc = json.loads((out / "localization.json").read_text())
    assert loc["n_images"] <= 4 and loc["boxes_size"] == 32  # phantom boxes in their own size
    assert loc["boxes_skipped_image_not_in_set"] > 0  # boxes of other images: skipped and counted
    assert set(loc["methods"]) == {"gradcam", "eigencam"}
    assert "sanity" in loc and loc["sanity"]["verdict"]
    html = (out / "gallery.html").read_text()
    assert "with ground-truth boxes" in html and "most uncertain" in html
    assert html.count("<img") >= len(list((out / "overlays").glob("*.png")))
    peaks = json.loads((out / "peaks.json").read_text())
    assert all(0 <= p["peak_xy"][0] < 32 for p in peaks)


def test_explain_json_mode_on_images_folder(tiny_run, tmp_path):
    run, index_dir = tiny_run
    images = index_dir.parent / "images"
    out = tmp_path / "j"
    assert main(["explain", str(run), "--images", str(images), "--max-images", "3", "--json", "--top-k", "2",
                 "--out", str(out)]) == 0
    assert not (out / "gallery.html").exists() and not (out / "overlays").exists()
    peaks = json.loads((out / "peaks.json").read_text())
    assert len(peaks) == 6  # 3 images x top-2 classes
    h, w = peaks[0]["original_hw"]
    assert all(0 <= p["peak_xy_original"][0] <= w and 0 <= p["peak_xy_original"][1] <= h for p in peaks)


def test_explain_errors_are_one_line(tiny_run, tmp_path, capsys):
    run, index_dir = tiny_run
    base = ["explain", str(run), "--index", str(index_dir), "--out", str(tmp_path / "e")]
    assert main(base + ["--method", "rollout"]) == 2
    assert "gradcam" in capsys.readouterr().err
    assert main(base + ["--classes", "Cardiomegaly"]) == 2
    assert "not classes of this model" in capsys.readouterr().err
    assert main(["explain", str(tmp_path / "nope"), "--images", str(tmp_path), "--out", str(tmp_path / "x")]) == 2


def test_reinitialise_redraws_weights_and_leaves_original():
    torch.manual_seed(0)
    model = create_model("cnn_gap", 1, in_chans=1, img_size=32)
    conv = model.features[0]
    with torch.no_grad():  # first conv = identity-ish brightness detector, so maps follow bright spots
        conv.weight.zero_()
        conv.weight[:, 0, 1, 1] = 1.0
        conv.bias.zero_()
    rnd = reinitialise(model)
    assert not torch.equal(rnd.features[0].weight, conv.weight)
    assert conv.weight[0, 0, 1, 1] == 1.0 and conv.weight.abs().sum() == conv.weight.shape[0]


def test_uncertainty_cli_mc_dropout_and_tta(tiny_run, tmp_path):
    run, _ = tiny_run
    out = tmp_path / "u.csv"
    assert main(["uncertainty", str(run), "--split", "val", "--method", "mc_dropout", "--samples", "5",
                 "--out", str(out)]) == 0
    p = read_predictions(out)
    assert p.meta["uncertainty"] == "mc_dropout" and {"std:Nodule", "mi:Nodule"} <= set(p.extra.columns)
    assert p.extra["std:Nodule"].astype(float).max() > 0
    assert main(["uncertainty", str(run), "--split", "val", "--method", "tta", "--samples", "3",
                 "--out", str(tmp_path / "t.csv")]) == 0
    assert read_predictions(tmp_path / "t.csv").meta["samples"] == 3


def test_explain_with_model_object_and_no_boxes(tmp_path):
    torch.manual_seed(0)
    model = create_model("timm:vit_tiny_patch16_224", 2, in_chans=1, img_size=32, class_names=["a", "b"])
    from PIL import Image

    for i in range(2):
        Image.fromarray((np.random.default_rng(i).random((40, 30)) * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
    info = {"classes": ["a", "b"], "task": "multilabel", "model_name": "timm:vit_tiny_patch16_224",
            "preprocess": {"image_size": 32, "in_chans": 1, "mean": [0.5], "std": [0.25], "cache_size": 32}}
    s = explain_run(None, out=tmp_path / "o", model=model, info=info,
                    options=ExplainOptions(images=tmp_path, methods=("rollout", "gradcam"), json_only=True))
    assert s["methods"] == {} and s["n_maps_per_method"] == 2
    assert len(pd.read_csv(tmp_path / "o" / "records.csv")) == 0


def test_ensemble_of_run_dirs_uses_their_val_predictions(tiny_run, tmp_path):
    run, index_dir = tiny_run
    out = tmp_path / "ens.csv"
    assert main(["ensemble", str(run), str(run), "--labels", str(index_dir), "--method", "weighted",
                 "--out", str(out)]) == 0
    p = read_predictions(out)
    assert p.meta["split"] == "test" and p.meta["fitted_on"] == [str(run), str(run)]
    assert np.allclose(p.probs, read_predictions(run / "predictions" / "test.csv").probs, atol=1e-5)


def test_uncertainty_cli_refuses_mc_dropout_without_dropout(tiny_run, tmp_path, capsys):
    from cxrlab.config import load_config
    from cxrlab.train import fit

    run, index_dir = tiny_run
    cfg = load_config(run / "config.yaml", ["model.drop_rate=0.0"])
    threads = torch.get_num_threads()
    plain = fit(cfg, tmp_path / "plain")
    torch.set_num_threads(threads)
    assert main(["uncertainty", str(plain), "--split", "val", "--out", str(tmp_path / "u.csv")]) == 2
    err = capsys.readouterr().err
    assert "no active dropout" in err and "--method tta" in err and "\n" not in err.strip()
