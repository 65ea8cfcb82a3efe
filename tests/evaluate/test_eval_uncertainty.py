"""Uncertainty columns in predictions files: evaluate's ``uncertainty`` block and report, compare's AURC."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cxrlab.cli import main
from cxrlab.evaluate.evaluate import evaluate_predictions
from cxrlab.evaluate.selective import image_errors, risk_coverage
from cxrlab.predictions import Predictions, read_predictions, write_predictions


def _with_uncertainty(data: dict, path, informative: bool = True) -> tuple:
    """The fixture's test predictions plus std/entropy/mi columns; informative std is high where errors are."""
    preds = read_predictions(data["test"])
    rng = np.random.default_rng(1)
    y = data["y"][: data["cut"]]
    wrong = (preds.probs >= 0.5) != (y == 1)  # (N, C)
    std = np.where(wrong, 0.2, 0.05) if informative else rng.random(wrong.shape) * 0.2
    std = std + rng.random(std.shape) * 0.01
    cols = {f"{k}:{c}": (std * f)[:, i] for k, f in (("std", 1.0), ("entropy", 3.0), ("mi", 0.5))
            for i, c in enumerate(preds.classes)}
    meta = {**preds.meta, "uncertainty": "mc_dropout", "samples": 7}
    write_predictions(path, Predictions(preds.image_ids, preds.probs, preds.classes, meta, None, pd.DataFrame(cols)))
    return path, std, y, preds.probs


def test_evaluate_adds_uncertainty_block_and_report_section(ml_data, tmp_path):
    path, std, y, probs = _with_uncertainty(ml_data, tmp_path / "unc.csv")
    out = tmp_path / "ev"
    assert main(["evaluate", str(path), "--labels", str(ml_data["index"]), "--bootstrap", "20",
                 "--out", str(out)]) == 0
    unc = json.loads((out / "metrics.json").read_text())["uncertainty"]
    assert unc["method"] == "mc_dropout" and unc["samples"] == 7 and unc["kinds"] == ["std", "entropy", "mi"]
    c = ml_data["classes"][1]
    assert unc["per_class"][c]["mean_std"] == pytest.approx(std[:, 1].mean(), rel=1e-4)
    assert unc["per_class"][c]["mean_entropy"] == pytest.approx(3 * std[:, 1].mean(), rel=1e-4)
    # AURC from the same functions `cxrlab selective` uses, on the same images
    expected = risk_coverage(std.max(axis=1), image_errors(probs, y, "multilabel"))
    assert unc["score"] == "std" and unc["aurc"] == pytest.approx(expected["aurc"], abs=1e-9)
    assert unc["aurc"] < unc["aurc_by_score"]["confidence"]  # informative std beats plain confidence here
    assert unc["review"]["n_flagged"] == int((std.max(axis=1) > 0.15).sum()) > 0
    assert unc["curve"]["coverage"][-1] == 1.0 and len(unc["curve"]["risk"]) <= 101
    html, md = (out / "report.html").read_text(), (out / "report.md").read_text()
    assert "Uncertainty" in html and "AURC" in html and "flagged for review" in html
    assert "figures/risk_coverage.png" in md and (out / "figures" / "risk_coverage.png").stat().st_size > 1000


def test_evaluate_without_uncertainty_columns_has_no_block(ml_data, tmp_path):
    result = evaluate_predictions(ml_data["test"], ml_data["index"], tmp_path / "ev", bootstrap=0)
    assert "uncertainty" not in result
    assert "Uncertainty" not in (tmp_path / "ev" / "report.html").read_text()


def test_uncertainty_block_uses_scored_rows_only(ml_data, tmp_path):
    """Rows without labels are dropped before the block: it must follow the scored images, not file order."""
    path, std, y, probs = _with_uncertainty(ml_data, tmp_path / "unc.csv")
    frame = pd.read_csv(path)
    extra = frame.iloc[:3].copy()
    extra["image_id"] = ["ghost1.png", "ghost2.png", "ghost3.png"]
    pd.concat([extra, frame.iloc[::-1]]).to_csv(path, index=False)  # unlabelled rows first, the rest reversed
    result = evaluate_predictions(path, ml_data["index"], None, bootstrap=0)
    assert result["uncertainty"]["n_images"] == len(y)
    expected = risk_coverage(std.max(axis=1), image_errors(probs, y, "multilabel"))
    assert result["uncertainty"]["aurc"] == pytest.approx(expected["aurc"], abs=1e-9)


def test_compare_shows_aurc_for_models_that_have_it(ml_data, tmp_path):
    path, *_ = _with_uncertainty(ml_data, tmp_path / "unc.csv")
    out = tmp_path / "cmp"
    assert main(["compare", str(path), str(ml_data["test"]), "--labels", str(ml_data["index"]), "--bootstrap", "20",
                 "--out", str(out)]) == 0
    rows = {r["name"]: r for r in json.loads((out / "comparison.json").read_text())["models"]}
    assert rows["unc"]["aurc"] > 0 and rows["unc"]["aurc_score"] == "std" and rows["ml"]["aurc"] is None
    assert "aurc" in pd.read_csv(out / "comparison.csv").columns
    html = (out / "report.html").read_text()
    assert "<th>AURC</th>" in html and "(std)" in html
