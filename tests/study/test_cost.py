"""The cost measurement (forward pass only, one thread set and restored, load recorded) and its switch; CPU
thread budgets; data that is missing is named by ``--dry-run`` and leaves no study folder behind."""

from __future__ import annotations

import pytest
import torch
from study_helpers import write_study

import cxrlab.utils
from cxrlab.cli import main
from cxrlab.config import load_config
from cxrlab.study.cost import COST_THREADS, measure_cost
from cxrlab.utils import cpu_threads


def test_cost_is_measured_on_one_thread_and_restores_the_count():
    cfg = load_config(None, ["model.name=cnn_gap", "data.image_size=32", "model.in_chans=1"])
    torch.set_num_threads(2)
    cost = measure_cost(cfg, ["a", "b"])
    assert torch.get_num_threads() == 2
    assert cost["cpu_threads"] == COST_THREADS == 1
    assert cost["cpu_latency_ms_b1"] > 0 and cost["cpu_images_per_s_b32"] > 0
    assert len(cost["load_average_before"]) == 3 and len(cost["load_average_after"]) == 3


def test_threads_and_workers_never_exceed_the_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cxrlab.utils, "available_cores", lambda: 4)
    assert cpu_threads() == 4
    assert cpu_threads(workers=1) == 3
    assert cpu_threads(workers=0, processes=2) == 2  # two torchrun ranks share the cores
    assert cpu_threads(workers=8) == 1  # never below one
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cpu_threads() == 1  # the user's limit is an upper bound


def test_training_sets_its_threads_from_the_free_cores(monkeypatch):
    from cxrlab.train.fitting import _setup_torch

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cxrlab.utils, "available_cores", lambda: 3)
    cfg = load_config(None, ["data.num_workers=1"])
    _setup_torch(cfg, torch.device("cpu"))
    assert torch.get_num_threads() == 2
    cfg = load_config(None, ["data.num_workers=1", "train.threads=1"])
    _setup_torch(cfg, torch.device("cpu"))
    assert torch.get_num_threads() == 1


def test_no_cost_skips_the_measurement(tmp_path, tiny_data):
    study = write_study(tmp_path / "s.yaml", tiny_data, arms=[{"name": "a"}])
    out = tmp_path / "out"
    assert main(["study", "run", str(study), "--out", str(out), "--no-cost", "--no-report"]) == 0
    assert (out / "runs" / "a-s0" / "predictions" / "test.csv").exists()
    assert not (out / "runs" / "a-s0" / "cost.json").exists()
    assert "load_average_end" in (out / "status" / "a-s0.json").read_text()


@pytest.mark.parametrize("dry_run", [True, False])
def test_missing_data_root_is_named_and_leaves_no_folder(tmp_path, capsys, dry_run):
    study = write_study(tmp_path / "s.yaml", {"root": str(tmp_path / "absent"), "format": "nih"})
    out = tmp_path / "out"
    assert main(["study", "run", str(study), "--out", str(out), *(["--dry-run"] if dry_run else [])]) == 2
    err = capsys.readouterr().err
    assert f"data.root {tmp_path / 'absent'} does not exist" in err and err.count("\n") == 1
    assert not out.exists()


def test_missing_index_is_named_by_the_dry_run(tmp_path, tiny_data, capsys):
    study = write_study(tmp_path / "s.yaml", {**tiny_data, "cache": str(tmp_path / "no_cache")})
    assert main(["study", "run", str(study), "--out", str(tmp_path / "out"), "--dry-run"]) == 2
    assert f"data.cache {tmp_path / 'no_cache'} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
