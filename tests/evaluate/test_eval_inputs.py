"""Other tools' CSVs, run directories, bad input (one-line errors through the CLI) and test-split refusal."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cxrlab.cli import main
from cxrlab.evaluate.evaluate import evaluate_predictions
from cxrlab.predictions import Predictions, write_predictions

NIH_HEADER = "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position\n"


def _nih_files(tmp_path, n=60):
    rng = np.random.default_rng(0)
    findings = ["Atelectasis", "Effusion", "No Finding"]
    rows, probs = [], []
    for i in range(n):
        label = findings[i % 3] if i % 5 else "Atelectasis|Effusion"
        rows.append(f"{i:08d}_000.png,{label},0,{i // 2},50,M,PA\n")
        probs.append([0.8 if "Atelectasis" in label else rng.random() * 0.7, rng.random()])
    (tmp_path / "Data_Entry_2017.csv").write_text(NIH_HEADER + "".join(rows))
    frame = pd.DataFrame({"Image Index": [r.split(",")[0] for r in rows]})
    frame[["prob_Atelectasis", "prob_Effusion"]] = np.array(probs)
    frame.to_csv(tmp_path / "theirs.csv", index=False)
    return tmp_path / "theirs.csv", tmp_path / "Data_Entry_2017.csv"


def test_other_tools_csv_with_prefix_and_nih_ids(tmp_path):
    preds, labels = _nih_files(tmp_path)
    r = evaluate_predictions(preds, labels, out=tmp_path / "out", bootstrap=50, report=False)
    assert r["classes"] == ["Atelectasis", "Effusion"]  # matched by name after the prob_ prefix
    assert r["counts"]["scored"] == 60 and r["counts"]["patients"] == 30
    assert any("not predicted" in n and "Cardiomegaly" in n for n in r["notes"])
    assert r["per_class"]["Atelectasis"]["auroc"] == pytest.approx(1.0)
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    for key in ("schema", "task", "classes", "counts", "per_class", "macro", "micro", "weighted", "thresholds",
                "calibration", "seed_paper", "bootstrap", "definitions", "references"):
        assert key in saved
    for key in ("auroc", "auroc_ci", "auprc", "auprc_ci", "prevalence", "n_positive", "n_negative"):
        assert key in saved["per_class"]["Effusion"]
    # 30 patients: both classes have fewer positive patients than the minimum, so they are flagged (named, never
    # silently), get no interval, and the macro without them is undefined; the macro itself is the one definition
    assert saved["macro"]["classes"] == ["Atelectasis", "Effusion"]
    assert saved["macro"]["flagged"] == ["Atelectasis", "Effusion"]
    assert saved["macro"]["powered"]["classes"] == [] and saved["macro"]["powered"]["auroc"] is None
    assert all(saved["per_class"][c]["auroc_ci"] is None for c in ("Atelectasis", "Effusion"))
    assert saved["per_class"]["Effusion"]["auroc_ci"] is None and not saved["per_class"]["Effusion"]["enough_patients"]
    assert saved["bootstrap"] == {"replicates": 50, "seed": 0, "unit": "patient", "interval": "percentile",
                                  "level": 0.95, "stratified": "by each patient's rarest positive class"}


def test_multiclass_schema(mc_data, tmp_path):
    r = evaluate_predictions(mc_data["test"], mc_data["index"], out=tmp_path / "o", bootstrap=20, report=False)
    assert {"f1", "f1_ci"} <= set(r["per_class"]["virus"]) and {"f1", "f1_ci"} <= set(r["macro"])


def _cli_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    return err[0]


def _write(path, ids, probs, classes):
    frame = pd.DataFrame({"image_id": ids})
    frame[classes] = probs
    frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("case, expected", [
    ("duplicate", "repeats row"),
    ("nan", "not a number"),
    ("logits", "looks like logits"),
    ("no_class", "no probability columns found"),
    ("no_ids", "none of the"),
])
def test_bad_predictions_give_one_line(ml_data, tmp_path, capsys, case, expected):
    ids = ml_data["ids"][:10]
    probs = ml_data["p"][:10, :2].copy()
    classes = ["Atelectasis", "Effusion"]
    if case == "duplicate":
        ids = [ids[0], *ids[:9]]
    elif case == "nan":
        probs[3, 1] = np.nan
    elif case == "logits":
        probs = np.log(probs / (1 - probs))
    elif case == "no_class":
        classes = ["Cat", "Dog"]
    elif case == "no_ids":
        ids = [f"other{i}.png" for i in range(10)]
    path = _write(tmp_path / "p.csv", ids, probs, classes)
    msg = _cli_error(capsys, ["evaluate", path, "--labels", str(ml_data["index"]), "--out", str(tmp_path / "o")])
    assert expected in msg


def test_logits_flag_applies_sigmoid(ml_data, tmp_path):
    p = ml_data["p"][:30]
    path = _write(tmp_path / "l.csv", ml_data["ids"][:30], np.log(p / (1 - p)), ml_data["classes"])
    with_logits = evaluate_predictions(path, ml_data["index"], bootstrap=0, logits=True)
    plain = evaluate_predictions(_write(tmp_path / "q.csv", ml_data["ids"][:30], p, ml_data["classes"]),
                                 ml_data["index"], bootstrap=0)
    assert with_logits["macro"]["auroc"] == pytest.approx(plain["macro"]["auroc"])
    assert with_logits["calibration"]["brier_mean"] == pytest.approx(plain["calibration"]["brier_mean"], abs=1e-6)


def test_unlabelled_ids_are_counted_and_single_value_class_undefined(ml_data, tmp_path, capsys):
    ids = ml_data["ids"][:20] + ["stranger.png"]
    probs = np.vstack([ml_data["p"][:20], ml_data["p"][:1]])
    probs = np.column_stack([probs, np.full(21, 0.3)])
    index = ml_data["index"]
    frame = pd.read_csv(index / "index.csv")
    frame["Hernia"] = 0
    meta = json.loads((index / "index.json").read_text())
    meta["classes"].append("Hernia")
    frame.to_csv(index / "index.csv", index=False)
    (index / "index.json").write_text(json.dumps(meta))
    path = _write(tmp_path / "p.csv", ids, probs, [*ml_data["classes"], "Hernia"])
    assert main(["evaluate", path, "--labels", str(index), "--out", str(tmp_path / "o"), "--bootstrap", "10",
                 "--no-report"]) == 0
    err = capsys.readouterr().err
    assert "scored 20 of 21" in err and "1 of 21 predicted images have no label" in err
    r = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert r["per_class"]["Hernia"]["auroc"] is None and r["macro"]["undefined"] == ["Hernia"]
    assert "Hernia" not in r["macro"]["classes"]


def test_fitting_on_test_split_is_refused_then_overridable(ml_data, tmp_path, capsys):
    test_as_val = tmp_path / "val_really_test.csv"
    write_predictions(test_as_val, Predictions(ml_data["ids"][:50], ml_data["p"][:50], ml_data["classes"],
                                               {"split": "test"}))
    argv = ["evaluate", str(ml_data["test"]), "--labels", str(ml_data["index"]), "--out", str(tmp_path / "o"),
            "--val-predictions", str(test_as_val), "--bootstrap", "0", "--no-report"]
    msg = _cli_error(capsys, argv)
    assert "refusing to fit" in msg and "split=test" in msg and "--allow-test-fitting" in msg
    assert main([*argv, "--allow-test-fitting"]) == 0
    assert "WARNING: fitting" in capsys.readouterr().err
    msg = _cli_error(capsys, ["calibrate", str(ml_data["test"]), str(ml_data["test"]), "--labels",
                              str(ml_data["index"]), "--out", str(tmp_path / "c.csv")])
    assert "refusing to fit temperatures" in msg
    # calibrate has no --val-predictions option: its hint names its own first argument
    assert "--val-predictions" not in msg and "the first file given to calibrate" in msg


def test_calibrate_writes_predictions(ml_data, tmp_path):
    assert main(["calibrate", str(ml_data["val"]), str(ml_data["test"]), "--labels", str(ml_data["index"]),
                 "--out", str(tmp_path / "cal.csv")]) == 0
    meta = json.loads((tmp_path / "cal.json").read_text())
    assert set(meta["temperature"]) == set(ml_data["classes"]) and meta["split"] == "test"
    cal = pd.read_csv(tmp_path / "cal.csv")
    values = cal[ml_data["classes"]].to_numpy()
    assert len(cal) == ml_data["cut"] and ((values >= 0) & (values <= 1)).all()


def test_run_directory_without_predictions(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    msg = _cli_error(capsys, ["evaluate", str(tmp_path / "run"), "--labels", "x", "--out", str(tmp_path / "o")])
    assert "no predictions/test.csv" in msg


@pytest.mark.shared
def test_scores_against_nih_data_entry(shared_data, tmp_path):
    labels = shared_data / "nih-sample" / "Data_Entry_2017_v2020.csv"
    names = sorted(p.name for p in (shared_data / "nih-sample" / "images").glob("*.png"))[:120]
    frame = pd.read_csv(labels, usecols=["Image Index", "Finding Labels"]).set_index("Image Index").loc[names]
    rng = np.random.default_rng(0)
    out = pd.DataFrame({"Image Index": names})
    for c in ("Pneumonia", "Infiltration", "Atelectasis"):
        hit = frame["Finding Labels"].str.contains(c).to_numpy()
        out[f"prob_{c}"] = np.clip(0.3 + 0.4 * hit + 0.3 * rng.random(len(names)), 0, 1)
    out.to_csv(tmp_path / "theirs.csv", index=False)
    r = evaluate_predictions(tmp_path / "theirs.csv", labels, bootstrap=50)
    assert r["counts"]["scored"] == 120 and r["classes"] == ["Atelectasis", "Infiltration", "Pneumonia"]
    assert r["macro"]["auroc"] > 0.8 and r["counts"]["patients"] < 120


def test_sidecar_classes_without_overlap_and_all_classes_undefined(ml_data, tmp_path, capsys):
    ids = ml_data["ids"][:10]
    write_predictions(tmp_path / "cats.csv", Predictions(ids, ml_data["p"][:10, :2], ["Cat", "Dog"], {}))
    msg = _cli_error(capsys, ["evaluate", str(tmp_path / "cats.csv"), "--labels", str(ml_data["index"]),
                              "--out", str(tmp_path / "o")])
    assert "no class in common" in msg and "Cat" in msg
    negatives = [i for i, row in zip(ml_data["ids"], ml_data["y"]) if row[0] == 0][:5]
    path = _write(tmp_path / "few.csv", negatives, np.full((5, 1), 0.2), ["Atelectasis"])
    msg = _cli_error(capsys, ["evaluate", path, "--labels", str(ml_data["index"]), "--out", str(tmp_path / "o")])
    assert "undefined" in msg and "score more images" in msg


@pytest.mark.shared
def test_scores_against_a_multiclass_labels_csv(shared_data, tmp_path):
    labels = shared_data / "pneumonia4" / "labels.csv"
    lab = pd.read_csv(labels)
    classes = ["normal", "bacteria", "virus", "COVID-19"]
    y = lab[classes].to_numpy(float)
    p = np.exp(2 * y + np.random.default_rng(0).normal(size=y.shape))
    out = pd.DataFrame({"filename": lab["filename"]})
    out[[f"prob_{c}" for c in classes]] = p / p.sum(axis=1, keepdims=True)
    out.to_csv(tmp_path / "theirs.csv", index=False)
    r = evaluate_predictions(tmp_path / "theirs.csv", labels, bootstrap=20)
    assert r["task"] == "multiclass" and r["counts"]["scored"] == len(lab)
    assert r["counts"]["patients"] == lab["patient_id"].nunique() and 0.3 < r["macro"]["f1"] < 1


def test_ids_given_as_paths_match_by_file_name(ml_data, tmp_path):
    ids = [f"images/{i}" for i in ml_data["ids"][:30]]
    path = _write(tmp_path / "paths.csv", ids, ml_data["p"][:30], ml_data["classes"])
    r = evaluate_predictions(path, ml_data["index"], bootstrap=0)
    assert r["counts"]["scored"] == 30 and any("file name" in n for n in r["notes"])


def test_bad_options_fail_before_reading(ml_data, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    base = ["evaluate", str(ml_data["test"]), "--labels", str(ml_data["index"])]
    assert "is a file" in _cli_error(capsys, [*base, "--out", str(tmp_path / "file")])
    assert "threshold method" in _cli_error(capsys, [*base, "--out", str(tmp_path / "o"), "--threshold-method", "x"])
    msg = _cli_error(capsys, [*base, "--out", str(tmp_path / "o"), "--bootstrap", "-1"])
    assert "not a valid number of bootstrap replicates (0 to 100000)" in msg


def test_exclude_of_an_unknown_class_is_a_one_line_error(ml_data, tmp_path, capsys):
    # `--exclude "Nodlue"` used to be ignored silently (the macro average then kept the class); the default
    # "No Finding" stays exempt for datasets without it
    argv = ["evaluate", str(ml_data["test"]), "--labels", str(ml_data["index"]), "--out", str(tmp_path / "o"),
            "--bootstrap", "0", "--no-report"]
    msg = _cli_error(capsys, [*argv, "--exclude", "Nodlue"])
    assert "--exclude 'Nodlue': not a scored class" in msg and ml_data["classes"][0] in msg
    assert main([*argv, "--exclude", ml_data["classes"][0]]) == 0
