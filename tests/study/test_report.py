"""The study report: its numbers equal ``compare``'s on the same runs; mean ± sd over seeds by hand."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from report_lint import lint_report
from study_helpers import write_study

from cxrlab.evaluate.compare import compare_runs
from cxrlab.study.report import build_report
from cxrlab.study.runner import run_study


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_data):
    tmp = tmp_path_factory.mktemp("report")
    study = write_study(tmp / "s.yaml", tiny_data, arms=[{"name": "a"}, {"name": "b", "set": {"train.lr": 0.01}}],
                        seeds=[0, 1], reference="a", budget={"epochs": 2},
                        ensembles=[{"name": "ab", "members": ["a", "b"], "method": "weighted"}])
    out = tmp / "out"
    run_study(study, out)
    return out


def _report(out):
    return json.loads((out / "report" / "study_report.json").read_text())


def test_report_files_and_contents(finished):
    html = (finished / "report" / "report.html").read_text()
    for text in ("Leaderboard", "Paired tests", "Cost (measured)", "Training curves", "Provenance", "GFLOPs/image",
                 "weighted ensemble of a, b", "load (train)", "load (timings)", "one torch thread"):
        assert text in html
    assert (finished / "report" / "report.md").exists() and (finished / "report" / "leaderboard.csv").exists()
    rep = _report(finished)
    assert {a["arm"] for a in rep["arms"]} == {"a", "b", "ab", "a (seed ensemble)", "b (seed ensemble)"}
    ens = next(x for x in rep["arms"] if x["arm"] == "a (seed ensemble)")
    assert ens["kind"] == "seed_ensemble" and ens["n_seeds"] == 2 and ens["sd"] is None
    a = next(x for x in rep["arms"] if x["arm"] == "a")
    assert a["cost"]["parameters"] > 0 and a["cost"]["gflops_per_image"] > 0 and a["cost"]["cpu_latency_ms_b1"] > 0
    assert a["cost"]["train_load"] >= 0 and a["cost"]["cost_load"] >= 0  # the load beside the timings
    assert all(t["b"] == "a" for t in rep["tests"])  # against the reference
    assert "train_metric" in pd.read_csv(finished / "runs" / "a-s0" / "metrics.csv").columns


def test_mean_and_sd_over_seeds_match_a_hand_computation(finished):
    rep = _report(finished)
    for arm in ("a", "b"):
        values = [r["headline"] for r in rep["runs"] if r["arm"] == arm]
        row = next(x for x in rep["arms"] if x["arm"] == arm)
        assert len(values) == 2
        assert row["mean"] == pytest.approx(sum(values) / 2)
        assert row["sd"] == pytest.approx(abs(values[0] - values[1]) / np.sqrt(2))  # sample sd of two values


def test_run_numbers_equal_compare_on_the_same_runs(finished, tmp_path):
    rep = _report(finished)
    runs = [finished / "runs" / n for n in ("a-s0", "b-s0")]
    cmp = compare_runs(runs, bootstrap=50, seed=0).to_dict()
    for model in cmp["models"]:
        ours = next(r for r in rep["runs"] if r["name"] == model["name"])
        assert ours["headline"] == pytest.approx(model["headline"])
        assert ours["headline_ci"] == pytest.approx(model["headline_ci"])
        assert ours["per_class"] == pytest.approx(model["per_class"])
        assert ours["macro_f1"] == pytest.approx(model["macro_f1"])


def test_a_difference_is_the_difference_of_the_leaderboard_means(finished):
    rep = _report(finished)
    mean = {a["arm"]: a["mean"] for a in rep["arms"]}
    head = rep["headline"].removeprefix("macro_")
    for t in rep["tests"]:
        if t["class"] == "macro" and t["metric"] == head:
            assert t["delta"] == pytest.approx(mean[t["a"]] - mean[t["b"]], abs=1e-12)
            assert t["n_seeds"] == [2, 2] and t["delta_ci"][0] <= t["delta"] <= t["delta_ci"][1]
            assert 0 < t["p_value"] <= 1 and [s["seed"] for s in t["per_seed"]] == [0, 1]
    per_class = {(t["a"], t["class"]): t["delta"] for t in rep["tests"] if t["class"] != "macro"}
    for (arm, cls), delta in per_class.items():
        rows = {a["arm"]: a["per_class"][cls][0] for a in rep["arms"]}
        assert delta == pytest.approx(rows[arm] - rows["a"], abs=1e-12)


def test_per_seed_tests_equal_compare_with_one_seed(tmp_path, tiny_data):
    study = write_study(tmp_path / "s.yaml", tiny_data, arms=[{"name": "a"}, {"name": "b", "set": {"train.lr": 0.01}}],
                        reference="a")
    out = tmp_path / "out"
    run_study(study, out)
    cmp = compare_runs([out / "runs" / "b-s0", out / "runs" / "a-s0"], bootstrap=50, seed=0).to_dict()
    theirs = {(t["class"], t["metric"]): t for t in cmp["tests"]}
    ours = [t for t in _report(out)["tests"] if t["class"] == "macro"]
    assert len(ours) == 2
    for mine in ours:
        ref = theirs[("macro", mine["metric"])]
        assert (mine["a"], mine["b"], mine["n_seeds"]) == ("b", "a", [1, 1])
        assert mine["delta"] == pytest.approx(ref["delta"])  # one seed: the mean is that seed's value
        assert mine["per_seed"][0]["delta"] == pytest.approx(ref["delta"])
        assert mine["per_seed"][0]["p_value"] == pytest.approx(ref["p_value"])
        assert mine["per_seed"][0]["delta_ci"] == pytest.approx(ref["delta_ci"])


def test_report_is_rebuilt_by_the_cli(finished, capsys):
    from cxrlab.cli import main

    (finished / "report" / "report.html").unlink()
    assert main(["study", "report", str(finished)]) == 0
    assert (finished / "report" / "report.html").exists()
    build_report(finished)


def test_report_reads_cleanly(finished):
    """No raw floats, JSON or empty literals, headings nested, p-values one way; the study file a YAML block;
    a class below the stats core's minimum of positive patients gets no interval or p-value."""
    md = (finished / "report" / "report.md").read_text()
    lint_report(md)
    assert "```yaml\nname: tiny\n" in md
    rep = _report(finished)
    thin = [c for c, n in rep["class_counts"].items() if n["n_pos_patients"] < rep["min_patients"]]
    assert thin  # 96 tiny images: every class is thin
    row = next(x for x in md.splitlines() if x.startswith(f"| b | a | {thin[0]} |"))
    assert "n/a: " in row and "positive patient" in row and "[" not in row


