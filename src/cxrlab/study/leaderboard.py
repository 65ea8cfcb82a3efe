"""A study's results as typed, frozen records: the runs, the arms' leaderboard rows, the differences between
arms, and the study report around them (pure data: no I/O, no rendering, no numbers computed here).

``study.scores`` builds them, ``study.report`` renders their attributes, and each ``to_dict`` writes exactly
the JSON of ``study_report.json`` (schema ``cxrlab.study_report/1``); ``from_dict`` reads it back.
A value that can be undefined (no finite number) is None, as in the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from cxrlab.evaluate.stats.comparison import ClassCounts  # one record of what a class's AUROC rests on

SCHEMA = "cxrlab.study_report/1"

Interval = tuple[float | None, float | None]


def _pair(v: Any) -> Interval | None:
    return None if v is None else (v[0], v[1])


def _list(v: Interval | None) -> list | None:
    return None if v is None else list(v)


@dataclass(frozen=True)
class RunScore:
    """One run (one arm, one seed) scored as ``compare`` scores it: headline with patient-bootstrap CI."""

    name: str
    arm: str
    seed: int
    headline: float | None
    headline_ci: Interval | None
    macro_auroc: float | None
    macro_f1: float | None
    per_class: dict[str, float | None]
    thresholds: Any  # how the F1 thresholds were chosen (``compare``'s record, e.g. "youden on validation")
    seed_paper: dict[str, float | None] | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arm": self.arm, "seed": self.seed, "headline": self.headline,
                "headline_ci": _list(self.headline_ci), "macro_auroc": self.macro_auroc, "macro_f1": self.macro_f1,
                "per_class": dict(self.per_class), "thresholds": self.thresholds, "seed_paper": self.seed_paper}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunScore:
        return cls(**{**d, "headline_ci": _pair(d["headline_ci"])})


@dataclass(frozen=True)
class ArmRow:
    """One leaderboard row: a training arm or study ensemble (mean ± sd over seeds, two-level CI of the seed
    mean) or a seed ensemble (``kind="seed_ensemble"``, ``of`` its arm: one model, so ``sd`` is None).

    ``per_class``: class -> (mean, sd); ``cost``: the measured cost record (``collect.arm_costs``);
    ``swept``/``diff``: the arm's swept values and config differences from the base; ``strategy``: how it was
    trained, in words.
    """

    arm: str
    n_seeds: int
    seeds: tuple[int, ...]
    mean: float | None
    sd: float | None
    ci: Interval | None
    ci_method: str
    per_class: dict[str, Interval]
    seed_paper: dict[str, float | None] | None
    other_mean: float | None  # the other macro metric (macro F1 beside a macro AUROC headline), seed mean
    kind: str = "arm"  # "arm", "ensemble" (a study ensemble) or "seed_ensemble"
    of: str | None = None
    cost: dict[str, Any] = field(default_factory=dict)
    swept: dict[str, Any] = field(default_factory=dict)
    diff: dict[str, Any] = field(default_factory=dict)
    strategy: str | None = None

    def to_dict(self) -> dict[str, Any]:
        head = {"arm": self.arm}
        if self.kind == "seed_ensemble":
            head |= {"kind": self.kind, "of": self.of}
        body = {"n_seeds": self.n_seeds, "seeds": list(self.seeds), "mean": self.mean, "sd": self.sd,
                "ci": _list(self.ci), "ci_method": self.ci_method,
                "per_class": {c: list(v) for c, v in self.per_class.items()}, "seed_paper": self.seed_paper,
                "other_mean": self.other_mean, "cost": self.cost}
        if self.kind != "seed_ensemble":
            body["kind"] = self.kind
        return head | body | {"swept": self.swept, "diff": self.diff, "strategy": self.strategy}

    def external_dict(self) -> dict[str, Any]:
        """The row as an external test set's table holds it."""
        return {"arm": self.arm, "n_seeds": self.n_seeds, "mean": self.mean, "sd": self.sd, "ci": _list(self.ci)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArmRow:
        return cls(**{**d, "seeds": tuple(d.get("seeds", ())), "ci": _pair(d["ci"]),
                      "per_class": {c: _pair(v) for c, v in d.get("per_class", {}).items()},
                      "seed_paper": d.get("seed_paper"), "other_mean": d.get("other_mean"),
                      "ci_method": d.get("ci_method", "")})


@dataclass(frozen=True)
class SeedTest:
    """``compare``'s paired bootstrap test of one seed both arms ran (its two runs)."""

    seed: int
    delta: float | None
    delta_ci: Interval | None
    p_value: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "delta": self.delta, "delta_ci": _list(self.delta_ci), "p_value": self.p_value}


