"""Internal vs external results: unpaired differences with independent patient bootstraps."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cxrlab.data.index import load_index
from cxrlab.evaluate.external import internal_vs_external
from cxrlab.evaluate.matching import load_scored

from .conftest import make_dataset


def test_internal_vs_external_is_unpaired(tmp_path):
    a = make_dataset(tmp_path / "int", "multilabel", n=240, seed=0)
    b = make_dataset(tmp_path / "ext", "multilabel", n=300, seed=5)
    internal, _ = load_scored(a["test"], labels=load_index(a["index"]))
    external, _ = load_scored(b["test"], labels=load_index(b["index"]))
    block = internal_vs_external(external, internal, replicates=200, exclude=("No Finding",))
    assert "unpaired" in block["method"] and "DeLong" in block["method"]
    for i, c in enumerate(a["classes"]):
        want_int = roc_auc_score(a["y"][: a["cut"], i], a["p"][: a["cut"], i])
        want_ext = roc_auc_score(b["y"][: b["cut"], i], b["p"][: b["cut"], i])
        got = block["classes"][c]
        assert got["internal"] == pytest.approx(want_int) and got["external"] == pytest.approx(want_ext)
        assert got["difference"] == pytest.approx(want_ext - want_int)
        lo, hi = got["difference_ci"]
        assert lo < got["difference"] < hi and hi - lo > 0.02
    macro = block["macro"]
    assert macro["classes"] == a["classes"][:3]
    assert macro["difference"] == pytest.approx(macro["external"] - macro["internal"])
    assert np.isfinite(macro["difference_ci"]).all()


def test_each_side_draws_evaluates_stratified_bootstrap(tmp_path, monkeypatch):
    """Both sides are resampled with evaluate's own weights (stratified by each patient's rarest class), each
    from its own patients and with its own seed."""
    from cxrlab.evaluate import metrics

    a = make_dataset(tmp_path / "int", "multilabel", n=120, seed=0)
    b = make_dataset(tmp_path / "ext", "multilabel", n=150, seed=5)
    internal, _ = load_scored(a["test"], labels=load_index(a["index"]))
    external, _ = load_scored(b["test"], labels=load_index(b["index"]))
    seen = []
    real = metrics.bootstrap_weights
    monkeypatch.setattr(metrics, "bootstrap_weights", lambda s, r, seed: seen.append((s, r, seed)) or real(s, r, seed))
    internal_vs_external(external, internal, replicates=30, seed=4)
    assert [(s is external, r, seed) for s, r, seed in seen] == [(True, 30, 4), (False, 30, 5)]
    assert seen[1][0] is internal


def test_evaluate_internal_option_and_report(tmp_path):
    from cxrlab.cli import main

    a = make_dataset(tmp_path / "int", "multilabel", n=240, seed=0)
    b = make_dataset(tmp_path / "ext", "multilabel", n=300, seed=5)
    out = tmp_path / "ev"
    assert main(["evaluate", str(b["test"]), "--labels", str(b["index"]), "--internal", str(a["test"]),
                 "--internal-labels", str(a["index"]), "--bootstrap", "50", "--out", str(out)]) == 0
    import json

    block = json.loads((out / "metrics.json").read_text())["internal_vs_external"]
    assert set(block["classes"]) == set(a["classes"]) and block["replicates"] == 50
    assert "Internal vs external (unpaired)" in (out / "report.md").read_text()
