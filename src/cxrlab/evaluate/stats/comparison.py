"""Typed results of ``compare``: ``Comparison`` holds one ``ModelResult`` per model, the ``ComparisonTest`` rows
(per pair and class, per pair and macro metric), seed groups and class counts.

Pure data: ``compare`` builds them, ``compare_report`` renders their attributes, and ``to_dict`` is the one
place that spells ``comparison.json`` (schema ``cxrlab.comparison/1``, unchanged); ``from_dict`` reads it back,
with a one-line ``ValueError`` naming the field (the caller names the file).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from cxrlab.evaluate.stats.evaluation import SeedPaper
from cxrlab.evaluate.stats.results import Metric

SCHEMA = "cxrlab.comparison/1"


@dataclass(frozen=True)
class ClassCounts:
    """What one class's AUROC rests on, in the compared images."""

    n_pos_images: int
    n_pos_patients: int
    n_neg_patients: int

    def enough(self, minimum: int) -> bool:
        return min(self.n_pos_patients, self.n_neg_patients) >= minimum

    def thin(self, minimum: int) -> bool:
        """Fewer than ``minimum`` positive or negative patients: no interval, no star, no warning called."""
        return not self.enough(minimum)

    def to_dict(self) -> dict[str, int]:
        return _counts_dict(self)


@dataclass(frozen=True)
class ComparisonTest:
    """One paired test: ``a`` - ``b`` on a class's AUROC (``class_name`` a class) or on a macro metric
    (``class_name`` ``"macro"``, ``metric`` ``auroc`` or ``f1``). ``p_adjusted``: Holm over the comparison's
    tests; ``significant``: adjusted p < 0.05 on a class with enough patients."""

    a: str
    b: str
    class_name: str
    metric: str
    test: str
    delta: float | None
    p_value: float | None
    p_floor: float | None
    enough_patients: bool
    p_adjusted: float | None = None
    significant: bool = False
    se: float | None = None  # per-class tests
    counts: ClassCounts | None = None  # per-class tests
    delta_ci: tuple[float | None, float | None] | None = None  # macro tests
    n_undefined_replicates: int | None = None  # macro tests

    @property
    def is_macro(self) -> bool:
        return self.class_name == "macro"

    def pair(self) -> frozenset[str]:
        return frozenset((self.a, self.b))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"a": self.a, "b": self.b, "class": self.class_name, "metric": self.metric,
                               "test": self.test, "delta": self.delta}
        if self.is_macro:
            out["delta_ci"] = list(self.delta_ci) if self.delta_ci is not None else None
            out |= {"p_value": self.p_value, "p_floor": self.p_floor,
                    "n_undefined_replicates": self.n_undefined_replicates}
        else:
            out |= {"se": self.se, "p_value": self.p_value, "p_floor": self.p_floor,
                    **_counts_dict(self.counts)}
        return out | {"enough_patients": self.enough_patients, "p_adjusted": self.p_adjusted,
                      "significant": self.significant}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ComparisonTest:
        counts = ClassCounts(*(int(d[k]) for k in _COUNT_KEYS)) if d.get("class") != "macro" else None
        ci = d.get("delta_ci")
        return cls(a=d["a"], b=d["b"], class_name=d["class"], metric=d["metric"], test=d["test"],
                   delta=d["delta"], p_value=d["p_value"], p_floor=d.get("p_floor"),
                   enough_patients=bool(d["enough_patients"]), p_adjusted=d.get("p_adjusted"),
                   significant=bool(d.get("significant")), se=d.get("se"), counts=counts,
                   delta_ci=tuple(ci) if ci is not None else None,
                   n_undefined_replicates=d.get("n_undefined_replicates"))


@dataclass(frozen=True)
class ModelFacts:
    """What a model's run directory says about it (None where the run does not record it)."""

    model: str
    params: int | None = None
    train_seconds: float | None = None
    images_per_s: float | None = None
    recipe: str | None = None
    seed_group: str | None = None  # equal for runs whose resolved configs differ in the seed alone
    thresholds: str | None = None  # how the F1 thresholds were chosen
    aurc: float | None = None  # area under the risk-coverage curve, from uncertainty columns
    aurc_score: str | None = None
    fitted_on_test: str | None = None  # --allow-test-fitting, recorded with its reason
    unverified: str | None = None  # --allow-unverified, recorded with its reason


