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
    r = evaluate_predictions(run, labels=index, out=tmp_path / "ev", bootstrap=50, by="sex")
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
    loose = evaluate_predictions(run, labels=index, bootstrap=0, match="approximate")
    kinds = {p["model"]: p["kind"] for p in loose["matching"]["pairs"]}
    assert kinds["Infiltration"] == "approximate" and "Infiltration" in loose["per_class"]


def test_labels_sharing_no_finding_is_a_one_line_error(tmp_path):
    index, ids, _ = _chexpert_index(tmp_path / "chex", n=20)
    write_predictions(tmp_path / "p.csv", Predictions(ids, np.full((20, 2), 0.5), ["Cat", "Dog"], {"split": "test"}))
    with pytest.raises(CxrlabError, match="no class in common with the labels, not even a finding shared"):
        evaluate_predictions(tmp_path / "p.csv", labels=index, bootstrap=0)
    with pytest.raises(CxrlabError, match="--match 'loose' is not one of exact, approximate"):
        evaluate_predictions(tmp_path / "p.csv", labels=index, bootstrap=0, match="loose")


@pytest.mark.slow
def test_phantom_model_scored_on_a_chexpert_layout(tmp_path, capsys):
    """Train on a phantom index (NIH-style names), predict on the same kind of images laid out as CheXpert
    (index built by the chexpert adapter), evaluate through the shared findings, by sex."""
    import json
    import shutil

    import torch

    from cxrlab.cli import main
    from cxrlab.config import load_config
    from cxrlab.data.phantom import make_phantom_index
    from cxrlab.data.splits import patient_level_split, write_split
    from cxrlab.train import fit

    index = make_phantom_index(tmp_path / "ph", n=60, size=32, seed=0)
    write_split(patient_level_split(index, 0.2, 0.2, seed=0), tmp_path / "split.csv", "patient", 0, index)
    cfg = load_config(None, [f"data.index={tmp_path / 'ph' / 'index'}", f"data.split={tmp_path / 'split.csv'}",
                             "data.image_size=32", "data.cache_size=32", "model.name=cnn_gap", "train.epochs=1",
                             "train.batch_size=16", "augment.policy=none", "train.device=cpu", "train.threads=1"])
    run = fit(cfg, tmp_path / "run")
    torch.set_num_threads(1)
    other = make_phantom_index(tmp_path / "ph2", n=80, size=32, seed=1)  # "another hospital"
    root = tmp_path / "CheXpert-v1.0-small"
    rows = []
    for i, r in enumerate(other.frame.itertuples()):
        rel = f"train/patient{int(r.patient_id) if str(r.patient_id).isdigit() else i:05d}/study{i}/view1_frontal.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(other.root / r.path, root / rel)
        f = other.frame.iloc[i]
        rows.append({"Path": f"CheXpert-v1.0-small/{rel}", "Sex": "Female" if i % 2 else "Male", "Age": 30 + i % 50,
                     "Frontal/Lateral": "Frontal", "AP/PA": "PA", "Pleural Effusion": float(f["Effusion"]),
                     "Lung Opacity": float(f["Opacity"]), "Lung Lesion": float(max(f["Nodule"], f["Mass"])),
                     "No Finding": float(f[["Nodule", "Mass", "Effusion", "Opacity"]].sum() == 0)})
    cols = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_CLASSES]
    pd.DataFrame(rows).reindex(columns=cols).to_csv(root / "train.csv", index=False)
    assert main(["data", "index", str(root), "--format", "chexpert", "--out", str(tmp_path / "chx"), "--no-hash"]) == 0
    assert main(["predict", str(run), "--index", str(tmp_path / "chx"), "--out", str(tmp_path / "p.csv")]) == 0
    assert main(["evaluate", str(tmp_path / "p.csv"), "--labels", str(tmp_path / "chx"), "--by", "sex",
                 "--min-group", "10", "--bootstrap", "50", "--out", str(tmp_path / "ev")]) == 0
    capsys.readouterr()
    r = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    pairs = {p["model"]: (p["labels"], p["kind"]) for p in r["matching"]["pairs"]}
    assert pairs == {"Effusion": ("Pleural Effusion", "exact"), "Opacity": ("Lung Opacity", "exact")}
    assert {(a["model"], a["labels"]) for a in r["matching"]["approximate_not_scored"]} >= {("Nodule", "Lung Lesion")}
    assert r["datasets"]["external"] and r["datasets"]["test"]["format"] == "chexpert"
    assert set(r["subgroups"]["sex"]) >= {"F", "M", "gaps"}