@dataclass(frozen=True)
class ArmDifference:
    """``a`` minus ``b`` in seed means of ``metric`` (``class_`` "macro" or a class name), with its two-level
    bootstrap CI and p-value, the Holm-adjusted p over all the study's differences, and (macro metrics) each
    shared seed's own paired test."""

    a: str
    b: str
    class_: str
    metric: str
    test: str
    delta: float | None
    delta_ci: Interval | None
    p_value: float | None
    n_seeds: tuple[int, int]
    per_seed: tuple[SeedTest, ...] | None = None  # macro rows only
    p_adjusted: float | None = None

    @property
    def macro(self) -> bool:
        return self.class_ == "macro"

    def to_dict(self) -> dict[str, Any]:
        out = {"a": self.a, "b": self.b, "class": self.class_, "metric": self.metric, "test": self.test,
               "delta": self.delta, "delta_ci": _list(self.delta_ci), "p_value": self.p_value,
               "n_seeds": list(self.n_seeds)}
        if self.per_seed is not None:
            out["per_seed"] = [s.to_dict() for s in self.per_seed]
        return out | {"p_adjusted": self.p_adjusted}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArmDifference:
        per_seed = d.get("per_seed")
        return cls(d["a"], d["b"], d["class"], d["metric"], d["test"], d["delta"], _pair(d["delta_ci"]),
                   d["p_value"], (d["n_seeds"][0], d["n_seeds"][1]),
                   None if per_seed is None else tuple(SeedTest(**{**s, "delta_ci": _pair(s["delta_ci"])})
                                                       for s in per_seed), d.get("p_adjusted"))


@dataclass(frozen=True)
class Bootstrap:
    """How the intervals were drawn: patient resamples shared by every run, seeds resampled within an arm."""

    replicates: int
    seed: int
    unit: str = "patient"
    level: float = 0.95
    seeds: str = "resampled within each arm (two-level bootstrap)"

    def to_dict(self) -> dict[str, Any]:
        return {"replicates": self.replicates, "seed": self.seed, "unit": self.unit, "level": self.level,
                "seeds": self.seeds}


