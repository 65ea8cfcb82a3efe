"""evaluate --by: per-group metrics equal scikit-learn's on each group; paired gaps; underdiagnosis; errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from cxrlab.data.index import load_index, write_index
from cxrlab.errors import CxrlabError
from cxrlab.evaluate.calibration import ece
from cxrlab.evaluate.evaluate import evaluate_predictions
from cxrlab.evaluate.subgroups import age_band_labels, parse_age_bands

from .conftest import make_dataset


def _with_groups(data: dict) -> dict:
    """Add sex and age (per patient) and view (per image) to the dataset's index."""
    index = load_index(data["index"])
    f = index.frame
    patient = f["patient_id"].str[1:].astype(int)
    f["sex"] = np.where(patient % 2 == 0, "F", "M")
    f["age"] = (25 + (patient * 7) % 70).astype(int)
    f["view"] = np.where(np.arange(len(f)) % 3 == 0, "AP", "PA")
    f.loc[f.index[:3], "age"] = np.nan  # one patient without an age
    write_index(index, data["index"])
    return data


@pytest.fixture
def grouped(tmp_path):
    return _with_groups(make_dataset(tmp_path / "ml", "multilabel", n=480))


def test_per_group_metrics_match_sklearn(grouped, tmp_path):
    r = evaluate_predictions(grouped["test"], labels=grouped["index"], out=tmp_path / "ev",
                             val_predictions=grouped["val"], bootstrap=100, by="sex,age,view",
                             age_bands="40,60", min_group=10)
    index = load_index(grouped["index"]).frame.set_index("image_id")
    cut, ids, y, p, classes = grouped["cut"], grouped["ids"], grouped["y"], grouped["p"], grouped["classes"]
    test = index.loc[ids[:cut]]
    bands = age_band_labels(test["age"], [40, 60]).to_numpy()
    for column, values in (("sex", test["sex"].to_numpy()), ("view", test["view"].to_numpy()), ("age", bands)):
        block = r["subgroups"][column]
        for group in set(values):
            rows = values == group
            g = block[group]
            assert g["n_images"] == rows.sum()
            assert g["n_patients"] == test["patient_id"][rows].nunique()
            if g.get("too_small"):  # the one patient without an age: 3 images < --min-group
                assert group == "missing" and "macro" not in g
                continue
            for i, c in enumerate(classes):
                want = roc_auc_score(y[:cut][rows, i], p[:cut][rows, i])
                assert g["per_class"][c]["auroc"] == pytest.approx(want, abs=1e-9)
                assert g["calibration"]["ece"][c] == pytest.approx(ece(y[:cut][rows, i], p[:cut][rows, i]))
                lo, hi = g["per_class"][c]["auroc_ci"]
                assert lo <= want <= hi
            macro = np.mean([roc_auc_score(y[:cut][rows, i], p[:cut][rows, i]) for i in range(3)])  # No Finding out
            assert g["macro"]["auroc"] == pytest.approx(macro)
            # underdiagnosis: images with a finding (No Finding = 0) predicted No Finding at the val threshold
            thr = r["thresholds"]["per_class"]["No Finding"]["threshold"]
            has = y[:cut][rows, 3] == 0
            assert g["underdiagnosis"] == pytest.approx(np.mean(p[:cut][rows, 3][has] >= thr))
    assert r["subgroups"]["age"]["settings"]["groups"] == ["<40", "40-59", ">=60", "missing"]  # in age order
    gap = r["subgroups"]["sex"]["gaps"]["F - M"]["macro_auroc"]
    assert gap["difference"] == pytest.approx(r["subgroups"]["sex"]["F"]["macro"]["auroc"]
                                              - r["subgroups"]["sex"]["M"]["macro"]["auroc"])
    assert gap["ci"][0] <= gap["difference"] <= gap["ci"][1]
    worst = r["subgroups"]["view"]["worst_group"]
    assert worst["group"] == min(("AP", "PA"), key=lambda v: r["subgroups"]["view"][v]["macro"]["auroc"])
    md = (tmp_path / "ev" / "report.md").read_text()
    assert "Subgroups: sex" in md and "underdiagnosis" in md.lower()
    assert (tmp_path / "ev" / "figures" / "subgroups_sex.png").exists()


