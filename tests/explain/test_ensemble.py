import numpy as np
import pytest
from explain_helpers import make_labels_index, write_preds

from cxrlab.cli import main
from cxrlab.ensemble import (
    combine,
    ensemble_predictions,
    fit_class_weights,
    fit_stacking,
    fit_weights,
    simplex_grid,
)
from cxrlab.errors import CxrlabError
from cxrlab.evaluate.metrics import macro_auroc as _macro_auroc
from cxrlab.predictions import read_predictions

CLASSES = ["A", "B"]


def macro_auroc(y, p):
    return _macro_auroc(y, p, CLASSES).value


def _synthetic(n, rng):
    """Member 0 sees class A well and B poorly; member 1 the opposite; member 2 is noise."""
    y = (rng.random((n, 2)) < 0.4).astype(float)
    good = lambda col: np.clip(0.5 + 0.35 * (y[:, col] - 0.5) + rng.normal(0, 0.12, n), 0, 1)  # noqa: E731
    bad = lambda: rng.random(n)  # noqa: E731
    m0 = np.stack([good(0), bad()], 1)
    m1 = np.stack([bad(), good(1)], 1)
    m2 = rng.random((n, 2))
    return y, np.stack([m0, m1, m2])


def _files(tmp_path, seed=0):
    rng = np.random.default_rng(seed)
    yv, sv = _synthetic(120, rng)
    yt, st = _synthetic(80, rng)
    vid = [f"v{i}" for i in range(120)]
    tid = [f"t{i}" for i in range(80)]
    labels = make_labels_index(tmp_path / "labels", vid, yv, CLASSES)  # validation labels only: test never read
    val = [write_preds(tmp_path / f"val{m}.csv", vid, sv[m], CLASSES, "val") for m in range(3)]
    test = [write_preds(tmp_path / f"test{m}.csv", tid, st[m], CLASSES, "test") for m in range(3)]
    return yv, sv, yt, st, labels, val, test


def test_simplex_grid_sums_to_one():
    g = simplex_grid(3, 0.1)
    assert np.allclose(g.sum(1), 1) and (g >= 0).all() and len(g) == 66


def test_class_weights_recover_known_best(tmp_path):
    yv, sv, *_ = _files(tmp_path)
    cw = fit_class_weights(sv, yv)
    assert cw[0].argmax() == 0 and cw[1].argmax() == 1
    assert cw[0, 0] > 0.6 and cw[1, 1] > 0.6


def test_weighted_improves_over_worst_member_and_ignores_noise(tmp_path):
    yv, sv, *_ = _files(tmp_path)
    w = fit_weights(sv, yv)
    members = [macro_auroc(yv, s) for s in sv]
    fitted = macro_auroc(yv, combine(sv, "weighted", {"weights": w}, "multilabel"))
    assert fitted > min(members) + 0.05
    assert w[2] < 0.3  # the noise member gets little weight


def test_stacking_learns_per_class_member_choice(tmp_path):
    yv, sv, yt, st, *_ = _files(tmp_path)
    params = fit_stacking(sv, yv, "multilabel")
    coef = np.asarray(params["coef"])
    assert coef[0].argmax() == 0 and coef[1].argmax() == 1
    test_auc = macro_auroc(yt, combine(st, "stack", params, "multilabel"))
    assert test_auc > max(macro_auroc(yt, s) for s in st)


@pytest.mark.parametrize("method", ["mean", "weighted", "class", "rank", "stack"])
def test_ensemble_file_end_to_end(tmp_path, method):
    yv, sv, yt, st, labels, val, test = _files(tmp_path)
    out = ensemble_predictions(test, out=tmp_path / "ens.csv", method=method, val=val, labels=labels)
    preds = read_predictions(out)
    assert preds.probs.shape == (80, 2) and preds.classes == CLASSES
    assert preds.meta["method"] == method and preds.meta["fitted_on_test"] is False
    assert "std:A" in preds.extra.columns  # member disagreement
    if method in ("class", "stack"):
        assert macro_auroc(yt, preds.probs) > max(macro_auroc(yt, s) for s in st)


def test_refuses_fitting_on_test(tmp_path):
    *_, labels, val, test = _files(tmp_path)
    with pytest.raises(CxrlabError, match="refusing to fit"):
        ensemble_predictions(test, out=tmp_path / "e.csv", method="weighted", val=test, labels=labels)
    # overridable, and recorded
    make_labels_index(tmp_path / "lt", [f"t{i}" for i in range(80)], np.ones((80, 2)) * (np.arange(80)[:, None] % 2),
                      CLASSES)
    out = ensemble_predictions(test, out=tmp_path / "e.csv", method="weighted", val=test, labels=tmp_path / "lt",
                               allow_test_fitting=True)
    assert read_predictions(out).meta["fitted_on_test"] is True


def test_different_image_sets_and_classes_are_named(tmp_path):
    rng = np.random.default_rng(1)
    a = write_preds(tmp_path / "a.csv", ["x", "y", "z"], rng.random((3, 2)), CLASSES, "test")
    b = write_preds(tmp_path / "b.csv", ["x", "y", "w"], rng.random((3, 2)), CLASSES, "test")
    c = write_preds(tmp_path / "c.csv", ["x", "y", "z"], rng.random((3, 2)), ["A", "C"], "test")
    with pytest.raises(CxrlabError, match=r"1 missing .*'z'.*1 extra .*'w'"):
        ensemble_predictions([a, b], out=tmp_path / "o.csv")
    with pytest.raises(CxrlabError, match=r"missing \['B'\].*extra \['C'\]"):
        ensemble_predictions([a, c], out=tmp_path / "o.csv")


def test_cli_ensemble(tmp_path, capsys):
    *_, labels, val, test = _files(tmp_path)
    out = tmp_path / "cli.csv"
    argv = ["ensemble", *map(str, test), "--val", *map(str, val), "--labels", str(labels), "--method", "class",
            "--out", str(out)]
    assert main(argv) == 0 and out.exists()
    assert main(["ensemble", *map(str, test), "--method", "stack", "--out", str(out)]) == 2
    assert "needs --val" in capsys.readouterr().err


def test_multiclass_stack_and_class_weights_give_distributions(tmp_path):
    rng = np.random.default_rng(3)
    n, classes = 150, ["normal", "bacteria", "virus"]
    truth = rng.integers(0, 3, n)
    y = np.eye(3)[truth]

    def member(sharp):
        logits = rng.normal(0, 1, (n, 3)) + sharp * y
        e = np.exp(logits)
        return e / e.sum(1, keepdims=True)

    ids = [f"i{i}" for i in range(n)]
    labels = make_labels_index(tmp_path / "l", ids, y, classes, task="multiclass")
    files = [write_preds(tmp_path / f"m{k}.csv", ids, member(s), classes, "val", task="multiclass")
             for k, s in enumerate([3.0, 0.0])]
    for method in ("stack", "class", "weighted"):
        # fitting on val and applying to the same val file is what --allow-test-fitting would flag; here the
        # members are val files, so write the output for the val set itself
        out = ensemble_predictions(files, out=tmp_path / f"{method}.csv", method=method, val=files, labels=labels,
                                   allow_test_fitting=True)
        p = read_predictions(out)
        assert np.allclose(p.probs.sum(1), 1, atol=1e-4)
        assert (p.probs.argmax(1) == truth).mean() > 0.6