@dataclass(frozen=True)
class ModelResult:
    """One compared model: the headline and both macros as ``Metric``s (one set of bootstrap weights shared by
    every model), the per-class point values of the per-class metric, and the seed paper's numbers."""

    name: str
    facts: ModelFacts
    headline: Metric
    macro_auroc: Metric
    macro_f1: Metric
    per_class: dict[str, float | None]
    per_class_ci: dict[str, tuple[float | None, float | None] | None]
    seed_paper: SeedPaper | None  # multi-label only
    predictions: str

    def to_dict(self) -> dict[str, Any]:
        facts = {f.name: getattr(self.facts, f.name) for f in fields(ModelFacts)}
        for optional in ("fitted_on_test", "unverified"):  # present only when the option was used
            if facts[optional] is None:
                del facts[optional]
        return {"name": self.name, **facts,
                "headline": self.headline.value, "headline_ci": _ci(self.headline),
                "headline_undefined_replicates": self.headline.n_undefined_replicates,
                "macro_auroc": self.macro_auroc.value, "macro_auroc_ci": _ci(self.macro_auroc),
                "macro_f1": self.macro_f1.value, "macro_f1_ci": _ci(self.macro_f1),
                "per_class": dict(self.per_class),
                "per_class_ci": {c: _list(ci) for c, ci in self.per_class_ci.items()},
                "seed_paper": None if self.seed_paper is None else self.seed_paper.to_dict(),
                "predictions": self.predictions}

    @classmethod
    def from_dict(cls, d: dict[str, Any], replicates: int = 0) -> ModelResult:
        facts = ModelFacts(**{f.name: d.get(f.name) for f in fields(ModelFacts)})
        return cls(name=d["name"], facts=facts,
                   headline=_metric(d["headline"], d["headline_ci"], replicates,
                                    d.get("headline_undefined_replicates", 0)),
                   macro_auroc=_metric(d["macro_auroc"], d["macro_auroc_ci"], replicates),
                   macro_f1=_metric(d["macro_f1"], d["macro_f1_ci"], replicates),
                   per_class=dict(d["per_class"]),
                   per_class_ci={c: _tuple(ci) for c, ci in (d.get("per_class_ci") or {}).items()},
                   seed_paper=_seed_paper(d.get("seed_paper")),
                   predictions=d["predictions"])


