"""The typed study results (``study.leaderboard``): the JSON shape they write, reading it back, and the report's
thin classes (too few positive or negative patients: shown, marked, never called worse than chance)."""

from __future__ import annotations

import pytest
from report_lint import lint_report

from cxrlab.evaluate.document import Document
from cxrlab.study.leaderboard import (
    ArmDifference,
    ArmRow,
    Bootstrap,
    ClassCounts,
    Leaderboard,
    RunScore,
    SeedTest,
    StudyResults,
)
from cxrlab.study.report import _per_class, _tests, _trouble

CLASSES = ("Effusion", "Nodule")


def _results(effusion: float = 0.40, nodule: float = 0.30, macro: float = 0.60) -> StudyResults:
    """One arm 'a' (and a reference 'r'): Effusion has 30 positive and 40 negative patients, Nodule 3 positive."""
    run = RunScore("a-s0", "a", 0, macro, (0.5, 0.7), macro, 0.4, {"Effusion": effusion, "Nodule": nodule},
                   "youden on validation", None)
    arms = [ArmRow(name, 2, (0, 1), macro, 0.01, (0.55, 0.65), "two-level", {"Effusion": (effusion, 0.02),
                                                                             "Nodule": (nodule, 0.05)},
                   None, 0.4, cost={"parameters": 10.0}, strategy="from scratch") for name in ("a", "r")]
    tests = [ArmDifference("a", "r", "macro", "auroc", "two-level", 0.0, (-0.1, 0.1), 0.9, (2, 2),
                           (SeedTest(0, 0.01, (-0.1, 0.1), 0.8),), 1.0),
             *[ArmDifference("a", "r", c, "auroc", "two-level", 0.01, (-0.2, 0.2), 0.5, (2, 2), None, 1.0)
               for c in CLASSES]]
    board = Leaderboard("multilabel", "macro_auroc", "auroc", CLASSES, CLASSES, (), (), (), 200, 70,
                        Bootstrap(100, 0), (run,), tuple(arms), tuple(tests))
    counts = {"Effusion": ClassCounts(40, 30, 40), "Nodule": ClassCounts(4, 3, 67)}
    return StudyResults("s", "", {"epochs": 1}, "r", False, {"bootstrap": 100}, 2, 2, counts, 25, board, {}, 2)


def test_to_dict_writes_the_study_report_schema_and_reads_back():
    res = _results()
    d = res.to_dict()
    assert list(d)[:4] == ["schema", "external", "study", "class_counts"] and d["schema"] == "cxrlab.study_report/1"
    assert list(d)[-5:] == ["runs", "arms", "tests", "adjustment", "cores"]
    arm = d["arms"][0]
    assert arm["per_class"]["Nodule"] == [0.30, 0.05] and arm["ci"] == [0.55, 0.65] and arm["kind"] == "arm"
    assert "of" not in arm and list(arm)[-4:] == ["kind", "swept", "diff", "strategy"]
    assert d["tests"][0]["class"] == "macro" and d["tests"][0]["per_seed"][0]["delta_ci"] == [-0.1, 0.1]
    assert "per_seed" not in d["tests"][1] and list(d["tests"][1])[-1] == "p_adjusted"
    assert d["counts"] == {"images": 200, "patients": 70} and d["bootstrap"]["unit"] == "patient"
    again = StudyResults.from_dict(d)
    assert again.to_dict() == d and again.board == res.board


def test_a_seed_ensemble_row_keeps_its_key_order():
    row = ArmRow("a (seed ensemble)", 2, (0, 1), 0.7, None, (0.6, 0.8), "patient bootstrap", {"E": (0.7, None)},
                 None, 0.5, kind="seed_ensemble", of="a")
    assert list(row.to_dict())[:3] == ["arm", "kind", "of"] and ArmRow.from_dict(row.to_dict()) == row


def test_below_chance_is_called_only_on_classes_with_enough_patients():
    words = _trouble(_results(effusion=0.40, nodule=0.30))
    called = [w for w in words if w.startswith("WARNING")]
    assert len(called) == 2 and all("Effusion 0.400" in w and "Nodule" not in w for w in called)  # arms a and r
    thin = [w for w in words if w.startswith("thin, not called")]
    assert len(thin) == 1 and "Nodule (3 positive patients) in a, r" in thin[0]
    assert not _trouble(_results(effusion=0.8, nodule=0.9))  # nothing below chance: nothing said


def test_macro_below_chance_shows_its_interval():
    words = _trouble(_results(effusion=0.8, nodule=0.9, macro=0.45))
    assert any("macro AUROC 0.450 [0.550, 0.650]" in w for w in words)


def test_per_class_table_marks_thin_classes(tmp_path):
    doc = Document("t")
    res = _results()
    _per_class(doc, res)
    _tests(doc, res)
    doc.write(tmp_path)
    md = (tmp_path / "report.md").read_text()
    lint_report(md)
    assert "| arm | Effusion | Nodule (thin) |" in md
    assert "Nodule: 3 positive patients" in md and "Effusion: " not in md
    nodule = next(line for line in md.splitlines() if line.startswith("| a | r | Nodule |"))
    assert "n/a: 3 positive patients (fewer than 25)" in nodule
    effusion = next(line for line in md.splitlines() if line.startswith("| a | r | Effusion |"))
    assert "[-0.190, 0.210]" not in effusion and "0.010 [-0.200, 0.200]" in effusion


@pytest.mark.parametrize("n, thin", [((10, 25, 25), False), ((10, 24, 99), True), ((10, 99, 24), True)])
def test_a_class_is_thin_below_the_minimum_on_either_side(n, thin):
    assert ClassCounts(*n).thin(25) is thin


def test_a_macro_over_thin_classes_only_is_not_called():
    from dataclasses import replace

    res = _results(effusion=0.8, nodule=0.9, macro=0.45)
    thin = replace(res, class_counts={c: ClassCounts(3, 2, 60) for c in CLASSES})
    words = _trouble(thin)
    assert not [w for w in words if w.startswith("WARNING")]
    assert words == ["thin, not called: AUROC below 0.5 for macro AUROC (every class thin) in a, r: too few "
                     "patients to tell a flipped label from noise"]
