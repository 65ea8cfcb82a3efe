"""The generalisation matrix on synthetic predictions: cells against sklearn, the findings rule, paired drops,
and the bootstrap intervals and paired test checked by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cxrlab.study.matrix import SourceTestSet, generalisation_matrix

CLASSES = ["No Finding", "Effusion", "Nodule", "Opacity"]


def _test_set(name: str, n: int, labelled: list[str], rng) -> SourceTestSet:
    y = np.full((n, len(CLASSES)), np.nan)
    for c in labelled:
        y[:, CLASSES.index(c)] = rng.random(n) < 0.4
    patients = np.arange(n) // 2  # two images per patient
    return SourceTestSet(name, [f"{name}/{i}" for i in range(n)], y, patients, int(patients.max()) + 1)


def _scores(y: np.ndarray, signal: float, rng) -> np.ndarray:
    return np.nan_to_num(y, nan=0.0) * signal + rng.normal(size=y.shape)


@pytest.fixture
def setup():
    rng = np.random.default_rng(0)
    tests = [_test_set("a", 120, ["No Finding", "Effusion", "Nodule"], rng),
             _test_set("b", 100, ["No Finding", "Effusion", "Opacity"], rng)]
    y = np.vstack([t.labels for t in tests])
    preds = {"a": _scores(y, 2.0, rng), "b": _scores(y, 1.0, rng), "pooled": _scores(y, 1.5, rng)}
    trained = {"a": {"No Finding", "Effusion", "Nodule"}, "b": {"No Finding", "Effusion", "Opacity"},
               "pooled": set(CLASSES)}
    return tests, y, preds, trained


def test_cells_match_sklearn_and_follow_the_findings_rule(setup):
    tests, y, preds, trained = setup
    m = generalisation_matrix(tests, preds, CLASSES, trained, replicates=50)
    assert len(m.cells) == 3 * 2 and m.trains == ["a", "b", "pooled"] and m.tests == ["a", "b"]
    rows = {"a": slice(0, 120), "b": slice(120, 220)}
    expected = {("a", "a"): ["Effusion", "Nodule"], ("a", "b"): ["Effusion"], ("b", "a"): ["Effusion"],
                ("b", "b"): ["Effusion", "Opacity"], ("pooled", "a"): ["Effusion", "Nodule"],
                ("pooled", "b"): ["Effusion", "Opacity"]}  # No Finding left out; only findings both sides label
    for (train, test), findings in expected.items():
        cell = m.cell(train, test)
        assert cell.findings == findings
        aucs = [roc_auc_score(y[rows[test], CLASSES.index(f)], preds[train][rows[test], CLASSES.index(f)])
                for f in findings]
        assert cell.macro == pytest.approx(np.mean(aucs))
        assert cell.macro_ci[0] <= cell.macro <= cell.macro_ci[1]


def test_drops_are_paired_on_the_test_sources_images(setup):
    tests, y, preds, trained = setup
    m = generalisation_matrix(tests, preds, CLASSES, trained, replicates=200)
    drop = next(d for d in m.drops if d.test == "a" and d.external == "b")
    assert drop.findings == ["Effusion"]  # the findings both models score on a's test images
    a_rows = slice(0, 120)
    i = CLASSES.index("Effusion")
    internal = roc_auc_score(y[a_rows, i], preds["a"][a_rows, i])
    external = roc_auc_score(y[a_rows, i], preds["b"][a_rows, i])
    assert drop.drop == pytest.approx(internal - external) and drop.drop > 0.1  # signal 2.0 vs 1.0
    assert drop.ci[0] > 0 and drop.p_value < 0.05 and drop.pair_tests["Effusion"].p_value < 0.05
    assert {(d.test, d.external) for d in m.drops} == {("a", "b"), ("a", "pooled"), ("b", "a"), ("b", "pooled")}
    gap = next(g for g in m.row_gaps if g.train == "a" and g.external_test == "b")
    assert not gap.paired and gap.findings == ["Effusion"]


def test_matrix_report_reads_cleanly(setup, tmp_path):
    from report_lint import lint_report

    from cxrlab.study.matrix_report import write_matrix_report

    tests, _, preds, trained = setup
    m = generalisation_matrix(tests, preds, CLASSES, trained, replicates=50)
    write_matrix_report(m, tmp_path, {"study": "tiny", "finished_at": None, "seeds": [0], "lr": 0.0003})
    md = (tmp_path / "report" / "report.md").read_text()
    lint_report(md)
    assert "- lr: 0.0003" in md and "- finished at: none" in md


def test_simulation_interval_coverage_and_paired_test_size():
    """Binormal data with a known AUROC: the cell's 95% interval covers it in about 95% of samples, and the
    paired drop test of two equally good models rejects at about 5%."""
    from scipy.stats import norm

    rng = np.random.default_rng(3)
    signal = 1.0
    truth = norm.cdf(signal / np.sqrt(2))  # AUROC of N(signal, 1) vs N(0, 1)
    covered, rejected, sims = 0, 0, 120
    for k in range(sims):
        y = np.full((150, len(CLASSES)), np.nan)
        y[:, 1] = rng.random(150) < 0.5
        test = SourceTestSet("t", [str(i) for i in range(150)], y, np.arange(150), 150)
        preds = {"t": _scores(y, signal, rng), "u": _scores(y, signal, rng)}
        m = generalisation_matrix([test], preds, CLASSES, {"t": {"Effusion"}, "u": {"Effusion"}}, replicates=200,
                                  seed=k)
        lo, hi = m.cell("t", "t").macro_ci
        covered += lo <= truth <= hi
        rejected += m.drops[0].p_value < 0.05
    assert 0.88 <= covered / sims <= 1.0
    assert rejected / sims <= 0.12


def test_matrix_and_compare_draw_the_same_bootstrap(tmp_path):
    """One test source, the same predictions and seed: the matrix cell's macro AUROC, its CI and each finding's
    AUROC equal compare's (the one stratified patient bootstrap, ``stats.bootstrap.stratified_patient_weights``)."""
    import pandas as pd

    from cxrlab.data.index import Index, write_index
    from cxrlab.evaluate.compare import compare_runs
    from cxrlab.predictions import Predictions, read_predictions, write_predictions

    rng = np.random.default_rng(11)
    n, classes = 150, ["Effusion", "Nodule", "Opacity"]
    y = (rng.random((n, 3)) < [0.1, 0.3, 0.5]).astype(float)
    ids = [f"i{k:03d}.png" for k in range(n)]
    names = [f"p{k // 3}" for k in range(n)]
    labels = {c: y[:, i] for i, c in enumerate(classes)}
    frame = pd.DataFrame({"image_id": ids, "path": ids, "patient_id": names, **labels})
    write_index(Index(frame, "multilabel", classes, tmp_path), tmp_path / "index")
    meta = {"split": "test", "task": "multilabel"}
    paths = [write_predictions(tmp_path / f"{k}.csv", Predictions(
        ids, 1 / (1 + np.exp(-(s * y + rng.normal(size=y.shape)))), classes, meta)) for k, s in (("a", 1.5), ("b", 0))]
    r = compare_runs(paths, labels=tmp_path / "index", bootstrap=80, seed=5, report=False).to_dict()
    _, codes = np.unique(names, return_inverse=True)  # compare codes patients in sorted name order
    test = SourceTestSet("t", ids, y, codes, int(codes.max()) + 1)
    probs = read_predictions(paths[0]).probs
    matrix = generalisation_matrix([test], {"t": probs}, classes, {"t": set(classes)}, replicates=80, seed=5)
    cell, row = matrix.cell("t", "t"), r["models"][0]
    assert cell.macro == pytest.approx(row["macro_auroc"], abs=1e-12)
    np.testing.assert_allclose(cell.macro_ci, row["macro_auroc_ci"], atol=1e-12)
    for c in classes:
        assert cell.per_finding[c][0] == pytest.approx(row["per_class"][c], abs=1e-12)


