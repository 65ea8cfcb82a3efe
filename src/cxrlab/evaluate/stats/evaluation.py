"""Typed, frozen results of one evaluation (the body of ``metrics.json``): pure data, no I/O, no rendering.

``summary`` builds them from metric arrays; ``to_dict()`` writes exactly the ``metrics.json`` blocks (the schema
is unchanged: key names and order); ``from_dict(obj, file)`` reads them back, a malformed entry being a one-line
``CxrlabError`` naming the file, the entry and the field. Metrics are ``Metric``s holding the point value and its
95% interval only (the bootstrap settings are the evaluation's ``bootstrap`` block); a value is None where the
metric is undefined (one label value), an interval None where it is not reported (too few patients).
"""

from __future__ import annotations

from dataclasses import dataclass

from cxrlab.evaluate.stats.fields import Fields
from cxrlab.evaluate.stats.results import Metric


def metric(value: float | None, ci, classes=()) -> Metric:
    """A ``Metric`` from a point and a ``[low, high]`` (list or tuple) or None; ``classes``: an average's set."""
    return Metric(value=value, ci=None if ci is None else (ci[0], ci[1]), classes=tuple(classes))


def pair(name: str, x: Metric) -> dict:
    """``{name: value, name_ci: [low, high] or None}``, the way ``metrics.json`` writes a metric."""
    return {name: x.value, f"{name}_ci": None if x.ci is None else list(x.ci)}


def read_pair(f: Fields, name: str, classes=()) -> Metric:
    return metric(f.number(name), f.ci(f"{name}_ci"), classes)


@dataclass(frozen=True)
class ClassResult:
    """One class of a multi-label evaluation (``per_class.<class>``).

    ``auroc``/``auprc``: ci None when the class has fewer than the minimum positive or negative patients
    (``enough_patients`` False); ``defined``: both label values occur; ``in_macro``: averaged in the macro;
    ``n_undefined_replicates``: bootstrap replicates where its AUROC was undefined; ``sensitivity_at_specificity``:
    ``{"0.9": sensitivity, ...}`` on the test ROC curve."""

    auroc: Metric
    auprc: Metric
    prevalence: float
    n_positive: int
    n_positive_patients: int
    n_negative_patients: int
    n_negative: int
    n_unknown: int
    enough_patients: bool
    defined: bool
    in_macro: bool
    n_undefined_replicates: int
    sensitivity_at_specificity: dict[str, float | None]

    def sensitivity_at(self, specificity: str = "0.9") -> float | None:
        return self.sensitivity_at_specificity.get(specificity)

    def to_dict(self) -> dict:
        return pair("auroc", self.auroc) | pair("auprc", self.auprc) | {
            "prevalence": self.prevalence, "n_positive": self.n_positive,
            "n_positive_patients": self.n_positive_patients, "n_negative_patients": self.n_negative_patients,
            "enough_patients": self.enough_patients, "n_undefined_replicates": self.n_undefined_replicates,
            "n_negative": self.n_negative, "n_unknown": self.n_unknown, "defined": self.defined,
            "in_macro": self.in_macro, "sensitivity_at_specificity": dict(self.sensitivity_at_specificity)}

    @classmethod
    def from_fields(cls, f: Fields) -> ClassResult:
        return cls(auroc=read_pair(f, "auroc"), auprc=read_pair(f, "auprc"), prevalence=f.number("prevalence"),
                   n_positive=f.integer("n_positive"), n_positive_patients=f.integer("n_positive_patients"),
                   n_negative_patients=f.integer("n_negative_patients"), n_negative=f.integer("n_negative"),
                   n_unknown=f.integer("n_unknown"), enough_patients=f.flag("enough_patients"),
                   defined=f.flag("defined"), in_macro=f.flag("in_macro"),
                   n_undefined_replicates=f.integer("n_undefined_replicates"),
                   sensitivity_at_specificity=f.numbers("sensitivity_at_specificity"))

    @classmethod
    def from_dict(cls, obj: dict, file: str = "metrics.json", path: str = "per_class") -> ClassResult:
        return cls.from_fields(Fields(obj, file, path))


