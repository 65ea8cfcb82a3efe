"""Reports a reader can trust at a glance: every report (evaluate, compare, demo; the study's in tests/study)
rendered from small fixtures and read back as Markdown (report_lint), plus the trouble said in words, NIH anchors
only on NIH data, and no significance star for a class with 2 positive patients."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from cxrlab.data.index import Index, write_index
from cxrlab.evaluate.compare import compare_runs
from cxrlab.evaluate.evaluate import evaluate_predictions
from cxrlab.predictions import Predictions, write_predictions

from .report_lint import lint_report

CLASSES = ["Effusion", "Hernia", "Nodule"]
N_PATIENTS, PER_PATIENT = 120, 2
SPLIT = {"method": "patient_stratified", "seed": 0, "fractions": {"train": 0.6, "val": 0.2, "test": 0.2},
         "folds": None, "audit": {"verdict": "ok", "leaking_patients": [], "too_few_positives": [], "min_positives": 5}}


def _labels(rng: np.random.Generator) -> np.ndarray:
    """(N, 3): Effusion in half the patients, Hernia in exactly 2 test patients (and 1 val), Nodule in a third."""
    patients = np.repeat(np.arange(N_PATIENTS), PER_PATIENT)
    effusion = (rng.random(N_PATIENTS) < 0.5)[patients]
    hernia = np.isin(patients, [1, 2, 100])
    nodule = (rng.random(N_PATIENTS) < 0.35)[patients]
    return np.column_stack([effusion, hernia, nodule]).astype(float)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """An index (format csv or nih) and two runs scored on it; run ``flipped`` ranks Nodule upside down and its
    validation metric collapsed; both runs carry a manifest, metrics.csv and split.json like a trained run."""
    root = tmp_path_factory.mktemp("rendering")
    rng = np.random.default_rng(0)
    y = _labels(rng)
    n = len(y)
    ids = [f"img{i:04d}.png" for i in range(n)]
    frame = pd.DataFrame({"image_id": ids, "path": ids, "patient_id": [f"p{i // PER_PATIENT}" for i in range(n)]})
    frame["sha256"] = [hashlib.sha256(i.encode()).hexdigest() for i in ids]
    for i, c in enumerate(CLASSES):
        frame[c] = y[:, i]
    indexes = {fmt: write_index(Index(frame, "multilabel", CLASSES, root, {"format": fmt}), root / f"index_{fmt}")
               for fmt in ("csv", "nih")}
    cut = 2 * n // 3
    runs = {}
    for k, name in enumerate(("good", "flipped")):
        p = 1 / (1 + np.exp(-(2.5 * y - 1.2 + rng.normal(size=y.shape))))
        if name == "flipped":
            p[:, 2] = 1 - p[:, 2]  # Nodule worse than chance
        run = root / name
        for split, sl in (("test", slice(None, cut)), ("val", slice(cut, None))):
            write_predictions(run / "predictions" / f"{split}.csv",
                              Predictions(ids[sl], p[sl], CLASSES, {"split": split, "task": "multilabel"}))
        (run / "manifest.json").write_text(json.dumps({
            "config": name, "parameters": 22172548, "wall_seconds": 238.7043902873993, "best_epoch": 2, "seed": k,
            "device": "cpu", "val_metric": {"name": "macro_auroc"}}))
        val = [0.62, 0.81, 0.84] if name == "good" else [0.62, 0.81, 0.55]
        pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [0.7, 0.6, 0.5], "val_loss": [0.69, 0.6, 0.7],
                      "val_metric": val}).to_csv(run / "metrics.csv", index=False)
        (run / "split.json").write_text(json.dumps(SPLIT))
        runs[name] = run
    return {"index": indexes, "runs": runs, "root": root}


@pytest.fixture(scope="module")
def evaluated(data):
    out = {}
    for fmt in ("csv", "nih"):
        out[fmt] = data["root"] / f"eval_{fmt}"
        evaluate_predictions(data["runs"]["flipped"], data["index"][fmt], out=out[fmt], bootstrap=30)
    return {k: (v / "report.md").read_text() for k, v in out.items()}


@pytest.fixture(scope="module")
def compared(data):
    out = {}
    for fmt in ("csv", "nih"):
        out[fmt] = data["root"] / f"compare_{fmt}"
        compare_runs([data["runs"]["good"], data["runs"]["flipped"]], data["index"][fmt], out=out[fmt], bootstrap=30)
    return {k: (v / "report.md").read_text() for k, v in out.items()}


def test_evaluation_report_reads_cleanly(evaluated):
    for md in evaluated.values():
        lint_report(md)
    md = evaluated["csv"]
    assert "training time: 4.0 min" in md and "parameters: 22.2M" in md  # not wall_seconds: 238.7043902873993
    assert "audit, leaking patients: none" in md and "folds: none" in md and "fractions: train 0.6, val 0.2" in md


def test_comparison_report_reads_cleanly(compared):
    for md in compared.values():
        lint_report(md)
    assert "#### Training" in compared["csv"] and "##### Split audit" in compared["csv"]  # under "### Model: x"


def test_worse_than_chance_is_said_in_words(evaluated, compared):
    for md in (evaluated["csv"], compared["csv"]):
        summary = md[md.index("## Summary"):md.index("\n## ", md.index("## Summary"))]
        line = next(x for x in summary.splitlines() if "worse than chance (below 0.5) for Nodule 0.048" in x)
        assert "check label polarity or class order" in line and "flipped" in line
    assert not any("good: AUROC worse" in x for x in compared["csv"].splitlines())


def test_a_collapsed_validation_metric_is_said_in_words(evaluated, compared):
    text = "validation macro AUROC collapsed from 0.810 (epoch 2) to 0.550 (epoch 3)"
    for md in (evaluated["csv"], compared["csv"]):
        summary = md[md.index("## Summary"):md.index("\n## ", md.index("## Summary"))]
        assert text in summary  # at a glance: in the summary, not buried under the training section
    assert compared["csv"].count("collapsed from") == 1  # the good run's curve is not flagged


def test_nih_anchors_only_on_nih_data(evaluated, compared):
    for reports in (evaluated, compared):
        assert "Reference anchors" not in reports["csv"] and "0.841" not in reports["csv"]
        assert "Reference anchors (NIH ChestX-ray14" in reports["nih"] and "0.841" in reports["nih"]


def test_no_star_for_a_class_with_two_positive_patients(data, compared):
    tests = json.loads((data["root"] / "compare_csv" / "comparison.json").read_text())["tests"]
    hernia = next(t for t in tests if t["class"] == "Hernia")
    assert hernia["n_pos_patients"] == 2 and not hernia["significant"]
    row = next(x for x in compared["csv"].splitlines() if x.startswith("| good - flipped | Hernia |"))
    assert row.rstrip(" |").endswith("n/a: 2 positive patients (fewer than 25)") and "*" not in row
    effusion = next(x for x in compared["csv"].splitlines() if x.startswith("| good - flipped | Effusion |"))
    assert effusion.rstrip(" |").split("|")[-1].strip() in ("yes *", "no")  # 40 positive patients: called


def test_demo_report_is_one_report_linking_the_others(data, tmp_path, capsys):
    from cxrlab.demo import DemoSettings, evaluate_and_compare

    runs = [data["runs"]["good"], data["runs"]["flipped"]]
    report = evaluate_and_compare(DemoSettings(out=tmp_path, bootstrap=30), runs, data["index"]["csv"])
    assert report == tmp_path / "comparison" / "report.html"
    assert "report.html" not in capsys.readouterr().out  # run_demo prints the one path, nothing here
    md = (tmp_path / "comparison" / "report.md").read_text()
    lint_report(md)
    appendix = md[md.index("## Appendix"):]
    assert "(../report/report.html)" in appendix and "(../runs/good/evaluation/report.html)" in appendix


def test_multiclass_evaluation_report_reads_cleanly(mc_data, tmp_path):
    evaluate_predictions(mc_data["test"], mc_data["index"], out=tmp_path / "mc", bootstrap=20)
    lint_report((tmp_path / "mc" / "report.md").read_text())
