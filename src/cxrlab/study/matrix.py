"""The cross-dataset generalisation matrix (Cohen et al., MIDL 2020): train on each source, test on every source.

Rows are training sources (plus ``pooled``: the model trained on the merge), columns are test sources; a cell
is the AUROC of the row's model on the column's test images, per finding and as a macro average.

**Which findings a cell scores.** A cell averages the findings labelled by the training data of its row and by
the test rows of its column (both label values present there). A finding a source does not label is unknown
in the merged index: it is neither trained on nor scored for that source. The pooled row's training data
labels every finding any source labels.

**Intervals.** Patient bootstrap of each test source (``replicates`` draws of its patients, all images of a
drawn patient), stratified by each patient's rarest positive finding: the one bootstrap evaluate and compare
use (``stats.bootstrap.stratified_patient_weights``; test source k draws with seed ``seed + k``). The same
draws serve every model in a column, so differences within a column are paired.

**Internal to external.** For each test source T and each other training source S, the *drop* compares T's
own (internal) model with S's (external) model on the same test images of T, over the findings both label:
a paired difference of macro AUROC with a paired-bootstrap interval and p-value, and per finding the paired
AUROC test ``compare`` uses (``stats.choose.auroc_pair_test``): DeLong (patient-clustered, Obuchowski) when the
finding has at least ``min_patients`` positive and negative patients on the test source, the paired permutation
test below that (DeLong's normal approximation fails there); each result names its test. The row view (S on
S's test set vs S on T's test set) uses different images, so its difference is unpaired: independent
bootstraps, reported as ``row_gap``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cxrlab.evaluate.stats.bootstrap import bootstrap_test, percentile_ci, stratified_patient_weights
from cxrlab.evaluate.stats.choose import MIN_PATIENTS, auroc_pair_test
from cxrlab.evaluate.stats.delong import pair_counts
from cxrlab.evaluate.stats.permutation import PERMUTATIONS
from cxrlab.evaluate.stats.ranking import replicate_blocks, weighted_auroc
from cxrlab.evaluate.stats.results import PairTest

POOLED = "pooled"
EXCLUDE = ("No Finding",)  # as evaluate's default: not a finding, and each dataset defines it differently
FINDINGS_RULE = ("a cell averages the findings labelled both by the training data of its row and by the test "
                 "images of its column (both label values present); unlabelled findings are unknown, not negative; "
                 "'No Finding' is left out")


@dataclass(frozen=True)
class SourceTestSet:
    """One test source: labels (N, C) NaN unknown, patient index (N,) 0..P-1, and its image ids."""

    name: str
    image_ids: list[str]
    labels: np.ndarray
    patients: np.ndarray
    n_patients: int


@dataclass
class Cell:
    """One model (row) on one test source (column)."""

    train: str
    test: str
    findings: list[str]
    macro: float
    macro_ci: tuple[float, float]
    # auroc, lo, hi; no interval (None, None) for a thin finding, as in evaluate and compare
    per_finding: dict[str, tuple[float, float | None, float | None]] = field(default_factory=dict)
    n_images: int = 0
    replicates: np.ndarray | None = field(default=None, repr=False)  # (R+1, F) AUROC per draw (row 0 observed)
    patients: dict[str, tuple[int, int]] = field(default_factory=dict)  # finding -> (positive, negative) patients


@dataclass
class Drop:
    """Internal (test source's own model) minus external (another source's model), same test images."""

    test: str
    external: str
    findings: list[str]
    internal_auroc: float
    external_auroc: float
    drop: float
    ci: tuple[float, float]
    p_value: float
    pair_tests: dict[str, PairTest] = field(default_factory=dict)  # finding -> auroc_pair_test (names its test)


@dataclass
class RowGap:
    """A model on its own source's test set minus on another source's (different images: unpaired)."""

    train: str
    internal_test: str
    external_test: str
    findings: list[str]
    internal: float
    external: float
    gap: float
    ci: tuple[float, float]
    paired: bool = False


@dataclass
class Matrix:
    classes: list[str]
    trains: list[str]
    tests: list[str]
    cells: list[Cell]
    drops: list[Drop]
    row_gaps: list[RowGap]
    replicates: int
    rule: str = FINDINGS_RULE
    min_patients: int = MIN_PATIENTS  # fewest positive and negative patients for DeLong (permutation test below)

    def cell(self, train: str, test: str) -> Cell:
        return next(c for c in self.cells if c.train == train and c.test == test)


def _scored(labels: np.ndarray, classes: list[str], trained: set[str]) -> list[int]:
    """Columns a cell scores: labelled in training and two-valued in the test rows."""
    out = []
    for i, c in enumerate(classes):
        known = labels[:, i][~np.isnan(labels[:, i])]
        if c in trained and c not in EXCLUDE and len(np.unique(known)) == 2:
            out.append(i)
    return out


def _class_replicates(test: SourceTestSet, probs: np.ndarray, cols: list[int], weights: np.ndarray) -> np.ndarray:
    """(R+1, len(cols)) AUROC of each scored finding under each patient-weight row."""
    out = np.full((len(weights), len(cols)), np.nan)
    blocks = replicate_blocks(weights)
    for j, i in enumerate(cols):
        known = ~np.isnan(test.labels[:, i])
        out[:, j] = weighted_auroc(probs[known, i], test.labels[known, i], test.patients[known], blocks=blocks)
    return out


def _macro(reps: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(reps, axis=1) if reps.shape[1] else np.full(len(reps), np.nan)


def make_cell(train: str, test: SourceTestSet, probs: np.ndarray, classes: list[str], trained: set[str],
              weights: np.ndarray, minimum: int = MIN_PATIENTS) -> Cell:
    """Score one model's ``probs`` (aligned with ``test`` rows) on the findings the cell covers; a finding with
    fewer than ``minimum`` positive or negative patients gets its AUROC but no interval."""
    cols = _scored(test.labels, classes, trained)
    reps = _class_replicates(test, probs, cols, weights)
    macro = _macro(reps)
    lo, hi = percentile_ci(macro[1:])
    per, patients = {}, {}
    for j, i in enumerate(cols):
        known = ~np.isnan(test.labels[:, i])
        patients[classes[i]] = pair_counts(test.labels[known, i], test.patients[known])[1:]
        flo, fhi = percentile_ci(reps[1:, j]) if min(patients[classes[i]]) >= minimum else (None, None)
        per[classes[i]] = (float(reps[0, j]), _float(flo), _float(fhi))
    return Cell(train, test.name, [classes[i] for i in cols], float(macro[0]), (float(lo), float(hi)), per,
                len(test.image_ids), reps, patients)


def make_drop(internal: Cell, external: Cell, test: SourceTestSet, probs_int: np.ndarray, probs_ext: np.ndarray,
              classes: list[str], minimum: int = MIN_PATIENTS, permutations: int = PERMUTATIONS,
              seed: int = 0) -> Drop:
    """Paired comparison on ``test``'s images over the findings both cells score (per finding: DeLong with at
    least ``minimum`` positive and negative patients, else the permutation test, seeded ``seed`` + class)."""
    common = [c for c in internal.findings if c in external.findings]
    ji = [internal.findings.index(c) for c in common]
    je = [external.findings.index(c) for c in common]
    a, b = _macro(internal.replicates[:, ji]), _macro(external.replicates[:, je])
    delta = a - b  # (R+1,) paired: the same patient draws
    lo, hi = percentile_ci(delta[1:])
    tests = {}
    for c in common:
        i = classes.index(c)
        known = ~np.isnan(test.labels[:, i])
        tests[c] = auroc_pair_test(probs_int[known, i], probs_ext[known, i], test.labels[known, i],
                                   test.patients[known], minimum, permutations, seed=seed + i)
    return Drop(test.name, external.train, common, float(a[0]), float(b[0]), float(delta[0]), (float(lo), float(hi)),
                bootstrap_test(delta[1:])[0], tests)


def row_gap(own: Cell, other: Cell) -> RowGap:
    """Unpaired: the model of ``own.train`` on its own test set minus on another source's (independent draws)."""
    common = [c for c in own.findings if c in other.findings]
    a = _macro(own.replicates[:, [own.findings.index(c) for c in common]])
    b = _macro(other.replicates[:, [other.findings.index(c) for c in common]])
    n = min(len(a), len(b)) - 1
    diff = a[1:n + 1] - b[1:n + 1]  # independent replicates paired by position: the difference of two bootstraps
    lo, hi = percentile_ci(diff)
    return RowGap(own.train, own.test, other.test, common, float(a[0]), float(b[0]), float(a[0] - b[0]),
                  (float(lo), float(hi)))