@dataclass(frozen=True)
class MacroResult:
    """The multi-label macro average (``macro``): over ``classes`` (every defined class not ``excluded``);
    ``flagged`` classes have too few patients (< ``min_patients``) for an interval; ``powered`` is the macro
    AUROC without them (its ``classes`` set)."""

    auroc: Metric
    auprc: Metric
    classes: tuple[str, ...]
    excluded: tuple[str, ...]
    undefined: tuple[str, ...]
    flagged: tuple[str, ...]
    min_patients: int
    n_undefined_replicates: int
    powered: Metric

    def to_dict(self) -> dict:
        return pair("auroc", self.auroc) | pair("auprc", self.auprc) | {
            "classes": list(self.classes), "excluded": list(self.excluded), "undefined": list(self.undefined),
            "flagged": list(self.flagged), "min_patients": self.min_patients,
            "n_undefined_replicates": self.n_undefined_replicates,
            "powered": pair("auroc", self.powered) | {"classes": list(self.powered.classes)}}

    @classmethod
    def from_fields(cls, f: Fields) -> MacroResult:
        powered = f.block("powered")
        return cls(auroc=read_pair(f, "auroc"), auprc=read_pair(f, "auprc"), classes=f.names("classes"),
                   excluded=f.names("excluded"), undefined=f.names("undefined"), flagged=f.names("flagged"),
                   min_patients=f.integer("min_patients"), n_undefined_replicates=f.integer("n_undefined_replicates"),
                   powered=read_pair(powered, "auroc", powered.names("classes")))


