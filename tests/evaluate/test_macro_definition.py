"""One macro AUROC: training's selection metric, ``cv``, ``evaluate``, ``compare`` and ``study`` give the same number
(and the same averaged classes) for the same predictions, and it matches scikit-learn computed here."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cxrlab.cv import score_predictions
from cxrlab.data.index import load_index, write_index
from cxrlab.evaluate.compare import compare_runs
from cxrlab.evaluate.evaluate import evaluate_predictions
from cxrlab.predictions import Predictions, read_predictions, write_predictions
from cxrlab.study.scores import score_runs
from cxrlab.train.loop import val_metric

from .conftest import make_dataset


def _run_dir(root, name, preds_csv):
    """A minimal run directory: only its test predictions (what study scoring reads)."""
    folder = root / name / "predictions"
    folder.mkdir(parents=True)
    shutil.copy(preds_csv, folder / "test.csv")
    shutil.copy(preds_csv.with_suffix(".json"), folder / "test.json")
    return root / name


def test_every_path_reports_the_same_macro_auroc(tmp_path):
    d = make_dataset(tmp_path / "ml")  # classes include "No Finding"; 3 images per patient
    preds = read_predictions(d["test"])
    index = load_index(d["index"])
    y = d["y"][: d["cut"]]
    y[:7, 0] = np.nan  # unknown labels are masked everywhere
    frame = index.frame.copy()
    frame.loc[:6, d["classes"][0]] = np.nan
    index.frame = frame
    expected_classes = [c for c in d["classes"] if c != "No Finding"]
    known = ~np.isnan(y[:, 0])
    independent = np.mean([roc_auc_score(y[known, 0], preds.probs[known, 0])]
                          + [roc_auc_score(y[:, i], preds.probs[:, i]) for i in (1, 2)])

    training = val_metric("multilabel", preds.probs, y, len(d["classes"]), d["classes"])
    cv = score_predictions(preds, index)
    evaluated = evaluate_predictions(d["test"], labels=index, bootstrap=0, report=False)
    other = tmp_path / "other_test.csv"  # a second model (compare refuses one file given twice)
    flipped = Predictions(preds.image_ids, 1 - preds.probs, preds.classes, preds.meta, preds.patient_ids)
    write_predictions(other, flipped)
    runs = [{"name": f"r{i}", "arm": "a", "seed": i, "dir": str(_run_dir(tmp_path / "runs", f"r{i}", src))}
            for i, src in enumerate([d["test"], other])]
    write_index(index, tmp_path / "labels")
    study = score_runs(runs, tmp_path / "labels", bootstrap=0, seed=0, threshold_method="youden")
    compared = compare_runs([runs[0]["dir"], runs[1]["dir"]], labels=tmp_path / "labels", bootstrap=0, report=False)

    assert training == pytest.approx(independent, abs=1e-12)
    for value in (cv["macro_auroc"], evaluated["macro"]["auroc"], study.board.runs[0].macro_auroc,
                  compared.models[0].macro_auroc.value):
        assert value == pytest.approx(training, abs=1e-12)
    for names in (cv["macro_classes"], evaluated["macro"]["classes"], list(study.board.macro_classes),
                  list(compared.macro_classes)):
        assert names == expected_classes
