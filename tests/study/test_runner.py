"""``study run``: resume after a kill between and inside runs, failures recorded, folder identity, audit."""

from __future__ import annotations

import pandas as pd
import pytest
from report_lint import lint_report
from study_helpers import write_study

from cxrlab.cli import main
from cxrlab.errors import CxrlabError
from cxrlab.study import runner
from cxrlab.study.runner import run_study, study_status
from cxrlab.utils import read_json


def _study(tmp_path, tiny_data, **fields):
    fields.setdefault("arms", [{"name": "a"}, {"name": "b", "set": {"train.lr": 0.01}}])
    return write_study(tmp_path / "s.yaml", tiny_data, **fields)


def test_kill_between_runs_then_rerun_skips_the_finished_one(tmp_path, tiny_data, monkeypatch):
    study, out = _study(tmp_path, tiny_data), tmp_path / "out"
    real, calls = runner.execute_run, []

    def killed_after_first(o, run, *rest):
        if calls:
            raise KeyboardInterrupt  # the kill lands between the first and the second run
        calls.append(run.name)
        return real(o, run, *rest)

    monkeypatch.setattr(runner, "execute_run", killed_after_first)
    with pytest.raises(KeyboardInterrupt):
        run_study(study, out, report=False)
    monkeypatch.setattr(runner, "execute_run", real)
    first_manifest = (out / "runs" / "a-s0" / "manifest.json").read_bytes()
    assert [r["state"] for r in study_status(out)] == ["done", "to do"]
    assert run_study(study, out, report=False) == {"a-s0": "skipped", "b-s0": "done"}
    assert (out / "runs" / "a-s0" / "manifest.json").read_bytes() == first_manifest  # untouched


