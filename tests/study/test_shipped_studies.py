"""Every shipped study runs end to end with --smoke on phantom data (slow: one parametrized test)."""

from __future__ import annotations

import json

import pytest
from train_helpers import make_tiny

from cxrlab.cli import main
from cxrlab.study.spec import shipped_studies


@pytest.fixture(scope="module")
def tiny_multiclass(tmp_path_factory) -> dict[str, str]:
    return make_tiny(tmp_path_factory.mktemp("study_mc"), 96, task="multiclass")


@pytest.mark.slow
@pytest.mark.parametrize("name", shipped_studies())
def test_shipped_study_runs_in_smoke_mode(name, tmp_path, tiny_data, tiny_multiclass):
    data = tiny_multiclass if "pneumonia4" in name else {f"data.{k}": v for k, v in tiny_data.items()}
    out = tmp_path / "out"
    sets = [f"{k}={v}" for k, v in data.items()] + [
        "data.image_size=64", "data.cache_size=null",  # the tiny 64-px cache, whatever size the recipe names
        "model.pretrained=false", "train.batch_size=16", "train.device=cpu",
        "data.require_positives=false"]
    assert main(["study", "run", f"studies/{name}", "--out", str(out), "--smoke", "--set", *sets]) == 0
    plan = json.loads((out / "plan.json").read_text())
    report = json.loads((out / "report" / "study_report.json").read_text())
    assert report["finished_runs"] == len(plan["runs"]) == len(plan["arms"])  # smoke: one seed per arm
    assert {a["arm"] for a in report["arms"]} >= {a["name"] for a in plan["arms"]}
    assert (out / "report" / "report.html").stat().st_size > 10_000