def test_each_finding_gets_compares_pair_test_delong_or_permutation_by_patient_count(tmp_path):
    """Per finding, the drop's paired test is DeLong (patient-clustered) with at least ``minimum`` positive and
    negative patients and the paired permutation test below it, exactly as the stats core computes each, and the
    report names the test beside each p-value."""
    from report_lint import lint_report

    from cxrlab.evaluate.stats.delong import delong_test
    from cxrlab.evaluate.stats.permutation import permutation_test
    from cxrlab.study.matrix_report import matrix_to_dict, write_matrix_report

    rng = np.random.default_rng(5)
    tests = [_test_set("big", 160, ["Effusion"], rng), _test_set("thin", 24, ["Effusion"], rng)]  # 80 / 12 patients
    y = np.vstack([t.labels for t in tests])
    preds = {"big": _scores(y, 1.5, rng), "thin": _scores(y, 0.5, rng)}
    trained = {"big": {"Effusion"}, "thin": {"Effusion"}}
    m = generalisation_matrix(tests, preds, CLASSES, trained, replicates=20, seed=3, minimum=25, permutations=500)
    i = CLASSES.index("Effusion")
    for name, rows in (("big", slice(0, 160)), ("thin", slice(160, 184))):
        t = next(d for d in m.drops if d.test == name).pair_tests["Effusion"]
        patients = tests[0 if name == "big" else 1].patients
        a, b = preds[name][rows, i], preds["thin" if name == "big" else "big"][rows, i]
        if name == "big":
            expected = delong_test(a, b, y[rows, i], patients)
            assert t.test.lower().startswith("delong") and t.p_floor is None
        else:
            expected = permutation_test(a, b, y[rows, i], patients, 500, seed=3 + i)
            assert t.test.startswith("permutation") and t.p_floor == pytest.approx(1 / 501)
        assert t.n_pos_patients == expected.n_pos_patients and (t.n_pos_patients >= 25) == (name == "big")
        assert t.p_value == pytest.approx(expected.p_value) and t.delta == pytest.approx(expected.delta)
    data = matrix_to_dict(m)
    assert data["min_patients"] == 25 and data["drops"][0]["pair_tests"]["Effusion"]["test"] == m.drops[0].pair_tests[
        "Effusion"].test
    write_matrix_report(m, tmp_path, {"study": "tiny"})
    md = (tmp_path / "report" / "report.md").read_text()
    lint_report(md)
    assert "(DeLong)" in md and "(permutation)" in md and "at least 25 positive and negative patients" in md
    thin = m.cell("big", "thin").patients["Effusion"]
    assert thin == (t.n_pos_patients, t.n_neg_patients) and data["cells"][1]["patients"]["Effusion"] == thin
    assert f"| big | thin | Effusion (thin) | {thin[0]}/{thin[1]} |" in md and "| big | big | Effusion | " in md
    # a thin finding keeps its AUROC but gets no interval (as in evaluate and compare); a powered one gets one
    assert m.cell("big", "thin").per_finding["Effusion"][1:] == (None, None)
    assert None not in m.cell("big", "big").per_finding["Effusion"]
    assert list(data["cells"][1]["per_finding"]["Effusion"][1:]) == [None, None]


def test_simulation_thin_finding_test_keeps_its_level():
    """Two equally good models on a thin test source (15 patients, some with two images): the per-finding test
    (the permutation test below the minimum) rejects a true null at about 5%."""
    rng = np.random.default_rng(8)
    rejected, sims = 0, 200
    for k in range(sims):
        test = _test_set("t", 30, ["Effusion"], rng)
        preds = {"t": _scores(test.labels, 1.0, rng), "u": _scores(test.labels, 1.0, rng)}
        m = generalisation_matrix([test], preds, CLASSES, {"t": {"Effusion"}, "u": {"Effusion"}}, replicates=10,
                                  seed=k, permutations=200)
        t = m.drops[0].pair_tests["Effusion"]
        assert t.test.startswith("permutation")
        rejected += t.p_value < 0.05
    assert 0.01 <= rejected / sims <= 0.09  # nominal 0.05; 200 draws: sd about 0.015
