"""``EvalOptions``: how predictions are scored, one frozen record shared by the CLI (``evaluate``, ``compare``),
the library (``evaluate_predictions``, ``compare_runs``) and the study file's ``evaluate:`` block; validated
once, here, with one-line errors; recorded in ``metrics.json`` / ``comparison.json`` as the ``options`` block.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from cxrlab.auroc import DEFAULT_EXCLUDE
from cxrlab.errors import CxrlabError
from cxrlab.evaluate.stats.choose import MIN_PATIENTS

MATCH_MODES = ("exact", "approximate")  # cxrlab.evaluate.matching.MATCH_MODES
MAX_BOOTSTRAP = 100_000
MAX_EXACT_BELOW = 10_000


@dataclass(frozen=True)
class EvalOptions:
    """How to score; every field has the CLI option of the same name (``exact_below`` is ``--exact-below``)."""

    bootstrap: int = 1000
    """Patient-level bootstrap replicates (0: no intervals), 0..100000."""
    seed: int = 0
    """Seed of the bootstrap resamples and the permutation tests."""
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    """Classes left out of the macro average."""
    threshold_method: str = "youden"
    """youden | max_f1 | sens:X | spec:X | fixed:X, chosen on validation predictions."""
    exact_below: int = MIN_PATIENTS
    """Fewest positive (and negative) patients for DeLong's test, an interval and the headline macro; a class
    below it gets the paired permutation test, no interval, and is flagged (docs/evaluation.md), 1..10000."""
    by: tuple[str, ...] = ()
    """Subgroup analysis over these index columns (``sex``, ``age``, ``view`` ...)."""
    age_bands: tuple[float, ...] | None = None
    """Age band edges for ``by=age`` (None: 40, 60, 80)."""
    min_group: int = 30
    """Smallest subgroup scored by ``by``."""
    match: str = "exact"
    """Class matching through the shared findings table: exact | approximate."""
    prefix: str | None = None
    """Class column prefix of the predictions CSV (None: detected)."""
    logits: bool = False
    """The predictions hold logits: sigmoid/softmax first."""
    allow_test_fitting: bool = False
    """Fit thresholds/temperatures even on test predictions (biased; logged loudly and recorded)."""
    allow_unverified: bool = False
    """Fit even where the test-set check is incomplete (logged and recorded)."""

    def __post_init__(self) -> None:
        from cxrlab.evaluate.subgroups import parse_age_bands, parse_by
        from cxrlab.evaluate.thresholds import parse_method

        # frozen: the given forms (``"sex,age"``, ``"40,60"``, lists) are normalised to tuples once, here
        object.__setattr__(self, "exclude", _names(self.exclude))
        object.__setattr__(self, "by", tuple(parse_by(self.by if isinstance(self.by, str) else list(self.by or ()))))
        given_bands = self.age_bands is not None and self.age_bands != ""
        object.__setattr__(self, "age_bands", tuple(parse_age_bands(self.age_bands)) if given_bands else None)
        _int_in(self.bootstrap, 0, MAX_BOOTSTRAP, "bootstrap", "the number of replicates (0: no intervals)")
        _int_in(self.seed, 0, 2**32 - 1, "seed", "a seed")
        _int_in(self.exact_below, 1, MAX_EXACT_BELOW, "exact_below", "the fewest positive and negative patients "
                "for DeLong's test (fewer: the permutation test)")
        _int_in(self.min_group, 1, 10**9, "min_group", "the smallest subgroup scored")
        if self.match not in MATCH_MODES:
            raise CxrlabError(f"--match {self.match!r} is not one of {', '.join(MATCH_MODES)} (evaluate option match)")
        parse_method(self.threshold_method)

    def to_dict(self) -> dict[str, Any]:
        """The JSON block recorded in ``metrics.json`` and ``comparison.json`` (``options``)."""
        d = asdict(self)
        return {**d, "exclude": list(self.exclude), "by": list(self.by),
                "age_bands": list(self.age_bands) if self.age_bands is not None else None}

    @classmethod
    def of(cls, options: EvalOptions | None = None, **overrides: Any) -> EvalOptions:
        """``options`` (default: the defaults) with keyword ``overrides`` of its fields (a library call's
        ``bootstrap=50``); an unknown keyword is an error naming the valid ones."""
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            raise TypeError(f"unknown evaluation option(s) {', '.join(unknown)}; valid: "
                            f"{', '.join(f.name for f in fields(cls))}")
        base = options if options is not None else cls()
        return replace(base, **overrides) if overrides else base

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EvalOptions:
        """From parsed CLI options (``evaluate``, ``compare``): the attributes a verb does not have keep their
        defaults."""
        given = {f.name: getattr(args, f.name) for f in fields(cls) if getattr(args, f.name, None) is not None}
        return cls(**given)


def _names(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value or ())
    return tuple(str(c).strip() for c in items if str(c).strip())


def _int_in(value: Any, lo: int, hi: int, name: str, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        flag = name.replace("_", "-")
        raise CxrlabError(f"--{flag} {value!r}: {what} must be an integer in {lo}..{hi} (evaluate option {name})")
