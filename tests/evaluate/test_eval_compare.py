"""compare: paired tests, Holm, best model, seeds aggregated, run directories, outputs."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from cxrlab.cli import main
from cxrlab.evaluate.compare import compare_runs
from cxrlab.evaluate.evaluate import evaluate_predictions
from cxrlab.evaluate.stats.comparison import Comparison, ComparisonTest, ModelFacts, ModelResult
from cxrlab.evaluate.stats.results import Metric
from cxrlab.predictions import Predictions, read_predictions, write_predictions
from cxrlab.utils import write_json


def make_run(root, data, name, model, noise, seed, params=1000, lr=0.001):
    """A run directory as ``cxrlab train`` writes it, with predictions worsened by ``noise``."""
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(f"name: {name}\ndata:\n  index: {data['index']}\nmodel:\n  name: {model}\n"
                                     f"train:\n  seed: {seed}\n  lr: {lr}\n")
    rng = np.random.default_rng(seed)
    rows = [(i, split) for split in ("test", "val") for i in read_predictions(data[split]).image_ids]
    pd.DataFrame(rows, columns=["image_id", "split"]).to_csv(run / "split.csv", index=False)  # the guard reads it
    for split in ("test", "val"):
        src = read_predictions(data[split])
        probs = np.clip(src.probs + rng.normal(0, noise, src.probs.shape), 0.001, 0.999)
        write_predictions(run / "predictions" / f"{split}.csv",
                          Predictions(src.image_ids, probs, src.classes, {"split": split, "model": model}))
    pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [0.7, 0.5, 0.4], "val_loss": [0.7, 0.6, 0.55],
                  "val_metric": [0.6, 0.7, 0.75]}).to_csv(run / "metrics.csv", index=False)
    write_json(run / "manifest.json", {"model": model, "params": params, "wall_time_s": 12.5, "images_per_s": 80.0})
    write_json(run / "split.json", {"method": "patient", "seed": 0, "audit": {"patient_overlap": 0}})
    return run


def test_compare_runs_paired_tests_and_outputs(ml_data, tmp_path):
    runs = [make_run(tmp_path, ml_data, "cnn_s0", "cnn", 0.02, 0),
            make_run(tmp_path, ml_data, "cnn_s1", "cnn", 0.03, 1),
            make_run(tmp_path, ml_data, "vit_s0", "vit", 0.35, 2, params=5000)]
    out = tmp_path / "cmp"
    r = compare_runs(runs, labels=ml_data["index"], out=out, bootstrap=1000)  # bootstrap p >= 2/1001, 18 tests
    saved = json.loads((out / "comparison.json").read_text())
    assert saved["best"] is None  # two runs of one model: nothing separates them, so neither is "best"
    assert set(saved["not_separated"]) == {"cnn_s0", "cnn_s1"}
    pairs = {(t["a"], t["b"]) for t in saved["tests"]}
    assert pairs == {("cnn_s0", "cnn_s1"), ("cnn_s0", "vit_s0"), ("cnn_s1", "vit_s0")}
    for t in saved["tests"]:
        assert {"class", "delta", "p_value", "p_adjusted"} <= set(t)
        assert t["p_adjusted"] >= t["p_value"] - 1e-12
    classes = {t["class"] for t in saved["tests"]}
    assert classes == {*ml_data["classes"], "macro"}
    for t in saved["tests"]:
        if t["class"] == "macro":
            assert t["test"].startswith("paired bootstrap") and t["p_value"] >= t["p_floor"]
            continue
        counts = saved["class_counts"][t["class"]]
        assert t["n_pos_patients"] == counts["n_pos_patients"] and t["n_pos_images"] >= t["n_pos_patients"]
        enough = min(counts["n_pos_patients"], counts["n_neg_patients"]) >= saved["min_patients"]
        # 3 images per patient: clustered DeLong with enough patients, the permutation test below the minimum
        assert t["test"] == ("delong, patient-clustered (Obuchowski)" if enough else
                             "permutation (Bandos), 2000 patient swaps")
        in_macro = t["class"] in r.macro_classes + r.flagged
        assert (t["class"] in saved["flagged"]) == (not enough and in_macro)
    macro = [t for t in saved["tests"] if t["class"] == "macro" and t["metric"] == "auroc" and t["b"] == "vit_s0"]
    assert all(t["delta"] > 0 and t["p_value"] < 0.05 for t in macro)  # much noisier model is worse
    (group,) = r.groups
    assert group.model == "cnn" and len(group.runs) == 2 and group.headline_sd > 0
    assert group.runs == ("cnn_s0", "cnn_s1")
    facts = r.model("vit_s0").facts
    assert facts.params == 5000 and facts.images_per_s == 80.0 and facts.thresholds == "youden on validation"
    assert saved == r.to_dict() and Comparison.from_dict(saved) == r  # the JSON is the typed result, round trip
    with pytest.raises(ValueError, match="field 'models' is missing"):
        Comparison.from_dict({k: v for k, v in saved.items() if k != "models"})
    with pytest.raises(ValueError, match="not a cxrlab.comparison/1 file"):
        Comparison.from_dict({"schema": "cxrlab.metrics/1"})
    csv = pd.read_csv(out / "comparison.csv")
    assert list(csv["name"]) == ["cnn_s0", "cnn_s1", "vit_s0"] and "auroc:Effusion" in csv.columns
    md = (out / "report.md").read_text()
    assert "no best model" in md and "positive patients" in md and "Paired tests" in md
    assert "mean ± sd" in md and "seed paper" in md
    assert 0 < r.models[0].seed_paper.labelwise_accuracy < 1


def test_compare_groups_seeds_only_when_configs_differ_in_the_seed_alone(ml_data, tmp_path):
    runs = [make_run(tmp_path, ml_data, "s0", "cnn", 0.02, 0), make_run(tmp_path, ml_data, "s1", "cnn", 0.03, 1),
            make_run(tmp_path, ml_data, "lr", "cnn", 0.03, 2, lr=0.01),  # same model, another --set: not a seed
            make_run(tmp_path, ml_data, "bare", "cnn", 0.03, 3)]
    (runs[3] / "config.yaml").unlink()  # no config: nothing proves it is a seed of the others
    (runs[3] / "split.csv").unlink()  # another tool's folder of predictions, not a training run
    r = compare_runs(runs, labels=ml_data["index"], bootstrap=0, report=False)
    (group,) = r.groups
    assert group.runs == ("s0", "s1") and group.rule == "resolved config.yaml equal except train.seed"


def test_macro_auroc_agrees_with_evaluate(ml_data, tmp_path):
    runs = [make_run(tmp_path, ml_data, "a", "a", 0.05, 0), make_run(tmp_path, ml_data, "b", "b", 0.1, 1)]
    r = compare_runs(runs, labels=ml_data["index"], bootstrap=50)
    single = evaluate_predictions(runs[0], ml_data["index"], bootstrap=50)
    assert r.models[0].headline.value == pytest.approx(single["macro"]["auroc"])
    assert r.models[0].headline.ci == pytest.approx(tuple(single["macro"]["auroc_ci"]))


def test_evaluate_run_directory_uses_val_and_writes_training_curves(ml_data, tmp_path):
    run = make_run(tmp_path, ml_data, "r", "cnn", 0.05, 0)
    r = evaluate_predictions(run, ml_data["index"], out=tmp_path / "ev", bootstrap=20)
    assert r["thresholds"]["chosen_on"] == "validation" and r["calibration"]["temperature"] is not None
    assert (tmp_path / "ev" / "figures" / "training.png").exists()
    assert "Split audit" in (tmp_path / "ev" / "report.md").read_text()


def test_compare_multiclass_cli(mc_data, tmp_path):
    src = read_predictions(mc_data["test"])
    other = tmp_path / "other.csv"
    write_predictions(other, Predictions(src.image_ids, src.probs[:, ::-1], src.classes, {"split": "test"}))
    assert main(["compare", str(mc_data["test"]), str(other), "--labels", str(mc_data["index"]),
                 "--out", str(tmp_path / "c"), "--bootstrap", "300"]) == 0  # Monte Carlo p >= 2/301
    r = json.loads((tmp_path / "c" / "comparison.json").read_text())
    assert r["headline"] == "macro_f1" and r["best"] == "mc"
    assert {t["metric"] for t in r["tests"] if t["class"] == "macro"} == {"auroc", "f1"}


def test_best_only_when_the_lead_is_significant_over_every_model():
    from cxrlab.evaluate.pairwise import best_model

    rows = [ModelResult(n, ModelFacts(n), Metric(v, None), Metric(v, None), Metric(None, None), {}, {}, None, "")
            for n, v in (("a", 0.80), ("b", 0.85), ("c", 0.70))]

    def test(a, b, delta, significant):
        return ComparisonTest(a, b, "macro", "auroc", "paired bootstrap", delta, 0.01, 0.001, True,
                              significant=significant)

    tests = [test("a", "b", -0.05, True), test("a", "c", 0.10, True), test("b", "c", 0.15, True)]
    assert best_model(rows, tests, "macro_auroc") == ("b", [])
    tests[0] = replace(tests[0], significant=False)  # b's lead over a is not significant after Holm
    assert best_model(rows, tests, "macro_auroc") == (None, ["b", "a"])