@dataclass(frozen=True)
class Leaderboard:
    """Every run, arm row and difference of one study on one test split (the scored images and classes)."""

    task: str
    headline: str  # "macro_auroc" (multi-label) or "macro_f1" (multi-class)
    per_class_metric: str  # "auroc" or "f1"
    classes: tuple[str, ...]
    macro_classes: tuple[str, ...]
    excluded: tuple[str, ...]
    undefined: tuple[str, ...]
    notes: tuple[str, ...]
    images: int
    patients: int
    bootstrap: Bootstrap
    runs: tuple[RunScore, ...]
    arms: tuple[ArmRow, ...] = ()
    tests: tuple[ArmDifference, ...] = ()
    adjustment: str = "holm"

    @property
    def other_metric(self) -> str:
        return "macro_f1" if self.headline == "macro_auroc" else "macro_auroc"

    def with_arms(self, arms: list[ArmRow], tests: list[ArmDifference]) -> Leaderboard:
        return replace(self, arms=tuple(arms), tests=tuple(tests))

    def scores_dict(self) -> dict[str, Any]:
        """The scoring part (task .. runs), as the JSON holds it before the arms."""
        return {"task": self.task, "headline": self.headline, "per_class_metric": self.per_class_metric,
                "classes": list(self.classes), "macro_classes": list(self.macro_classes),
                "excluded": list(self.excluded), "undefined": list(self.undefined), "notes": list(self.notes),
                "counts": {"images": self.images, "patients": self.patients}, "bootstrap": self.bootstrap.to_dict(),
                "runs": [r.to_dict() for r in self.runs]}

    def to_dict(self) -> dict[str, Any]:
        return self.scores_dict() | {"arms": [a.to_dict() for a in self.arms],
                                     "tests": [t.to_dict() for t in self.tests], "adjustment": self.adjustment}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Leaderboard:
        return cls(d["task"], d["headline"], d["per_class_metric"], tuple(d["classes"]), tuple(d["macro_classes"]),
                   tuple(d["excluded"]), tuple(d["undefined"]), tuple(d["notes"]), d["counts"]["images"],
                   d["counts"]["patients"], Bootstrap(**d["bootstrap"]),
                   tuple(RunScore.from_dict(r) for r in d["runs"]), tuple(ArmRow.from_dict(a) for a in d["arms"]),
                   tuple(ArmDifference.from_dict(t) for t in d["tests"]), d.get("adjustment", "holm"))


@dataclass(frozen=True)
class ExternalResult:
    """The arms' seed means on one external test set (the runs that predicted it)."""

    headline: str
    images: int
    patients: int
    arms: tuple[ArmRow, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"headline": self.headline, "counts": {"images": self.images, "patients": self.patients},
                "arms": [a.external_dict() for a in self.arms]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExternalResult:
        arms = tuple(ArmRow(a["arm"], a["n_seeds"], (), a["mean"], a["sd"], _pair(a["ci"]), "", {}, None, None)
                     for a in d["arms"])
        return cls(d["headline"], d["counts"]["images"], d["counts"]["patients"], arms)


@dataclass(frozen=True)
class StudyResults:
    """The content of ``study_report.json``: the study, how it was scored, its leaderboard; ``curves``, ``plan``
    and ``run_records`` feed the report's figures and provenance and are not written."""

    study: str
    description: str
    budget: Any
    reference: str | None
    smoke: bool
    options: dict[str, Any]  # the EvalOptions record, as ``evaluate`` and ``compare`` write it
    planned_runs: int
    finished_runs: int
    class_counts: dict[str, ClassCounts]
    min_patients: int  # the stats core's minimum of positive and negative patients (EvalOptions.exact_below)
    board: Leaderboard
    external: dict[str, ExternalResult]
    cores: int | None
    curves: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    plan: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    run_records: tuple[dict[str, Any], ...] = field(default=(), compare=False, repr=False)

    def thin(self, cls: str) -> bool:
        """Whether ``cls`` has fewer than ``min_patients`` positive or negative patients (unknown: not thin)."""
        n = self.class_counts.get(cls)
        return n is not None and n.thin(self.min_patients)

    def thin_classes(self) -> list[str]:
        return [c for c in self.board.classes if self.thin(c)]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "external": {k: v.to_dict() for k, v in self.external.items()},
                "study": self.study, "class_counts": {c: n.to_dict() for c, n in self.class_counts.items()},
                "min_patients": self.min_patients, "description": self.description, "budget": self.budget,
                "reference": self.reference, "smoke": self.smoke, "options": self.options,
                "planned_runs": self.planned_runs, "finished_runs": self.finished_runs,
                **self.board.to_dict(), "cores": self.cores}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudyResults:
        return cls(d["study"], d["description"], d["budget"], d["reference"], d["smoke"], d["options"],
                   d["planned_runs"], d["finished_runs"],
                   {c: ClassCounts(**n) for c, n in d["class_counts"].items()}, d["min_patients"],
                   Leaderboard.from_dict(d), {k: ExternalResult.from_dict(v) for k, v in d["external"].items()},
                   d["cores"])
