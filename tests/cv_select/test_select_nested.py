"""Nested selection (``cxrlab.selection``) with a fake ``fit``: no training, canned predictions of the fold split.

The fake writes what a real run writes for selection (manifest, predictions of the inner val and of the test
split, best.json), with probabilities chosen by the candidate's ``name`` (``behaviour``), so each property of the
protocol is checked against what is known by construction, not against the code's own output."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest

import cxrlab.train
from cxrlab.config import load_config
from cxrlab.data.index import load_index
from cxrlab.data.phantom import make_phantom_index
from cxrlab.data.splits import load_split
from cxrlab.errors import CxrlabError
from cxrlab.predictions import Predictions, write_predictions
from cxrlab.selection import Candidate, run_selection
from cxrlab.utils import write_json


def behaviour(name: str, y: np.ndarray, is_test: np.ndarray, seed: int) -> np.ndarray:
    """Canned probabilities (N, C) for a candidate named ``name`` (its prefix says how it behaves)."""
    rng = np.random.default_rng(seed)
    noise = rng.random(y.shape)
    y = np.nan_to_num(y)
    if name.startswith("cheat"):  # perfect on the outer fold (test rows), pure noise on the inner val
        return np.where(is_test[:, None], 0.1 + 0.8 * y, noise)
    if name.startswith("fair"):  # the same moderate skill everywhere
        return np.clip(0.35 * y + 0.65 * noise, 0, 1)
    return noise  # "noise...": nothing learned


class FakeFit:
    """Stands in for ``cxrlab.train.fit``; records every training it is asked for."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[str] = []
        self.fail_on = fail_on

    def __call__(self, cfg, run_dir, resume: bool = False):
        self.calls.append(cfg.name)
        if self.fail_on is not None and cfg.name == self.fail_on:
            self.fail_on = None  # fails once, like an interrupted job
            (run_dir / "checkpoints").mkdir(parents=True)
            (run_dir / "checkpoints" / "last_state.pt").write_bytes(b"")
            raise KeyboardInterrupt
        index = load_index(cfg.data.index)
        frame = index.frame.set_index("image_id")
        split = load_split(cfg.data.split)
        seed = zlib.crc32(cfg.name.encode())
        for part in ("val", "test"):
            ids = split.loc[split["split"] == part, "image_id"].astype(str).tolist()
            y = frame.loc[ids, index.classes].to_numpy(dtype=float)
            probs = behaviour(cfg.name, y, np.full(len(ids), part == "test"), seed + (part == "test"))
            write_predictions(run_dir / "predictions" / f"{part}.csv",
                              Predictions(ids, probs, list(index.classes), {"task": index.task, "split": part},
                                          frame.loc[ids, "patient_id"].astype(str).tolist()))
        write_json(run_dir / "checkpoints" / "best.json", {"val_metric": 0.5})
        write_json(run_dir / "manifest.json", {"fake": True})
        return run_dir


@pytest.fixture
def fake_fit(monkeypatch):
    fake = FakeFit()
    monkeypatch.setattr(cxrlab.train, "fit", fake)
    return fake


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    root = tmp_path_factory.mktemp("ph")
    make_phantom_index(root, n=240, size=32, seed=0)
    return root / "index"


def candidate(name: str, index, tmp, tta: str = "none", recipe: str | None = None, **sets) -> Candidate:
    """A candidate whose training recipe is its own (a learning rate unique to ``recipe`` or its name)."""
    lr = 1e-3 * (1 + zlib.crc32((recipe or name).encode()) / 2**32)
    overrides = [f"name={name}", f"data.index={index}", f"data.split={tmp / 'nosplit.csv'}", "model.name=cnn_gap",
                 f"train.lr={lr!r}"]
    return Candidate(name, load_config(None, overrides + [f"{k}={v}" for k, v in sets.items()]), tta)


def test_winner_is_chosen_without_the_outer_fold(fake_fit, phantom, tmp_path):
    """"cheat" is perfect on every outer fold but noise on the inner sets: it must never win, and the outer
    estimate is fair's skill, not cheat's perfection. The diagnostic (every candidate scored on the outer folds
    after the choice) is where cheat shows up as "best"."""
    cands = [candidate("cheat", phantom, tmp_path), candidate("fair", phantom, tmp_path)]
    summary = run_selection(cands, folds=3, out=tmp_path / "sel")
    assert [f["winner"] for f in summary["folds"]] == ["fair"] * 3
    assert summary["wins"] == {"cheat": 0, "fair": 3}
    assert 0.6 < summary["outer"]["mean"] < 0.95
    assert summary["plain_selection"]["best"] == "cheat" and summary["plain_selection"]["best_mean"] > 0.99
    assert summary["chosen"]["candidate"] == "fair"
    oof = pd.read_csv(tmp_path / "sel" / "oof.csv")
    split = load_split(tmp_path / "sel" / "split.csv")
    assert sorted(oof["image_id"]) == sorted(split.loc[split["split"] != "test", "image_id"])  # each image once
    assert (tmp_path / "sel" / "select.md").read_text().startswith("Outer estimate (honest)")