def test_kill_inside_a_run_resumes_from_its_last_checkpoint(tmp_path, tiny_data, monkeypatch):
    from cxrlab.train import fitting

    study, out = _study(tmp_path, tiny_data, arms=[{"name": "a"}], budget={"epochs": 2}), tmp_path / "out"
    real = fitting._epoch

    def dies_in_epoch_2(s, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return real(s, epoch)

    monkeypatch.setattr(fitting, "_epoch", dies_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run_study(study, out, report=False)
    assert study_status(out)[0]["state"] == "interrupted"
    monkeypatch.setattr(fitting, "_epoch", real)
    assert run_study(study, out, report=False) == {"a-s0": "done"}
    status = read_json(out / "status" / "a-s0.json")
    assert status["resumed"] is True and status["attempts"] == 2
    assert pd.read_csv(out / "runs" / "a-s0" / "metrics.csv")["epoch"].tolist() == [1, 2]


def test_a_failing_arm_is_recorded_and_the_study_goes_on(tmp_path, tiny_data, capsys):
    # vit_v1 cannot take 20 px images: the arm fails when its model is built
    study = _study(tmp_path, tiny_data, arms=[{"name": "bad", "set": {"model.name": "vit_v1", "data.image_size": 20}},
                                              {"name": "good"}])
    out = tmp_path / "out"
    assert main(["study", "run", str(study), "--out", str(out)]) == 1
    rows = {r["run"]: r for r in study_status(out)}
    assert rows["bad-s0"]["state"] == "failed" and "image_size" in rows["bad-s0"]["error"]
    assert rows["good-s0"]["state"] == "done"
    assert (out / "report" / "report.html").exists()
    assert "failed" in capsys.readouterr().out


def test_folder_of_another_study_is_refused_before_training(tmp_path, tiny_data):
    out = tmp_path / "out"
    run_study(_study(tmp_path, tiny_data, arms=[{"name": "a"}]), out, report=False)
    other = write_study(tmp_path / "other.yaml", tiny_data, arms=[{"name": "z"}])
    with pytest.raises(CxrlabError, match="holds study 'tiny' from another study file"):
        run_study(other, out)
    with pytest.raises(CxrlabError, match="trained with another config"):
        run_study(tmp_path / "s.yaml", out, cli_set=["train.lr=0.2"], report=False)


def test_leaking_split_fails_the_audit_before_training(tmp_path, tiny_data):
    split = pd.read_csv(tiny_data["split"])
    patient = pd.read_csv(tiny_data["index"] + "/index.csv").set_index("image_id")["patient_id"]
    split["patient"] = split["image_id"].map(patient)
    shared = split.groupby("patient").filter(lambda g: len(g) > 1)["patient"].iloc[0]
    rows = split.index[split["patient"] == shared]
    split.loc[rows[0], "split"], split.loc[rows[1], "split"] = "train", "test"
    bad = tmp_path / "leak.csv"
    split.drop(columns="patient").to_csv(bad, index=False)
    study = _study(tmp_path, {**tiny_data, "split": str(bad)})
    with pytest.raises(CxrlabError, match="failed its leakage audit"):
        run_study(study, tmp_path / "out")
    assert not (tmp_path / "out" / "runs").exists()


def test_dry_run_prints_the_plan_and_trains_nothing(tmp_path, tiny_data, capsys):
    out = tmp_path / "out"
    assert main(["study", "run", str(_study(tmp_path, tiny_data)), "--out", str(out), "--dry-run",
                 "--shard", "2/2"]) == 0
    printed = capsys.readouterr().out
    assert "2 arms x 1 seeds = 2 runs; shard 2/2: 1 runs" in printed and "  b (seeds 0)" in printed
    assert "  a (seeds" not in printed
    assert "train.lr: 0.003 -> 0.01" in printed and "estimated CPU time" in printed
    assert not (out / "runs").exists()


def test_bad_shard_is_refused_by_the_cli(tmp_path, tiny_data, capsys):
    assert main(["study", "run", str(_study(tmp_path, tiny_data)), "--out", str(tmp_path / "o"), "--shard", "3/2"]) == 2
    assert "--shard 3/2" in capsys.readouterr().err


def test_external_test_set_is_predicted_and_reported(tmp_path, tiny_data):
    study = _study(tmp_path, tiny_data, arms=[{"name": "a"}],
                   evaluate={"bootstrap": 20, "external": [{"name": "again", "index": tiny_data["index"]}]})
    out = tmp_path / "out"
    run_study(study, out)
    preds = pd.read_csv(out / "runs" / "a-s0" / "predictions" / "external_again.csv")
    assert len(preds) == 96  # every image of the external index
    report = read_json(out / "report" / "study_report.json")
    assert report["external"]["again"]["counts"]["images"] == 96
    md = (out / "report" / "report.md").read_text()
    assert "External test set: again" in md
    lint_report(md)


def test_arms_option_runs_only_the_named_arms(tmp_path, tiny_data, capsys):
    out = tmp_path / "out"
    study = _study(tmp_path, tiny_data)
    assert main(["study", "run", str(study), "--out", str(out), "--arms", "b", "--no-report"]) == 0
    assert [r["state"] for r in study_status(out)] == ["to do", "done"]
    assert main(["study", "run", str(tmp_path / "s.yaml"), "--out", str(out), "--arms", "zz"]) == 2
    assert "--arms zz: not an arm" in capsys.readouterr().err


def test_data_root_is_indexed_split_audited_and_cached_once(tmp_path):
    from cxrlab.data.phantom import make_phantom

    root = make_phantom(tmp_path / "phantom", n=80, size=64, seed=0)
    study = write_study(tmp_path / "s.yaml", {"root": str(root), "format": "csv", "cache_size": 64, "val": 0.25,
                                              "test": 0.25}, arms=[{"name": "a"}])
    out = tmp_path / "out"
    run_study(study, out, report=False)
    ready = read_json(out / "data" / "ready.json")
    assert ready["paths"]["index"].endswith("index") and (out / "data" / "cache" / "meta.json").exists()
    stamp = (out / "data" / "ready.json").stat().st_mtime_ns
    assert run_study(study, out, report=False) == {"a-s0": "skipped"}
    assert (out / "data" / "ready.json").stat().st_mtime_ns == stamp  # prepared once


def test_a_run_locked_by_another_process_is_left_to_it(tmp_path, tiny_data):
    """Two selections that share a run (e.g. --arms a next to the whole study): the second leaves it alone."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    study, out = _study(tmp_path, tiny_data, arms=[{"name": "a"}]), tmp_path / "out"
    code = ("import sys, time; from cxrlab.locks import folder_lock\n"
            "with folder_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)")
    src = str(Path(__file__).parents[2] / "src")
    holder = subprocess.Popen([sys.executable, "-c", code, str(out / "runs" / "a-s0")], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": src})
    try:
        assert holder.stdout.readline().strip() == "held"
        assert run_study(study, out, report=False) == {"a-s0": "busy"}
        assert not (out / "runs" / "a-s0" / "checkpoints").exists() and not (out / "status" / "a-s0.json").exists()
    finally:
        holder.kill()
        holder.wait()
