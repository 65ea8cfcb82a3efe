"""The generalisation matrix as files: ``matrix.json`` (typed results as plain data), a heat map with CIs and a
report section (HTML + Markdown) in ``DIR/report/``."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from cxrlab.evaluate.document import Document
from cxrlab.evaluate.formatting import fmt_ci, fmt_p, fmt_signed, fmt_value
from cxrlab.study.matrix import Cell, Matrix
from cxrlab.utils import figure_png, pyplot, write_json


def matrix_to_dict(m: Matrix) -> dict[str, Any]:
    """Plain data for ``matrix.json`` (bootstrap replicates left out)."""
    cells = []
    for c in m.cells:
        d = asdict(c)
        d.pop("replicates")
        cells.append(d)
    return {"classes": m.classes, "trains": m.trains, "tests": m.tests, "rule": m.rule, "replicates": m.replicates,
            "min_patients": m.min_patients, "cells": cells, "drops": [asdict(d) for d in m.drops],
            "row_gaps": [asdict(g) for g in m.row_gaps]}


def heatmap(m: Matrix) -> bytes:
    """Macro AUROC, train source (rows) x test source (columns), each cell annotated with its 95% CI."""
    plt = pyplot()
    values = np.array([[m.cell(r, t).macro for t in m.tests] for r in m.trains])
    fig, ax = plt.subplots(figsize=(1.8 * len(m.tests) + 2, 0.9 * len(m.trains) + 1.5))
    im = ax.imshow(values, cmap="viridis", vmin=0.5, vmax=1.0)
    for i, r in enumerate(m.trains):
        for j, t in enumerate(m.tests):
            c = m.cell(r, t)
            text = f"{c.macro:.3f}\n[{c.macro_ci[0]:.2f}, {c.macro_ci[1]:.2f}]" if np.isfinite(c.macro) else "n/a"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if not np.isfinite(c.macro) or c.macro < 0.8 else "black")
    ax.set_xticks(range(len(m.tests)), m.tests)
    ax.set_yticks(range(len(m.trains)), m.trains)
    ax.set(xlabel="test source", ylabel="trained on", title="macro AUROC (95% patient-bootstrap CI)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return figure_png(fig)


def matrix_section(doc: Document, m: Matrix) -> None:
    """The report section: heat map, macro and per-finding tables, internal-to-external drops."""
    doc.heading("Cross-dataset generalisation matrix")
    doc.text(f"Rule: {m.rule}. Intervals: 95% patient bootstrap ({m.replicates} draws per test source, "
             "stratified by each patient's rarest positive finding as in evaluate and compare; the same draws for "
             "every model of a column).")
    doc.figure("matrix", heatmap(m), "train source x test source, macro AUROC with 95% CI")
    doc.table(["trained on", *m.tests], [[r, *(_fmt(m.cell(r, t)) for t in m.tests)] for r in m.trains])
    rows = [[c.train, c.test, f"{f} (thin)" if _thin(c, f, m) else f, "/".join(map(str, c.patients.get(f, ()))),
             fmt_ci(v[0], v[1:] if v[1] is not None else None)]
            for c in m.cells for f, v in c.per_finding.items()]
    doc.heading("AUROC per finding", 3)
    doc.table(["trained on", "test source", "finding", "patients (positive/negative)", "AUROC [95% CI]"], rows)
    if any(_thin(c, f, m) for c in m.cells for f in c.findings):
        doc.text(f"(thin): fewer than {m.min_patients} positive or negative patients on that test source, the stats "
                 "core's minimum: too noisy to call, so no interval (as in evaluate and compare), and its paired "
                 "test below is the permutation test.")
    doc.heading("Internal to external (paired: same test images)", 3)
    doc.text("drop = AUROC of the test source's own model minus that of the other model, macro over the findings "
             "both score; CI and p from the paired patient bootstrap. Per finding, the paired AUROC test compare "
             f"uses: DeLong (patient-clustered) with at least {m.min_patients} positive and negative patients on the "
             "test source, the paired permutation test below that (DeLong's normal approximation fails with few "
             "patients); each p names its test.")
    doc.table(["test source", "other model", "internal", "external", "drop [95% CI]", "p", "p per finding (test)"],
              [[d.test, d.external, f"{d.internal_auroc:.3f}", f"{d.external_auroc:.3f}",
                f"{fmt_signed(d.drop)} [{fmt_signed(d.ci[0])}, {fmt_signed(d.ci[1])}]",
                fmt_p(d.p_value, 2 / (m.replicates + 1)),
                "; ".join(f"{k} {fmt_p(t.p_value, t.p_floor)} ({_short(t.test)})" for k, t in d.pair_tests.items())]
               for d in m.drops])
    if m.row_gaps:
        doc.heading("Row view: a model on its own test set vs another's (unpaired: different images)", 3)
        doc.table(["trained on", "own test", "other test", "own", "other", "gap [95% CI]"],
                  [[g.train, g.internal_test, g.external_test, f"{g.internal:.3f}", f"{g.external:.3f}",
                    f"{g.gap:+.3f} [{g.ci[0]:+.3f}, {g.ci[1]:+.3f}]"] for g in m.row_gaps])


def _thin(c: Cell, finding: str, m: Matrix) -> bool:
    n = c.patients.get(finding)
    return n is not None and min(n) < m.min_patients


def _short(test: str) -> str:
    """``DeLong`` or ``permutation``: the method's name without its details (given in the text above)."""
    return "DeLong" if test.lower().startswith("delong") else test.split(" (")[0].split(",")[0]


def _fmt(c) -> str:
    if not np.isfinite(c.macro):
        return "n/a (no shared finding)"
    return f"{c.macro:.3f} [{c.macro_ci[0]:.3f}, {c.macro_ci[1]:.3f}] ({len(c.findings)} findings)"


def write_matrix_report(m: Matrix, out: Path, provenance: dict[str, Any]) -> Path:
    """``out/matrix.json`` and ``out/report/report.{html,md}``; returns the JSON path."""
    write_json(out / "matrix.json", {**matrix_to_dict(m), "provenance": provenance})
    doc = Document("cxrlab cross-dataset study")
    matrix_section(doc, m)
    doc.heading("Provenance")
    doc.bullets([f"{k.replace('_', ' ')}: {fmt_value(v)}" for k, v in provenance.items()])
    doc.write(out / "report")
    return out / "matrix.json"
