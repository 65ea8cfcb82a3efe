"""External evaluation: an NIH-class model scored on a CheXpert-format index through the shared findings table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from cxrlab.data.findings import canonical, match_classes
from cxrlab.data.index import Index, write_index
from cxrlab.data.sources.chexpert import CHEXPERT_CLASSES
from cxrlab.data.sources.nih import NIH_CLASSES
from cxrlab.errors import CxrlabError
from cxrlab.evaluate.evaluate import evaluate_predictions
from cxrlab.predictions import Predictions, write_predictions


def _chexpert_index(out, n=300, seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"train/patient{i // 2:05d}/study1/view{i % 2 + 1}_frontal.jpg" for i in range(n)]
    frame = pd.DataFrame({"image_id": ids, "path": ids, "patient_id": [i.split("/")[1] for i in ids],
                          "sex": rng.choice(["M", "F"], n), "age": rng.integers(20, 90, n)})
    y = (rng.random((n, len(CHEXPERT_CLASSES))) < 0.3).astype(float)
    y[rng.random(y.shape) < 0.1] = np.nan  # uncertain, ignored
    for i, c in enumerate(CHEXPERT_CLASSES):
        frame[c] = y[:, i]
    write_index(Index(frame, "multilabel", CHEXPERT_CLASSES, out, {"format": "chexpert"}), out / "index")
    return out / "index", ids, y


def _run(tmp_path, ids, y, train_index):
    """A run directory trained on ``train_index`` (NIH classes) with predictions on the CheXpert images."""
    run = tmp_path / "runs" / "nih_model"
    (run / "predictions").mkdir(parents=True)
    (run / "config.yaml").write_text(f"data:\n  index: {train_index}\n")
    (run / "manifest.json").write_text("{}")
    rng = np.random.default_rng(1)
    probs = rng.random((len(ids), len(NIH_CLASSES))) * 0.5
    col = {c: CHEXPERT_CLASSES.index(c) for c in CHEXPERT_CLASSES}
    for i, c in enumerate(NIH_CLASSES):  # informative where a CheXpert column exists
        target = {"Effusion": "Pleural Effusion"}.get(c, c)
        if target in col:
            probs[:, i] += 0.5 * np.nan_to_num(y[:, col[target]])
    write_predictions(run / "predictions" / "test.csv", Predictions(ids, probs, NIH_CLASSES,
                                                                  {"split": "test", "task": "multilabel"}))
    return run, probs


def test_findings_table_spellings():
    assert canonical("Effusion") == canonical("Pleural Effusion") == canonical("pleural effusion") \
        == canonical("Pleural effusion") == "Pleural Effusion"
    matched, approx, _, _ = match_classes(["Effusion", "Consolidation"], ["Pleural Effusion", "Airspace opacity"])
    assert [(m.model, m.labels, m.kind) for m in matched] == [("Effusion", "Pleural Effusion", "exact")]
    assert [(a.model, a.labels) for a in approx] == [("Consolidation", "Airspace opacity")]


def test_nih_model_on_chexpert_index(tmp_path):
    nih_index = tmp_path / "nih_index"
    write_index(Index(pd.DataFrame({"image_id": ["a"], "path": ["a"], "patient_id": ["p"],
                                    **{c: [0] for c in NIH_CLASSES}}), "multilabel", NIH_CLASSES, tmp_path,
                      {"format": "nih"}), nih_index)
    index, ids, y = _chexpert_index(tmp_path / "chex")
    run, probs = _run(tmp_path, ids, y, nih_index)
    r = evaluate_predictions(run, index, out=tmp_path / "ev", bootstrap=50, quiet=True, by="sex")
    pairs = {p["model"]: (p["labels"], p["kind"]) for p in r["matching"]["pairs"]}
    assert pairs["Effusion"] == ("Pleural Effusion", "exact") and pairs["Atelectasis"] == ("Atelectasis", "same name")
    assert "Infiltration" not in pairs
    approx = {(a["model"], a["labels"]) for a in r["matching"]["approximate_not_scored"]}
    assert ("Infiltration", "Lung Opacity") in approx and ("Nodule", "Lung Lesion") in approx
    known = ~np.isnan(y[:, CHEXPERT_CLASSES.index("Pleural Effusion")])
    want = roc_auc_score(y[known, CHEXPERT_CLASSES.index("Pleural Effusion")],
                         probs[known, NIH_CLASSES.index("Effusion")])
    assert r["per_class"]["Effusion"]["auroc"] == pytest.approx(want)
    assert r["datasets"]["external"] and r["datasets"]["training"]["format"] == "nih"
    assert r["datasets"]["test"]["format"] == "chexpert"
    md = (tmp_path / "ev" / "report.md").read_text()
    assert "EXTERNAL evaluation" in md and "Effusion = Pleural Effusion" in md
    loose = evaluate_predictions(run, index, bootstrap=0, quiet=True, match="approximate")
    kinds = {p["model"]: p["kind"] for p in loose["matching"]["pairs"]}
    assert kinds["Infiltration"] == "approximate" and "Infiltration" in loose["per_class"]


def test_labels_sharing_no_finding_is_a_one_line_error(tmp_path):
    index, ids, _ = _chexpert_index(tmp_path / "chex", n=20)
    write_predictions(tmp_path / "p.csv", Predictions(ids, np.full((20, 2), 0.5), ["Cat", "Dog"], {"split": "test"}))
    with pytest.raises(CxrlabError, match="no class in common with the labels, not even a finding shared"):
        evaluate_predictions(tmp_path / "p.csv", index, bootstrap=0, quiet=True)
    with pytest.raises(CxrlabError, match="--match 'loose' is not one of exact, approximate"):
        evaluate_predictions(tmp_path / "p.csv", index, bootstrap=0, quiet=True, match="loose")
