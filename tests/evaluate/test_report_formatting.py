"""The pieces every report is built from: number formatting, the palette, the words for trouble, heading nesting,
and the report lint itself (it must catch the issue's own examples)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from cxrlab.evaluate.document import Document
from cxrlab.evaluate.formatting import fmt_count, fmt_p, fmt_p_adjusted, fmt_seconds, fmt_value, is_nih, too_few
from cxrlab.evaluate.palette import COLORS, class_style
from cxrlab.evaluate.trouble import below_chance, validation_collapse

from .report_lint import lint_report


@pytest.mark.parametrize(("p", "floor", "text"), [
    (6.28e-25, None, "<0.0001"),  # an analytic p far below what anyone can use: never scientific
    (4.1e-4, None, "0.0004"),
    (0.01234, None, "0.012"),
    (1.0, None, "1.000"),
    (1 / 2001, 1 / 2001, "<=0.0005"),  # a Monte Carlo p at its floor is a bound
    (2 / 1001, 2 / 1001, "<=0.002"),
    (None, None, "n/a"),
    (float("nan"), None, "n/a"),
])
def test_a_p_value_reads_one_way(p, floor, text):
    assert fmt_p(p, floor) == text


def test_an_adjusted_p_at_the_floor_is_a_bound():
    assert fmt_p_adjusted(2 / 1001, 6 * 2 / 1001, 2 / 1001) == "<=0.012"
    assert fmt_p_adjusted(0.2, 0.6, 2 / 1001) == "0.600"


def test_recorded_values_read_as_words():
    assert fmt_seconds(238.7043902873993) == "4.0 min" and fmt_seconds(12.93) == "12.9 s"
    assert fmt_count(22172548) == "22.2M" and fmt_count(950) == "950"
    assert fmt_value([]) == "none" and fmt_value(None) == "none" and fmt_value({}) == "none"
    assert fmt_value({"train": 177, "val": 51}) == "train 177, val 51"
    assert fmt_value(0.12345678) == "0.1235" and fmt_value(0.0003) == "0.0003" and fmt_value(True) == "yes"
    assert too_few(2, 78, 25) == "n/a: 2 positive patients (fewer than 25)"
    assert too_few(40, 1, 25) == "n/a: 1 negative patient (fewer than 25)"
    assert is_nih("nih") and not is_nih("csv") and not is_nih(None) and not is_nih("merge")


def _ciede2000(a: str, b: str) -> float:
    from matplotlib.colors import to_rgb
    from skimage.color import deltaE_ciede2000, rgb2lab

    lab = [rgb2lab(np.array(to_rgb(c))[None, None, :])[0, 0] for c in (a, b)]
    return float(deltaE_ciede2000(*lab))


def test_fifteen_classes_get_fifteen_colours_a_reader_can_tell_apart():
    styles = [class_style(i) for i in range(15)]
    assert len({s["color"].lower() for s in styles}) == 15
    assert len({(s["color"], s["linestyle"]) for s in [class_style(i) for i in range(60)]}) == 60
    # CIEDE2000 (skimage, not the palette's own code): 10 is about the least two plotted lines need to read apart
    assert min(_ciede2000(a, b) for a, b in itertools.combinations(COLORS, 2)) > 15


def test_every_roc_curve_of_fifteen_classes_has_its_own_colour(monkeypatch):
    from cxrlab.evaluate import figures
    from cxrlab.evaluate.matching import Scored

    captured = {}
    monkeypatch.setattr(figures, "figure_png", lambda fig: captured.setdefault("fig", fig) and b"png")
    # a real 15-class figure (NIH: 14 findings + No Finding); the colours are read off its lines
    rng = np.random.default_rng(0)
    y = (rng.random((300, 15)) < 0.3).astype(float)
    classes = [f"class {i}" for i in range(15)]
    scored = Scored([f"i{i}" for i in range(300)], np.arange(300) // 2, y, y + rng.normal(size=y.shape), classes,
                    "multilabel")
    figures.roc_figure(scored, classes)
    lines = [line for line in captured["fig"].axes[0].get_lines() if line.get_label().startswith("class")]
    assert len(lines) == 15 and len({line.get_color() for line in lines}) == 15


def test_worse_than_chance_in_words():
    lines = below_chance("m", {"Nodule": 0.31, "Mass": 0.8, "Hernia": None}, 0.45)
    assert lines[0].startswith("WARNING m: macro AUROC 0.450 is worse than chance")
    assert "Nodule 0.310" in lines[1] and "Mass" not in lines[1] and "check label polarity or class order" in lines[1]
    assert below_chance("m", {"Nodule": 0.5}, 0.7) == []
    with_ci = below_chance("m", {"Nodule": 0.31}, None, {"Nodule": [0.22, 0.40]})
    assert with_ci == ["WARNING m: AUROC worse than chance (below 0.5) for Nodule 0.310 [0.220, 0.400]: check label "
                       "polarity or class order"]


def test_a_thin_class_below_chance_gets_a_note_not_a_warning():
    lines = below_chance("m", {"Hernia": 0.42, "Nodule": 0.31}, 0.7, {"Nodule": [0.22, 0.40]}, thin={"Hernia"})
    assert len(lines) == 2 and lines[0].startswith("WARNING m:") and "Hernia" not in lines[0]
    assert lines[1].startswith("note m: AUROC below 0.5 for Hernia 0.420, classes too thin to tell noise")


@pytest.mark.parametrize(("values", "expected"), [
    ([0.6, 0.8, 0.82], None),
    ([0.6, 0.85, 0.7], "collapsed from 0.850 (epoch 2) to 0.700 (epoch 3)"),  # fell by more than 0.1
    ([0.6, 0.85, 0.78], None),  # a dip of 0.07 is noise
    ([0.55, 0.52, 0.5], "ended at 0.500 in epoch 3, no better than chance"),
])
def test_a_collapsed_validation_metric_in_words(tmp_path, values, expected):
    csv = tmp_path / "metrics.csv"
    pd.DataFrame({"epoch": range(1, len(values) + 1), "val_metric": values}).to_csv(csv, index=False)
    lines = validation_collapse(csv, "macro_auroc", "run a")
    assert (lines == []) if expected is None else (expected in lines[0] and lines[0].startswith("WARNING run a"))


def test_validation_collapse_ignores_what_it_cannot_read(tmp_path):
    (tmp_path / "bad.csv").write_text("no,epoch\ncolumn,here\n")
    assert validation_collapse(tmp_path / "bad.csv") == [] and validation_collapse(tmp_path / "absent.csv") == []


def test_headings_never_skip_a_level():
    doc = Document("t")
    doc.heading("a", 3)  # asked one level too deep right under the title: pulled up to h2
    doc.heading("b", 4)
    doc.heading("c", 2)
    assert [b[1] for b in doc.blocks] == [2, 3, 2]


@pytest.mark.parametrize("bad", [
    "# t\n\n- wall_seconds: 238.7043902873993\n",
    "# t\n\n- audit.leaking_patients: []\n",
    "# t\n\n- p: 6.28e-25\n",
    "# t\n\n- folds: None\n",
    "# t\n\n## a\n\n#### b\n",
    "# t\n\n# again\n",
    "# t\n\n| p |\n|---|\n| 6.28e-25 |\n",
])
def test_the_report_lint_catches_the_issues_examples(bad):
    with pytest.raises(AssertionError):
        lint_report(bad)


def test_the_report_lint_passes_a_clean_report():
    lint_report("# t\n\n## a\n\n### b\n\n- macro AUROC 0.812 [0.790, 0.833]\n\n| p |\n|---|\n| <=0.002 |\n"
                "\n```yaml\nfolds: []\n# a comment\n```\n")