@dataclass(frozen=True)
class ClassThreshold:
    """One class at its decision threshold (``thresholds.per_class.<class>``): point rates, F1 with interval."""

    threshold: float
    precision: float | None
    recall: float | None
    specificity: float | None
    f1: Metric

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "precision": self.precision, "recall": self.recall,
                "specificity": self.specificity} | pair("f1", self.f1)

    @classmethod
    def from_fields(cls, f: Fields) -> ClassThreshold:
        return cls(threshold=f.number("threshold"), precision=f.number("precision"), recall=f.number("recall"),
                   specificity=f.number("specificity"), f1=read_pair(f, "f1"))


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds (``thresholds``): chosen by ``method`` on ``chosen_on`` (validation, or fixed 0.5)."""

    method: str
    chosen_on: str
    per_class: dict[str, ClassThreshold]
    macro_f1: Metric

    def to_dict(self) -> dict:
        return {"method": self.method, "chosen_on": self.chosen_on,
                "per_class": {c: t.to_dict() for c, t in self.per_class.items()}} | pair("macro_f1", self.macro_f1)

    @classmethod
    def from_fields(cls, f: Fields) -> Thresholds:
        return cls(method=f.text("method"), chosen_on=f.text("chosen_on"),
                   per_class={c: ClassThreshold.from_fields(t) for c, t in f.entries("per_class")},
                   macro_f1=read_pair(f, "macro_f1"))


@dataclass(frozen=True)
class ClassCalibration:
    """Multi-label calibration numbers: Brier and ECE per class and their means."""

    brier: dict[str, float | None]
    ece: dict[str, float | None]
    brier_mean: float | None
    ece_mean: float | None

    def to_dict(self) -> dict:
        return {"brier": dict(self.brier), "ece": dict(self.ece), "brier_mean": self.brier_mean,
                "ece_mean": self.ece_mean}

    @classmethod
    def from_fields(cls, f: Fields) -> ClassCalibration:
        return cls(brier=f.numbers("brier"), ece=f.numbers("ece"), brier_mean=f.number("brier_mean"),
                   ece_mean=f.number("ece_mean"))


@dataclass(frozen=True)
class TopLabelCalibration:
    """Multi-class calibration numbers: multi-class Brier and top-label ECE."""

    brier: float | None
    ece_top_label: float | None

    def to_dict(self) -> dict:
        return {"brier": self.brier, "ece_top_label": self.ece_top_label}

    @classmethod
    def from_fields(cls, f: Fields) -> TopLabelCalibration:
        return cls(brier=f.number("brier"), ece_top_label=f.number("ece_top_label"))


Numbers = ClassCalibration | TopLabelCalibration


@dataclass(frozen=True)
class Calibration:
    """``calibration``: the numbers on test, and with validation predictions the temperature fitted there
    (per class for multi-label, one for multi-class) and the numbers after it; None without."""

    before: Numbers
    temperature: dict[str, float] | float | None = None
    after: Numbers | None = None

    def ece(self) -> float | None:
        """The ECE on test that tables show: the mean over classes (multi-label) or the top-label ECE."""
        return self.before.ece_mean if isinstance(self.before, ClassCalibration) else self.before.ece_top_label

    def to_dict(self) -> dict:
        temperature = dict(self.temperature) if isinstance(self.temperature, dict) else self.temperature
        return self.before.to_dict() | {"temperature": temperature,
                                        "after_temperature": None if self.after is None else self.after.to_dict()}

    @classmethod
    def from_fields(cls, f: Fields, multilabel: bool) -> Calibration:
        kind = ClassCalibration if multilabel else TopLabelCalibration
        after = f.optional_block("after_temperature")
        temperature = f.numbers("temperature") if multilabel and f.raw("temperature") is not None \
            else f.number("temperature") if not multilabel else None
        return cls(before=kind.from_fields(f), temperature=temperature,
                   after=None if after is None else kind.from_fields(after))


@dataclass(frozen=True)
class SeedPaper:
    """The seed paper's numbers (``seed_paper``), reported for contrast only: label-wise accuracy at 0.5 and
    the flattened (all cells pooled) AUROC over ``classes``."""

    labelwise_accuracy: float
    flattened_auroc: float | None
    classes: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"labelwise_accuracy": self.labelwise_accuracy, "flattened_auroc": self.flattened_auroc,
                "classes": list(self.classes)}

    @classmethod
    def from_fields(cls, f: Fields) -> SeedPaper:
        return cls(labelwise_accuracy=f.number("labelwise_accuracy"), flattened_auroc=f.number("flattened_auroc"),
                   classes=f.names("classes"))


@dataclass(frozen=True)
class MultilabelResults:
    """The body of a multi-label evaluation (and of each subgroup, without ``seed_paper``): per class, the macro
    (the headline), the micro and prevalence-weighted AUROC, thresholds, calibration."""

    per_class: dict[str, ClassResult]
    macro: MacroResult
    micro: Metric  # pooled pairs, over ``micro.classes``
    weighted: Metric  # weighted by the number of positives, over ``weighted.classes``
    thresholds: Thresholds
    calibration: Calibration
    seed_paper: SeedPaper | None = None

    task = "multilabel"

    def headline(self) -> tuple[str, Metric]:
        return "macro AUROC", self.macro.auroc

    def class_aurocs(self) -> dict[str, Metric]:
        return {c: r.auroc for c, r in self.per_class.items()}

    def to_dict(self) -> dict:
        out = {"per_class": {c: r.to_dict() for c, r in self.per_class.items()}, "macro": self.macro.to_dict(),
               "micro": pair("auroc", self.micro) | {"classes": list(self.micro.classes)},
               "weighted": pair("auroc", self.weighted) | {"classes": list(self.weighted.classes),
                                                           "weights": "number of positives"},
               "thresholds": self.thresholds.to_dict(), "calibration": self.calibration.to_dict()}
        if self.seed_paper is not None:
            out["seed_paper"] = self.seed_paper.to_dict()
        return out

    @classmethod
    def from_fields(cls, f: Fields) -> MultilabelResults:
        micro, weighted = f.block("micro"), f.block("weighted")
        return cls(per_class={c: ClassResult.from_fields(r) for c, r in f.entries("per_class")},
                   macro=MacroResult.from_fields(f.block("macro")),
                   micro=read_pair(micro, "auroc", micro.names("classes")),
                   weighted=read_pair(weighted, "auroc", weighted.names("classes")),
                   thresholds=Thresholds.from_fields(f.block("thresholds")),
                   calibration=Calibration.from_fields(f.block("calibration"), multilabel=True),
                   seed_paper=SeedPaper.from_fields(f.block("seed_paper")) if f.has("seed_paper") else None)


@dataclass(frozen=True)
class MulticlassClassResult:
    """One class of a multi-class evaluation (``per_class.<class>``): point precision and recall, F1 and
    one-vs-rest AUROC with intervals, and its number of true images (``support``)."""

    precision: float | None
    recall: float | None
    f1: Metric
    auroc_ovr: Metric
    support: int

    def to_dict(self) -> dict:
        return {"precision": self.precision, "recall": self.recall} | pair("f1", self.f1) \
            | pair("auroc_ovr", self.auroc_ovr) | {"support": self.support}

    @classmethod
    def from_fields(cls, f: Fields) -> MulticlassClassResult:
        return cls(precision=f.number("precision"), recall=f.number("recall"), f1=read_pair(f, "f1"),
                   auroc_ovr=read_pair(f, "auroc_ovr"), support=f.integer("support"))


@dataclass(frozen=True)
class MulticlassResults:
    """The body of a multi-class evaluation: per class, macro F1 (the headline) and one-vs-rest AUROC over
    ``macro_f1.classes``, accuracy, weighted F1, balanced accuracy, Cohen's kappa, the confusion matrix
    (``confusion[true][predicted]`` counts) and calibration."""

    per_class: dict[str, MulticlassClassResult]
    macro_f1: Metric
    macro_auroc_ovr: Metric
    accuracy: Metric
    weighted_f1: Metric
    balanced_accuracy: Metric
    kappa: Metric
    confusion: tuple[tuple[int, ...], ...]
    calibration: Calibration

    task = "multiclass"
    OVERALL = ("accuracy", "weighted_f1", "balanced_accuracy", "kappa")

    def headline(self) -> tuple[str, Metric]:
        return "macro F1", self.macro_f1

    def class_aurocs(self) -> dict[str, Metric]:
        return {c: r.auroc_ovr for c, r in self.per_class.items()}

    def to_dict(self) -> dict:
        out = {"per_class": {c: r.to_dict() for c, r in self.per_class.items()},
               "macro": pair("f1", self.macro_f1) | pair("auroc_ovr", self.macro_auroc_ovr)
               | {"classes": list(self.macro_f1.classes)}}
        for k in self.OVERALL:
            out |= pair(k, getattr(self, k))
        out["confusion_matrix"] = {"rows": "true class", "columns": "predicted class",
                                   "classes": list(self.macro_f1.classes),
                                   "counts": [list(row) for row in self.confusion]}
        out["calibration"] = self.calibration.to_dict()
        return out

    @classmethod
    def from_fields(cls, f: Fields) -> MulticlassResults:
        macro, cm = f.block("macro"), f.block("confusion_matrix")
        classes = macro.names("classes")
        counts = cm.raw("counts")
        if not (isinstance(counts, list) and len(counts) == len(classes) and all(
                isinstance(r, list) and len(r) == len(classes) and all(type(v) is int for v in r) for r in counts)):
            cm.fail(f"is not a {len(classes)} x {len(classes)} table of whole numbers", "counts")
        return cls(per_class={c: MulticlassClassResult.from_fields(r) for c, r in f.entries("per_class")},
                   macro_f1=read_pair(macro, "f1", classes), macro_auroc_ovr=read_pair(macro, "auroc_ovr"),
                   **{k: read_pair(f, k) for k in cls.OVERALL}, confusion=tuple(tuple(r) for r in counts),
                   calibration=Calibration.from_fields(f.block("calibration"), multilabel=False))


Results = MultilabelResults | MulticlassResults


def results_from_dict(obj: dict, file: str = "metrics.json", path: str = "") -> Results:
    """The typed body of a ``metrics.json`` (or of one of its subgroups) whose ``task`` is given, or found in it."""
    f = Fields(obj, file, path)
    task = f.text("task") if f.has("task") or not path else None
    kind = MulticlassResults if task == "multiclass" or (task is None and f.has("confusion_matrix")) \
        else MultilabelResults
    if task not in (None, "multilabel", "multiclass"):
        f.fail(f"is {task!r}, expected multilabel or multiclass", "task")
    return kind.from_fields(f)