def test_noise_labels_give_a_chance_outer_estimate(fake_fit, phantom, tmp_path):
    """Many candidates, none with skill: the nested outer estimate stays near 0.5, while reporting the best
    candidate's CV mean (plain selection) is optimistic."""
    cands = [candidate(f"noise{i}", phantom, tmp_path) for i in range(20)]
    summary = run_selection(cands, folds=3, out=tmp_path / "sel")
    # ~60 outer images of 4 classes per fold: a candidate's 3-fold mean has sd ~0.02 around 0.5, so the nested
    # estimate stays within 3 sd of 0.5 while the best of 20 means sits ~1.9 sd above it (expected max of 20)
    assert abs(summary["outer"]["mean"] - 0.5) < 0.06
    assert abs(summary["outer"]["pooled_oof"] - 0.5) < 0.05
    assert summary["plain_selection"]["best_mean"] > 0.515
    assert summary["plain_selection"]["best_mean"] > summary["outer"]["mean"] + 0.03


def test_resume_skips_finished_trainings(monkeypatch, phantom, tmp_path):
    """An interrupted fold training is resumed, finished ones are not redone, and the summary is unchanged."""
    fake = FakeFit(fail_on="fair-fold1")
    monkeypatch.setattr(cxrlab.train, "fit", fake)
    cands = [candidate("cheat", phantom, tmp_path), candidate("fair", phantom, tmp_path)]
    with pytest.raises(KeyboardInterrupt):
        run_selection(cands, folds=3, out=tmp_path / "sel")
    assert fake.calls == ["cheat-fold0", "fair-fold0", "cheat-fold1", "fair-fold1"]
    (tmp_path / "sel" / "fold1" / "fair.cost.json").unlink()  # as if killed hard: that part of its cost is lost
    first = run_selection(cands, folds=3, out=tmp_path / "sel")
    assert fake.calls[4:] == ["fair-fold1", "cheat-fold2", "fair-fold2"]
    costs = [sorted(f["train_cpu_seconds"]) for f in first["folds"]]
    assert costs == [["cheat", "fair"], ["cheat"], ["cheat", "fair"]]  # an incomplete measurement is left out
    again = run_selection(cands, folds=3, out=tmp_path / "sel")
    assert len(fake.calls) == 7 and again["outer"] == first["outer"]


def test_one_fold_at_a_time_then_the_summary(fake_fit, phantom, tmp_path):
    cands = [candidate("cheat", phantom, tmp_path), candidate("fair", phantom, tmp_path)]
    for k in range(3):
        assert run_selection(cands, folds=3, out=tmp_path / "sel", only_fold=k)["fold"]["fold"] == k
    assert not (tmp_path / "sel" / "select.json").exists() and len(fake_fit.calls) == 6
    assert run_selection(cands, folds=3, out=tmp_path / "sel")["wins"]["fair"] == 3
    assert len(fake_fit.calls) == 6


def test_tta_candidates_share_the_trained_model(fake_fit, phantom, tmp_path, monkeypatch):
    """A TTA variant trains nothing: one training per fold and recipe, TTA predictions made from that run."""
    import cxrlab.selection as sel
    from cxrlab.predictions import read_predictions, run_predictions_path

    asked = []

    def tta_predict(run_dir, split, tta):
        asked.append((run_dir.name, split, tta))
        preds = read_predictions(run_predictions_path(run_dir, split))
        preds.probs = np.clip(preds.probs * 0.9, 0, 1)
        return preds

    monkeypatch.setattr(sel, "predict_split", tta_predict)
    cands = [candidate("fair", phantom, tmp_path),
             candidate("fair_tta", phantom, tmp_path, tta="shifts", recipe="fair"),
             candidate("cheat", phantom, tmp_path)]
    summary = run_selection(cands, folds=3, out=tmp_path / "sel", diagnostic=False)
    assert sorted(fake_fit.calls) == sorted(f"{n}-fold{k}" for n in ("fair", "cheat") for k in range(3))
    assert {a[0] for a in asked if a[2] == "shifts"} == {"fair"}
    assert len(summary["folds"]) == 3 and "plain_selection" not in summary


def test_inner_predictions_holding_outer_images_are_refused(fake_fit, phantom, tmp_path, monkeypatch):
    import cxrlab.selection as sel
    from cxrlab.predictions import read_predictions, run_predictions_path

    def leaky(run_dir, split, tta):  # "val" predictions that include the outer fold
        val, test = (read_predictions(run_predictions_path(run_dir, s)) for s in ("val", "test"))
        return Predictions(val.image_ids + test.image_ids, np.concatenate([val.probs, test.probs]), val.classes)

    monkeypatch.setattr(sel, "predict_split", leaky)
    cands = [candidate("fair", phantom, tmp_path), candidate("cheat", phantom, tmp_path)]
    with pytest.raises(CxrlabError, match="inner validation predictions hold .* of the outer fold or the test"):
        run_selection(cands, folds=3, out=tmp_path / "sel")


def test_rerun_with_other_settings_is_refused(fake_fit, phantom, tmp_path):
    cands = [candidate("cheat", phantom, tmp_path), candidate("fair", phantom, tmp_path)]
    run_selection(cands, folds=3, out=tmp_path / "sel", only_fold=0)
    with pytest.raises(CxrlabError, match="folds=3, now 2"):
        run_selection(cands, folds=2, out=tmp_path / "sel")
    changed = [candidate("cheat", phantom, tmp_path, **{"train.lr": 0.01}), cands[1]]
    with pytest.raises(CxrlabError, match="candidate cheat was trained there with other settings"):
        run_selection(changed, folds=3, out=tmp_path / "sel")
