"""The study file: a YAML mapping validated like the training config (nested dataclasses, unknown keys named).

A study is the unit of work: the same data, base recipe and budget for every arm; arms listed or swept;
seeds; a reference arm; val-fitted ensembles; and how to evaluate. ``load_study(path)`` reads and validates
it; ``cxrlab.study.plan.make_plan`` expands it into runs.

```yaml
name: s1_paper_nih
data: {index: data/index, split: data/split.csv, cache: data/cache}   # or {root: ..., format: nih}
base: {recipe: configs/nih/vit_v1.yaml, set: {train.batch_size: 32}}
budget: {epochs: 10}                                                    # or {images: 40000}
arms:
  - {name: cnn, recipe: configs/nih/cnn_baseline.yaml}
  - {name: vit, set: {model.name: vit_v1}}
sweep: {data.image_size: [224, 320]}
seeds: [0, 1, 2]
reference: cnn
ensembles: [{name: cnn+vit, members: [cnn, vit], method: weighted}]
evaluate: {bootstrap: 1000, threshold_method: youden, split: test}
```
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxrlab.errors import CxrlabError
from cxrlab.schema import Schema, dataclass_from_dict, load_yaml

if TYPE_CHECKING:
    from cxrlab.evaluate.options import EvalOptions

ENSEMBLE_METHODS = ("mean", "weighted", "class", "rank", "stack")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.,=+-]*$")  # run folder names: no slash, no space


def _check(ok: bool, key: str, msg: str) -> None:
    if not ok:
        raise CxrlabError(f"study {key}: {msg}")


@dataclass
class StudyData:
    index: str | None = None
    """Index folder or ``index.csv``; with ``split`` (and ``cache``), the data every arm uses."""
    split: str | None = None
    """``split.csv`` (patient-level train/val/test) for ``index``."""
    cache: str | None = None
    """Cache folder for ``index`` (null: decode from disk each epoch)."""
    root: str | None = None
    """Instead of ``index``: a dataset folder the study indexes, splits, audits and caches once into DIR/data."""
    format: str = "nih"
    """Format of ``root`` for ``cxrlab data index`` (nih, csv, folder, ...)."""
    labels: str | None = None
    """Labels/metadata CSV for ``root`` (default: the format's own)."""
    val: float = 0.1
    """Validation fraction of the split made from ``root``."""
    test: float = 0.2
    """Test fraction of the split made from ``root``."""
    split_seed: int = 0
    """Seed of the split made from ``root``."""
    cache_size: int = 256
    """Side of the cache made from ``root``."""

    def __post_init__(self) -> None:
        _check(not (self.index and self.root), "data", "give either index (+ split, cache) or root (+ format)")
        _check(self.index is None or self.split is not None, "data.split", "an index needs its split.csv")
        _check(0 < self.val < 1 and 0 < self.test < 1 and self.val + self.test < 1, "data.val",
               "val and test fractions must be in (0, 1) and sum below 1")


@dataclass
class StudyBase:
    recipe: str | None = None
    """A recipe from ``configs/`` (e.g. ``configs/nih/vit_v1.yaml``) or a YAML file; null = config defaults."""
    set: dict[str, Any] = field(default_factory=dict)
    """Config overrides shared by every arm, as ``{dotted.key: value}``."""


@dataclass
class StudyBudget:
    epochs: int | None = None
    """The same number of epochs for every arm."""
    images: int | None = None
    """Or the same number of training images seen: epochs = round(images / images per epoch), at least 1."""

    def __post_init__(self) -> None:
        _check(self.epochs is None or self.images is None, "budget", "give epochs or images, not both")
        _check(self.epochs is None or 1 <= self.epochs <= 100_000, "budget.epochs", "must be in 1..100000")
        _check(self.images is None or 1 <= self.images <= 10**12, "budget.images", "must be in 1..1e12")


@dataclass
class StudyArm:
    name: str = ""
    """Readable, unique name (the run folders are ``runs/<name>-s<seed>``)."""
    recipe: str | None = None
    """A recipe replacing the base recipe for this arm (its ``base.set`` still applies)."""
    set: dict[str, Any] = field(default_factory=dict)
    """Config overrides of this arm, applied after ``base.set``."""

    def __post_init__(self) -> None:
        _check(bool(NAME_RE.match(self.name or "")), "arms.name",
               f"{self.name!r} must be a non-empty name of letters, digits and _.,=+- (it names folders)")


@dataclass
class StudyEnsemble:
    name: str = ""
    """Name of the ensemble, scored like an arm."""
    members: list[str] = field(default_factory=list)
    """Names of the arms it combines (the same seed of each)."""
    method: str = "weighted"
    """``cxrlab ensemble`` method: mean, weighted, class, rank or stack (fitted ones are fitted on val)."""

    def __post_init__(self) -> None:
        _check(bool(NAME_RE.match(self.name or "")), "ensembles.name", f"{self.name!r} is not a valid name")
        _check(len(self.members) >= 2, f"ensembles.{self.name}.members", "needs at least two arm names")
        _check(self.method in ENSEMBLE_METHODS, f"ensembles.{self.name}.method",
               f"{self.method!r} is not one of {', '.join(ENSEMBLE_METHODS)}")


@dataclass
class StudyExternal:
    name: str = ""
    """Name of the external test set in the report."""
    index: str = ""
    """Its index folder or index.csv (every image of it is a test image; decoded from its files)."""

    def __post_init__(self) -> None:
        _check(bool(NAME_RE.match(self.name or "")), "evaluate.external.name", f"{self.name!r} is not a valid name")
        _check(bool(self.index), f"evaluate.external.{self.name}.index", "needs the index of the external test set")


@dataclass
class StudyEvaluate:
    bootstrap: int = 1000
    """Patient-bootstrap replicates for the confidence intervals and paired tests."""
    threshold_method: str = "youden"
    """How F1 thresholds are chosen on validation predictions (``cxrlab evaluate --threshold-method``)."""
    split: str = "test"
    """The split the leaderboard is scored on: test (or val while developing)."""
    external: list[StudyExternal] = field(default_factory=list)
    """Other test sets scored by every run (``{name, index}``), when they exist."""
    seed: int = 0
    """Seed of the bootstrap resamples."""
    exact_below: int = 25
    """Fewest positive (and negative) patients for DeLong's test; below it the permutation test (``cxrlab
    evaluate --exact-below``, docs/evaluation.md), 1..10000. Recorded in the report's ``options``."""

    def __post_init__(self) -> None:
        _check(0 <= self.bootstrap <= 100_000, "evaluate.bootstrap", "must be in 0..100000")
        _check(self.split in ("test", "val"), "evaluate.split", f"{self.split!r} is not test or val")
        try:
            self.options()  # validated where the CLI's and the library's options are
        except CxrlabError as exc:
            raise CxrlabError(f"study evaluate: {exc}") from None

    def options(self) -> EvalOptions:
        """The ``cxrlab.evaluate.options.EvalOptions`` this block sets (the others keep their defaults)."""
        return evaluate_options(asdict(self))


def evaluate_options(block: dict[str, Any]) -> EvalOptions:
    """``EvalOptions`` from a study's ``evaluate`` block as ``plan.json`` records it (older plans lack
    ``exact_below``: its default)."""
    from cxrlab.evaluate.options import EvalOptions

    keys = ("bootstrap", "seed", "threshold_method", "exact_below")
    return EvalOptions(**{k: block[k] for k in keys if k in block})


@dataclass
class Study:
    name: str = "study"
    """Short name of the study."""
    description: str = ""
    """What it compares and why (shown at the top of the report)."""
    data: StudyData = field(default_factory=StudyData)
    """The data shared by every arm."""
    base: StudyBase = field(default_factory=StudyBase)
    """The base recipe and overrides shared by every arm."""
    budget: StudyBudget = field(default_factory=StudyBudget)
    """The same training budget for every arm (stated in the report)."""
    arms: list[StudyArm] = field(default_factory=list)
    """The arms, each ``{name, recipe, set}``; with none, the base itself (or the sweep of it) is the study."""
    sweep: dict[str, list[Any]] = field(default_factory=dict)
    """A grid ``{dotted.key: [values]}`` expanded into arms named ``key=value,...`` (crossed with ``arms``)."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Training seeds: every arm runs once per seed."""
    reference: str | None = None
    """The arm the others are tested against; null = every pair."""
    ensembles: list[StudyEnsemble] = field(default_factory=list)
    """Val-fitted ensembles of named arms, scored like arms."""
    evaluate: StudyEvaluate = field(default_factory=StudyEvaluate)
    """How the report scores the runs."""
    cost: bool = True
    """Measure each arm's speed after it trains (GFLOPs, CPU latency and throughput: a few seconds per arm, see
    ``benchmarks/bench_study.py``); false skips it (``study run --no-cost`` too)."""
    seed_in_run_names: bool = True
    """Run folders ``runs/<arm>-s<seed>``; false names them ``runs/<arm>`` (one seed only, as ``cxrlab demo``)."""
    path: str = ""
    """Set by ``load_study``: the file it was read from (not a key of the file)."""

    def __post_init__(self) -> None:
        _check(len(self.seeds) >= 1, "seeds", "needs at least one seed")
        _check(len(set(self.seeds)) == len(self.seeds), "seeds", f"{self.seeds} repeats a seed")
        _check(self.seed_in_run_names or len(self.seeds) == 1, "seed_in_run_names",
               "false needs exactly one seed (run folders would collide)")
        for key, values in self.sweep.items():
            _check(isinstance(values, list) and len(values) >= 1, f"sweep.{key}", "needs a list of values")
        names = [a.name for a in self.arms]
        dup = sorted({n for n in names if names.count(n) > 1})
        _check(not dup, "arms", f"duplicate arm names {', '.join(dup)}; give every arm its own name")


STUDY_SCHEMA = Schema(Study, what="study", lists={"arms": StudyArm, "ensembles": StudyEnsemble,
                                                   "external": StudyExternal},
                      mappings=("set", "sweep"), skip=("path",))


def study_from_dict(data: dict[str, Any], path: str = "") -> Study:
    """Build and validate a ``Study`` from plain data (unknown keys are errors naming the nearest valid one)."""
    study = dataclass_from_dict(STUDY_SCHEMA, data)
    study.path = path
    return study


def load_study(path: str | Path) -> Study:
    """Read and validate a study file; every error names the file."""
    path = Path(path)
    if not path.is_file():
        from cxrlab.config import PACKAGED_CONFIGS

        packaged = PACKAGED_CONFIGS.parent / "studies" / path.name
        if not packaged.is_file() and (PACKAGED_CONFIGS.parent / "studies" / f"{path.name}.yaml").is_file():
            packaged = PACKAGED_CONFIGS.parent / "studies" / f"{path.name}.yaml"
        if not packaged.is_file():
            raise CxrlabError(f"study file {path} does not exist; give a YAML file or a shipped study "
                              f"(studies/{', studies/'.join(shipped_studies())})")
        path = packaged
    data = load_yaml(path) or {}  # a key written twice is an error naming it and its lines
    if not isinstance(data, dict):
        raise CxrlabError(f"{path}: a study must be a YAML mapping (name, data, base, arms, seeds, ...)")
    try:
        return study_from_dict(data, str(path))
    except CxrlabError as exc:
        raise CxrlabError(f"{path}: {exc}") from None


def shipped_studies() -> list[str]:
    """File names of the studies shipped in the package (``studies/`` in a clone)."""
    from cxrlab.config import PACKAGED_CONFIGS

    return sorted(p.name for p in (PACKAGED_CONFIGS.parent / "studies").glob("*.yaml"))
