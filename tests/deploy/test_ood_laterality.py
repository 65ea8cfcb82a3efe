"""The laterality term of the orientation check and the per-run tone bins: statistics against independent
computations, the false-flag budget by simulation, mirrored films flagged, old gate files still loading."""

from __future__ import annotations

import numpy as np
import pytest

from cxrlab.deploy.laterality import SIDE, LateralityCheck, antisymmetric
from cxrlab.deploy.laterality_net import PREFIX
from cxrlab.deploy.ood import OodGate, assess
from cxrlab.deploy.orientation import thumbnails
from cxrlab.deploy.tones import GRID, choose_bins, tone_statistics
from cxrlab.errors import CxrlabError

from .test_ood import _films


def _brute_antisymmetric(thumb: np.ndarray) -> np.ndarray:
    """Independent, pixel by pixel: central/one-sided differences, 2x2 block means, z-score, left minus mirror."""
    t = thumb.reshape(64, 64).astype(np.float64)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    g = np.zeros((64, 64))
    for y in range(64):
        for x in range(64):
            dy = (t[min(y + 1, 63), x] - t[max(y - 1, 0), x]) / (2 if 0 < y < 63 else 1)
            dx = (t[y, min(x + 1, 63)] - t[y, max(x - 1, 0)]) / (2 if 0 < x < 63 else 1)
            g[y, x] = (dx * dx + dy * dy) ** 0.5
    b = np.array([[g[2 * i : 2 * i + 2, 2 * j : 2 * j + 2].mean() for j in range(SIDE)] for i in range(SIDE)])
    b = (b - b.mean()) / b.std()
    return np.array([[b[i, j] - b[i, SIDE - 1 - j] for j in range(SIDE // 2)] for i in range(SIDE)]).ravel()


def test_antisymmetric_part_matches_a_pixel_loop_and_mirroring_negates_the_logit():
    thumbs = np.random.default_rng(0).random((3, 64 * 64)).astype(np.float32)
    for t, a in zip(thumbs, antisymmetric(thumbs), strict=True):
        np.testing.assert_allclose(a, _brute_antisymmetric(t), atol=1e-4)
    check = LateralityCheck(np.random.default_rng(1).normal(size=SIDE * SIDE // 2).astype(np.float32))
    mirrored = thumbs.reshape(3, 64, 64)[:, :, ::-1].reshape(3, -1)
    np.testing.assert_allclose(check.logit(mirrored), -check.logit(thumbs), atol=1e-4)  # exactly sign-symmetric


@pytest.mark.parametrize("bins", [(8, 4), GRID[0], GRID[-1]])
def test_tone_statistics_match_numpy_histograms(bins):
    thumbs = np.stack([t.ravel() for t in _films(4, seed=3)] + [np.random.default_rng(0).random(64 * 64)])
    for t, stats in zip(thumbs, tone_statistics(thumbs, bins), strict=True):
        n = (t - t.min()) / (t.max() - t.min())
        gy, gx = np.gradient(n.reshape(64, 64))
        tones = np.cumsum(np.histogram(n, bins=bins[0], range=(0, 1))[0])[:-1] / n.size
        edges = np.cumsum(np.histogram(np.hypot(gx, gy), bins=bins[1], range=(0, 0.2))[0]) / n.size
        np.testing.assert_allclose(stats, np.concatenate([tones, edges]), atol=1e-6)


def test_tone_bins_are_chosen_from_the_grid_on_validation_outliers():
    bins, table = choose_bins(thumbnails(_films(30, seed=4)))
    assert bins in GRID and set(table) == set(GRID)
    assert table[bins] == max(table.values()) and all(0 <= v <= 1 for v in table.values())


@pytest.fixture(scope="module", params=["linear", "cnn"])
def fitted(request):
    """A gate with each laterality model: the default linear one and the network (trained on 40 more films as the
    run's "training images")."""
    val = _films(60, seed=1)
    feats = np.random.default_rng(5).normal(size=(200, 16)).astype(np.float32)
    extra = thumbnails(_films(40, seed=11)) if request.param == "cnn" else None
    gate = OodGate.fit(feats[:60], thumbnails=thumbnails(val), alpha=0.03, laterality=request.param,
                       laterality_thumbnails=extra)
    assert gate.summary()["laterality_model"] == request.param
    return gate, feats


def test_mirrored_films_are_flagged_and_upright_ones_are_not(fitted, tmp_path):
    from dataclasses import replace

    gate, feats = fitted
    assert gate.summary()["laterality_weight"] == gate.orientation.weight
    test = _films(40, seed=2)
    mirrored = [t[:, ::-1] for t in test]
    lat = gate.orientation.laterality  # the laterality check alone: upright films negative, mirrored positive
    assert (lat.logit(thumbnails(test)) < 0).mean() >= 0.9 and (lat.logit(thumbnails(mirrored)) > 0).mean() >= 0.9

    def flagged(images, g=gate):
        return assess(g, feats[60 : 60 + len(images)], None, thumbnails(images))

    assert np.mean([o["flagged"] for o in flagged(test)]) <= 0.1
    assert np.mean([o["flagged"] for o in flagged(mirrored)]) >= 0.9  # by whichever term the weight chose
    leaning = replace(gate, orientation=replace(gate.orientation, weight=1.0, threshold=0.3))
    assert any("flipped left-right" in r for o in flagged(mirrored, leaning) for r in o["reasons"])
    loaded = OodGate.load(gate.save(tmp_path / "g.safetensors"))
    assert loaded.summary() == gate.summary() and loaded.tones.bins == gate.tones.bins
    np.testing.assert_allclose(loaded.orientation.upright(thumbnails(test)), gate.orientation.upright(thumbnails(test)),
                               rtol=1e-5)


def test_a_gate_saved_before_the_laterality_term_and_tone_bins_still_loads(fitted, tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import save_file

    gate, _ = fitted
    path = gate.save(tmp_path / "new.safetensors")
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        old = {k: f.get_tensor(k) for k in f.keys()  # noqa: SIM118
               if k not in ("orientation.laterality", "orientation.laterality_weight", "tones.bins")
               and not k.startswith(PREFIX)}
    save_file(old, str(tmp_path / "old.safetensors"), metadata=meta)
    loaded = OodGate.load(tmp_path / "old.safetensors")
    assert loaded.orientation.laterality is None and loaded.orientation.weight == 0.0 and loaded.tones.bins == (8, 4)
    thumbs = thumbnails(_films(5, seed=9))
    np.testing.assert_allclose(loaded.orientation.upright(thumbs), loaded.orientation.probabilities(thumbs)[:, 0])


def test_a_gate_saved_with_the_linear_laterality_check_still_loads_and_scores_as_it_did(fitted, tmp_path):
    """Gates saved between the linear laterality check and the network: coefficients on the antisymmetric
    gradients and a weight w; p(upright) = p9(upright) * sigmoid(-a @ coef) ** w, recomputed here by hand."""
    import json

    from safetensors import safe_open
    from safetensors.numpy import save_file

    gate, _ = fitted
    path = gate.save(tmp_path / "new.safetensors")
    coef = np.random.default_rng(3).normal(0, 0.3, SIDE * SIDE // 2).astype(np.float32)
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        old = {k: f.get_tensor(k) for k in f.keys() if not k.startswith(PREFIX)}  # noqa: SIM118
    old.update({"orientation.laterality": coef, "orientation.laterality_weight": np.array([0.5], np.float32)})
    summary = json.loads(meta["cxrlab"])
    for key in ("laterality_model", "laterality_images", "laterality_combine"):  # what those files did not record
        summary.pop(key)
    save_file(old, str(tmp_path / "linear.safetensors"), metadata={"cxrlab": json.dumps(summary)})
    loaded = OodGate.load(tmp_path / "linear.safetensors")
    assert isinstance(loaded.orientation.laterality, LateralityCheck) and loaded.orientation.weight == 0.5
    assert loaded.summary()["laterality_model"] == "linear"
    thumbs = thumbnails(_films(5, seed=9))
    p9 = loaded.orientation.probabilities(thumbs)[:, 0]
    z = np.array([_brute_antisymmetric(t) @ coef for t in thumbs])
    np.testing.assert_allclose(loaded.orientation.upright(thumbs), p9 * (1 / (1 + np.exp(z))) ** 0.5, rtol=1e-4)


@pytest.mark.slow  # two gates, three laterality-network trainings each: about 22 s
def test_the_whole_gate_keeps_its_union_false_flag_budget_by_simulation():
    """Fitted on 100 phantom films at alpha = 5% (all checks, laterality included), flags about 5% or less of 300
    fresh films of the same kind, averaged over 2 fits."""
    rng = np.random.default_rng(0)
    rates = []
    for seed in (11, 12):
        films = thumbnails(_films(400, seed=seed))
        feats = rng.normal(size=(400, 8)).astype(np.float32)
        gate = OodGate.fit(feats[:100], thumbnails=films[:100], alpha=0.05)
        rates.append(np.mean([o["flagged"] for o in assess(gate, feats[100:], None, films[100:])]))
    assert np.mean(rates) <= 0.05 + 0.03  # binomial noise of 600 draws and two fits


@pytest.mark.slow  # trains a tiny run and exports it: about 20 s on a busy machine
def test_the_exported_gate_carries_the_laterality_term_and_tone_bins(tmp_path):
    """``cxrlab export`` stores the whole gate; ``cxrlab serve MODEL.onnx`` loads the same checks."""
    from cxrlab.deploy.export import export_run
    from cxrlab.serve.model import ServedModel
    from tests.deploy.conftest import make_run

    run, _ = make_run(tmp_path, n=80)  # 16 validation images: enough for the image checks
    contract = export_run(run, tmp_path / "model.onnx", ood_laterality="cnn")
    assert contract["ood"]["laterality_weight"] is not None and contract["ood"]["orientation_threshold"] is not None
    assert contract["ood"]["laterality_model"] == "cnn" and contract["ood"]["laterality_combine"] == "max"
    assert contract["ood"]["laterality_images"] > 16  # the validation images and the run's training images
    gate = ServedModel(tmp_path / "model.onnx").gate
    assert gate.orientation.laterality is not None and gate.tones.bins in GRID
    assert gate.summary() == {k: v for k, v in contract["ood"].items() if k != "file"}
    with pytest.raises(CxrlabError, match="--ood-laterality applies when serving a run"):
        ServedModel(tmp_path / "model.onnx", laterality="cnn")
    served = ServedModel(run)  # a run served: the gate fitted here, with the default linear laterality check
    assert served.gate.summary()["laterality_model"] == "linear" and served.gate.summary()["laterality_images"] is None


@pytest.mark.slow  # trains the benchmark's tiny phantom run: about 30 s on a busy machine
def test_the_validation_study_writes_its_figures_without_reading_the_test_split():
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[2] / "benchmarks"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(bench.parent / "src")}
    done = subprocess.run([sys.executable, str(bench / "bench_ood.py"), "--quick", "--validation"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(Path(done.stdout.strip().splitlines()[-1].removeprefix("results: ")).read_text())
    assert result["inputs"]["tones_bins_chosen"] in [list(b) for b in GRID]
    assert {"laterality_auc_gradients_32", "laterality_auc_backbone_features", "laterality_weight",
            "flipped_left_right_caught_weight_0", "laterality_auc_cnn_train_val", "laterality_auc_cnn_val_only",
            "orientation_fit_seconds"} <= set(result["figures"])
    assert result["inputs"]["n_training_for_laterality"] > 0
    assert "test" not in {k.split("_")[0] for k in result["figures"]}


def test_an_unknown_laterality_model_is_one_line():
    with pytest.raises(CxrlabError, match="laterality model 'svm' is not one of linear, cnn"):
        OodGate.fit(np.zeros((20, 4), np.float32), thumbnails=thumbnails(_films(12, seed=1)), laterality="svm")