def test_small_groups_are_reported_not_scored(grouped):
    r = evaluate_predictions(grouped["test"], labels=grouped["index"], bootstrap=20, by="age",
                             age_bands="30,90", min_group=40)
    small = r["subgroups"]["age"]["<30"]
    assert small["too_small"] and "macro" not in small
    assert all("too small" not in k for k in r["subgroups"]["age"]["gaps"])


def test_multiclass_groups_use_f1(tmp_path):
    data = _with_groups(make_dataset(tmp_path / "mc", "multiclass", n=480))
    r = evaluate_predictions(data["test"], labels=data["index"], bootstrap=20, by="sex", min_group=10)
    index = load_index(data["index"]).frame.set_index("image_id")
    cut = data["cut"]
    sex = index.loc[data["ids"][:cut], "sex"].to_numpy()
    for group in ("F", "M"):
        rows = sex == group
        want = f1_score(data["y"][:cut][rows].argmax(1), data["p"][:cut][rows].argmax(1), average="macro")
        assert r["subgroups"]["sex"][group]["macro"]["f1"] == pytest.approx(want)
    assert "macro_f1" in r["subgroups"]["sex"]["gaps"]["F - M"]
    assert r["subgroups"]["sex"]["settings"]["underdiagnosis"].startswith("undefined")


def test_bad_by_columns_are_one_line_errors(grouped, tmp_path):
    with pytest.raises(CxrlabError, match="--by site: not a column of the labels index"):
        evaluate_predictions(grouped["test"], labels=grouped["index"], bootstrap=0, by="site")
    index = load_index(grouped["index"])
    index.frame["source"] = "hospital A"
    write_index(index, grouped["index"])
    with pytest.raises(CxrlabError, match="--by source: the scored images have a single group"):
        evaluate_predictions(grouped["test"], labels=grouped["index"], bootstrap=0, by="source")
    with pytest.raises(CxrlabError, match="--by patient_id: 107 groups"):
        evaluate_predictions(grouped["test"], labels=grouped["index"], bootstrap=0, by="patient_id")
    with pytest.raises(CxrlabError, match="--age-bands"):
        parse_age_bands("60,40")


def test_age_bands():
    ages = pd.Series([10, 40, 59, 60, 80, None])
    assert age_band_labels(ages, [40, 60, 80]).tolist() == ["<40", "40-59", "40-59", "60-79", ">=80", "missing"]


def test_cli_by(grouped, tmp_path, capsys):
    from cxrlab.cli import main

    out = tmp_path / "cli"
    assert main(["evaluate", str(grouped["test"]), "--labels", str(grouped["index"]), "--out", str(out), "--by",
                 "sex", "--min-group", "10", "--bootstrap", "20", "--no-report"]) == 0
    import json

    assert set(json.loads((out / "metrics.json").read_text())["subgroups"]["sex"]) >= {"F", "M", "gaps"}
    capsys.readouterr()
    assert main(["evaluate", str(grouped["test"]), "--labels", str(grouped["index"]), "--out", str(tmp_path / "x"),
                 "--by", "site"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --by site: not a column")


def test_compare_shows_one_subgroup_table_per_model(grouped, tmp_path):
    from cxrlab.evaluate.compare import compare_runs
    from cxrlab.predictions import Predictions, read_predictions, write_predictions

    src = read_predictions(grouped["test"])
    other = tmp_path / "b" / "test.csv"
    noisy = np.clip(src.probs + np.random.default_rng(0).normal(0, 0.2, src.probs.shape), 0, 1)
    write_predictions(other, Predictions(src.image_ids, noisy, src.classes, {"split": "test", "task": "multilabel"}))
    r = compare_runs([grouped["test"], other], labels=grouped["index"], out=tmp_path / "cmp", bootstrap=20,
                     by="sex", min_group=10).to_dict()
    assert len(r["subgroups"]) == 2
    for block in r["subgroups"].values():
        assert set(block["sex"]) >= {"F", "M", "gaps", "worst_group"}
        assert block["sex"]["F"]["underdiagnosis"] is not None  # No Finding threshold: fixed 0.5 without val
    md = (tmp_path / "cmp" / "report.md").read_text()
    assert md.count("Subgroups: sex (") == 2
