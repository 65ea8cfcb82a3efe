"""The study file and its plan: validation, sweeps x seeds, names, reference, shards (no training)."""

from __future__ import annotations

import pytest
from study_helpers import write_study

from cxrlab.errors import CxrlabError
from cxrlab.study.plan import make_plan, parse_shard, shard_runs
from cxrlab.study.spec import load_study, shipped_studies


def _plan(tmp_path, **fields):
    return make_plan(load_study(write_study(tmp_path / "s.yaml", **fields)))


def test_sweep_crossed_with_arms_and_seeds(tmp_path):
    plan = _plan(tmp_path, arms=[{"name": "a"}, {"name": "b", "set": {"train.lr": 0.01}}],
                 sweep={"data.image_size": [64, 96], "loss.name": ["bce", "focal"]}, seeds=[0, 1, 2],
                 reference="a,image_size=64,loss=bce")
    assert len(plan.arms) == 2 * 2 * 2 and len(plan.runs) == 8 * 3
    assert plan.arms[0].name == "a,image_size=64,loss=bce"
    assert plan.arms[-1].name == "b,image_size=96,loss=focal"
    run = next(r for r in plan.runs if r.name == "b,image_size=96,loss=focal-s2")
    assert (run.config.data.image_size, run.config.loss.name, run.config.train.lr, run.config.train.seed) == (
        96, "focal", 0.01, 2)
    assert plan.reference == "a,image_size=64,loss=bce"
    assert plan.diff(run) == {"data.image_size": (64, 96), "loss.name": ("auto", "focal"), "train.lr": (0.003, 0.01)}


def test_sweep_names_are_short_and_colliding_keys_keep_their_full_names(tmp_path):
    plan = _plan(tmp_path, sweep={"loss.name": ["bce"], "model.name": ["cnn_gap", "cnn_baseline"]})
    assert [a.name for a in plan.arms] == ["loss=bce,model=cnn_gap", "loss=bce,model=cnn_baseline"]
    plan = _plan(tmp_path, sweep={"optim.weight_decay": [0.1], "schedule.factor": [0.5], "loss.gamma": [2]})
    assert plan.arms[0].name == "weight_decay=0.1,factor=0.5,gamma=2"
    plan = _plan(tmp_path, sweep={"loss.gamma_pos": [1], "loss.params": [{}], "model.drop_rate": [0.1, 0.2]})
    assert plan.arms[1].name == "gamma_pos=1,params=__,drop_rate=0.2"


def test_no_arms_no_sweep_is_the_base(tmp_path):
    plan = _plan(tmp_path, seeds=[3])
    assert [r.name for r in plan.runs] == ["base-s3"] and plan.runs[0].config.train.epochs == 1


def test_command_line_set_and_smoke_come_last(tmp_path):
    study = load_study(write_study(tmp_path / "s.yaml", arms=[{"name": "a", "set": {"train.epochs": 5}}], seeds=[0, 1]))
    plan = make_plan(study, cli_set=["train.lr=0.5"], smoke=True)
    assert [r.name for r in plan.runs] == ["a-s0"]
    assert plan.runs[0].config.train.lr == 0.5 and plan.runs[0].config.train.epochs == 1


def test_images_seen_budget_becomes_epochs(tmp_path):
    study = load_study(write_study(tmp_path / "s.yaml", budget={"images": 1000}))
    assert make_plan(study, n_train=200).runs[0].config.train.epochs == 5


@pytest.mark.parametrize("fields, message", [
    ({"arms": [{"name": "a"}, {"name": "a"}]}, "duplicate arm names a"),
    ({"arms": [{"name": "a", "set": {"train.epoch": 2}}]}, "did you mean 'train.epochs'"),
    ({"arms": [{"name": "a", "recipe": "configs/nope.yaml"}]}, "does not exist"),
    ({"sweep": {"train.lr": [0.1, -1]}}, "train.lr: -1.0 is outside (0, 10"),
    ({"sweep": {"model.name": ["resnet99"]}}, "unknown model 'resnet99'"),
    ({"sweep": {"loss.name": ["focl"]}}, "did you mean 'focal'"),
    ({"arms": [{"name": "a"}], "reference": "b"}, "reference 'b' is not an arm"),
    ({"arms": [{"name": "a"}, {"name": "b"}], "ensembles": [{"name": "e", "members": ["a", "c"]}]}, "c not an arm"),
    ({"armz": []}, "did you mean 'arms'"),
    ({"evaluate": {"bootstrp": 3}}, "did you mean 'evaluate.bootstrap'"),
])
def test_bad_study_is_one_line_error(tmp_path, fields, message):
    with pytest.raises(CxrlabError, match=message.replace("(", r"\(")) as err:
        _plan(tmp_path, **fields)
    assert "\n" not in str(err.value)


def test_shards_cover_every_run_exactly_once(tmp_path):
    plan = _plan(tmp_path, sweep={"train.lr": [0.001, 0.002, 0.003]}, seeds=[0, 1, 2, 4])
    for n in (1, 2, 3, 5, 12, 13):
        names = [r.name for i in range(1, n + 1) for r in shard_runs(plan.runs, parse_shard(f"{i}/{n}"))]
        assert sorted(names) == sorted(r.name for r in plan.runs)
    assert shard_runs(plan.runs, (2, 3)) == shard_runs(plan.runs, (2, 3))  # deterministic


@pytest.mark.parametrize("text", ["3/2", "0/2", "1/0", "a/b", "2"])
def test_bad_shard(text):
    with pytest.raises(CxrlabError, match="--shard"):
        parse_shard(text)


def test_shipped_studies_parse_and_expand():
    names = shipped_studies()
    assert {"s1_paper_nih.yaml", "s2_improvements_nih.yaml", "s3_lab_a_pneumonia4.yaml", "s4_lab_b_pneumonia4.yaml",
            "ablation_loss_imagesize.yaml", "cpu_small.yaml"} <= set(names)
    for name in names:
        plan = make_plan(load_study(f"studies/{name}"))
        assert plan.runs and (plan.reference is None or plan.reference in [a.name for a in plan.arms])
    s4 = make_plan(load_study("studies/s4_lab_b_pneumonia4.yaml"))
    assert len(s4.arms) == 16 and s4.study.sweep == {"data.image_size": [320, 352, 384, 512]}
