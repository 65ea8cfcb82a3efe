"""``cxrlab demo`` end to end: the README's main job (slow; CI runs it)."""

from __future__ import annotations

import json

import pytest

from cxrlab.cli import main


@pytest.mark.slow
def test_demo_default_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = out / "comparison" / "report.html"
    assert f"Report: {report.resolve()}" in printed
    assert printed.count("report.html") == 1  # one report; the study and per-model reports are its appendix
    appendix = (out / "comparison" / "report.md").read_text().split("## Appendix")[1]
    assert "(../report/report.html)" in appendix and (out / "report" / "report.html").exists()
    assert report.stat().st_size > 10_000  # figures are embedded
    comparison = json.loads((out / "comparison" / "comparison.json").read_text())
    assert comparison  # one entry per model pair and class
    for model in ("cnn_baseline", "resnet34_scratch", "vit_v1"):
        metrics = json.loads((out / "runs" / model / "evaluation" / "metrics.json").read_text())
        assert metrics["task"] == "multilabel"
        assert 0.0 <= metrics["macro"]["auroc"] <= 1.0
    # The phantom's planted findings are learnable: the best model clearly beats chance.
    best = max(
        json.loads((out / "runs" / m / "evaluation" / "metrics.json").read_text())["macro"]["auroc"]
        for m in ("cnn_baseline", "resnet34_scratch", "vit_v1")
    )
    assert best > 0.75


@pytest.mark.slow
def test_demo_on_nih_sample(shared_data, tmp_path):
    out = tmp_path / "demo-nih"
    args = ["demo", "--data", str(shared_data / "nih-sample"), "--out", str(out), "--epochs", "1",
            "--models", "cnn_baseline", "vit_v1"]
    assert main(args) == 0
    assert (out / "comparison" / "report.html").exists()
    assert json.loads((out / "index" / "index.json").read_text())["n_images"] == 400


def test_demo_rejects_unknown_model(capsys, tmp_path):
    assert main(["demo", "--out", str(tmp_path), "--models", "resnet99"]) == 2
    assert "unknown demo model 'resnet99'" in capsys.readouterr().err


def test_demo_rejects_missing_data_folder(capsys, tmp_path):
    assert main(["demo", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "is not a folder" in capsys.readouterr().err