@dataclass(frozen=True)
class SeedGroup:
    """Runs of one recipe that differ in the seed alone: mean and sample sd of their point values."""

    model: str
    runs: tuple[str, ...]
    config: str
    rule: str
    headline_mean: float | None
    headline_sd: float | None
    per_class: dict[str, tuple[float | None, float | None]]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "runs": list(self.runs), "n": len(self.runs), "config": self.config,
                "rule": self.rule, "headline_mean": self.headline_mean, "headline_sd": self.headline_sd,
                "per_class": {c: list(v) for c, v in self.per_class.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SeedGroup:
        return cls(d["model"], tuple(d["runs"]), d["config"], d["rule"], d["headline_mean"], d["headline_sd"],
                   {c: tuple(v) for c, v in d["per_class"].items()})


@dataclass(frozen=True)
class Comparison:
    """Several models on the same images. ``headline_metric``: ``macro_auroc`` (multi-label) or ``macro_f1``;
    ``best``: named only when its lead over every other model is significant after Holm, else None and
    ``not_separated`` lists the leader and the models it is not separated from. ``flagged``: classes with
    fewer than ``min_patients`` positive or negative patients (no interval, no star)."""

    task: str
    headline_metric: str
    classes: tuple[str, ...]
    macro_classes: tuple[str, ...]
    excluded: tuple[str, ...]
    undefined: tuple[str, ...]
    n_images: int
    n_patients: int
    replicates: int
    seed: int
    class_counts: dict[str, ClassCounts]
    models: tuple[ModelResult, ...]
    tests: tuple[ComparisonTest, ...]
    groups: tuple[SeedGroup, ...] = ()
    best: str | None = None
    not_separated: tuple[str, ...] = ()
    flagged: tuple[str, ...] = ()
    min_patients: int = 0
    notes: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    dataset_format: str | None = None
    subgroups: dict[str, Any] | None = None

    @property
    def per_class_metric(self) -> str:
        return "auroc" if self.task == "multilabel" else "f1"

    def model(self, name: str) -> ModelResult:
        return next(r for r in self.models if r.name == name)

    def macro_tests(self) -> list[ComparisonTest]:
        return [t for t in self.tests if t.is_macro]

    def to_dict(self) -> dict[str, Any]:
        out = {"schema": SCHEMA, "task": self.task, "headline": self.headline_metric,
               "per_class_metric": self.per_class_metric, "classes": list(self.classes),
               "macro_classes": list(self.macro_classes), "excluded": list(self.excluded),
               "undefined": list(self.undefined), "counts": {"images": self.n_images, "patients": self.n_patients},
               "bootstrap": {"replicates": self.replicates, "seed": self.seed, "unit": "patient", "level": 0.95},
               "best": self.best, "not_separated": list(self.not_separated),
               "class_counts": {c: _counts_dict(v) for c, v in self.class_counts.items()},
               "models": [r.to_dict() for r in self.models], "groups": [g.to_dict() for g in self.groups],
               "tests": [t.to_dict() for t in self.tests], "adjustment": "holm", "notes": list(self.notes),
               "flagged": list(self.flagged), "min_patients": self.min_patients, "options": dict(self.options),
               "dataset_format": self.dataset_format}
        if self.subgroups is not None:
            out["subgroups"] = self.subgroups
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Comparison:
        """The comparison ``comparison.json`` holds; ``ValueError`` naming the first missing or malformed field."""
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} file (schema {d.get('schema') if isinstance(d, dict) else None!r})")
        try:
            return cls(task=d["task"], headline_metric=d["headline"], classes=tuple(d["classes"]),
                       macro_classes=tuple(d["macro_classes"]), excluded=tuple(d["excluded"]),
                       undefined=tuple(d["undefined"]), n_images=int(d["counts"]["images"]),
                       n_patients=int(d["counts"]["patients"]), replicates=int(d["bootstrap"]["replicates"]),
                       seed=int(d["bootstrap"]["seed"]),
                       class_counts={c: ClassCounts(*(int(v[k]) for k in _COUNT_KEYS))
                                     for c, v in d["class_counts"].items()},
                       models=tuple(ModelResult.from_dict(r, int(d["bootstrap"]["replicates"])) for r in d["models"]),
                       tests=tuple(ComparisonTest.from_dict(t) for t in d["tests"]),
                       groups=tuple(SeedGroup.from_dict(g) for g in d["groups"]), best=d["best"],
                       not_separated=tuple(d["not_separated"]), flagged=tuple(d.get("flagged") or ()),
                       min_patients=int(d.get("min_patients") or 0), notes=tuple(d["notes"]),
                       options=dict(d.get("options") or {}), dataset_format=d.get("dataset_format"),
                       subgroups=d.get("subgroups"))
        except KeyError as e:
            raise ValueError(f"field {e.args[0]!r} is missing") from None
        except (TypeError, AttributeError, ValueError) as e:
            raise ValueError(f"a field has the wrong type ({e})") from None


_COUNT_KEYS = ("n_pos_images", "n_pos_patients", "n_neg_patients")


def _counts_dict(c: ClassCounts | None) -> dict[str, int]:
    return {} if c is None else {k: getattr(c, k) for k in _COUNT_KEYS}


def _metric(value: float | None, ci: list | None, replicates: int, undefined: int = 0) -> Metric:
    return Metric(value=value, ci=_tuple(ci), n_undefined_replicates=int(undefined or 0), replicates=replicates)


def _ci(metric: Metric) -> list | None:
    return _list(metric.ci)


def _list(ci: tuple | None) -> list | None:
    return list(ci) if ci is not None else None


def _tuple(ci: list | None) -> tuple | None:
    return tuple(ci) if ci is not None else None


def _seed_paper(d: dict | None) -> SeedPaper | None:
    if not d:
        return None
    return SeedPaper(d["labelwise_accuracy"], d["flattened_auroc"], tuple(d.get("classes") or ()))