def generalisation_matrix(tests: list[SourceTestSet], predictions: dict[str, np.ndarray], classes: list[str],
                          trained: dict[str, set[str]], replicates: int = 1000, seed: int = 0,
                          minimum: int = MIN_PATIENTS, permutations: int = PERMUTATIONS) -> Matrix:
    """The matrix for models ``predictions`` (train name -> (N_all, C) probabilities, rows in the order of the
    concatenated ``tests``) with ``trained[train]`` the findings its training data labels; ``minimum``: fewest
    positive and negative patients for DeLong per finding (the permutation test below, ``permutations`` swaps)."""
    cells, offsets, start = [], {}, 0
    weights = {}
    for k, t in enumerate(tests):
        offsets[t.name] = slice(start, start + len(t.image_ids))
        start += len(t.image_ids)
        weights[t.name] = stratified_patient_weights(t.labels, t.patients, t.n_patients, replicates, seed + k)
    for train, probs in predictions.items():
        for t in tests:
            cells.append(make_cell(train, t, probs[offsets[t.name]], classes, trained[train], weights[t.name],
                                   minimum))
    m = Matrix(classes, list(predictions), [t.name for t in tests], cells, [], [], replicates, min_patients=minimum)
    for t in tests:
        if t.name not in predictions:
            continue
        for train in predictions:
            if train == t.name:
                continue
            m.drops.append(make_drop(m.cell(t.name, t.name), m.cell(train, t.name), t,
                                     predictions[t.name][offsets[t.name]], predictions[train][offsets[t.name]],
                                     classes, minimum, permutations, seed))
            if train in m.tests and train != POOLED:
                m.row_gaps.append(row_gap(m.cell(train, train), m.cell(train, t.name)))
    return m


def _float(x) -> float | None:
    return None if x is None else float(x)