def test_report_is_self_contained(finished):
    html = (finished / "report" / "report.html").read_text()
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*['"](https?:|//)""", html)
    assert html.count("data:image/png;base64,") >= 3  # leaderboard, differences, curves


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_report_renders_in_headless_chromium(finished, tmp_path):
    from PIL import Image

    png = tmp_path / "report.png"
    cmd = [shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", f"--screenshot={png}",
           "--window-size=1200,900", (finished / "report" / "report.html").resolve().as_uri()]
    stderr = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stderr
    assert not [line for line in stderr.splitlines() if ":CONSOLE" in line]
    pixels = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert pixels.shape == (900, 1200) and pixels.std() > 10  # not blank


def test_study_report_json_reads_back_into_the_typed_results(finished):
    """``StudyResults.from_dict`` reads the written file; its ``to_dict`` writes it again unchanged."""
    from cxrlab.study.leaderboard import StudyResults

    rep = _report(finished)
    res = StudyResults.from_dict(rep)
    assert res.to_dict() == rep
    assert {a.arm for a in res.board.arms} == {a["arm"] for a in rep["arms"]}
    assert res.thin_classes() == list(rep["classes"])  # 96 tiny images: every class is thin


def test_thin_classes_are_marked_and_not_called_worse_than_chance(finished):
    md = (finished / "report" / "report.md").read_text()
    rep = _report(finished)
    header = next(x for x in md.splitlines() if x.startswith("| arm | ") and "(thin)" in x)
    assert all(f"{c} (thin)" in header for c in rep["classes"])
    assert "worse than chance" not in md  # every class is thin: no class, and not their macro, is called
    low = [c for a in rep["arms"] for c, v in a["per_class"].items() if v[0] is not None and v[0] < 0.5]
    if low:
        assert "thin, not called: AUROC below 0.5 for" in md
