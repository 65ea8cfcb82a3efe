"""Typed, frozen results of the statistics core (no string-keyed dicts): ``PairTest``, ``Metric``."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class PairTest:
    """A paired two-sided test of AUROC(a) - AUROC(b) on the same images.

    ``test`` names the method actually used (e.g. ``delong, patient-clustered (Obuchowski)`` or
    ``permutation (Bandos), 2000 swaps``). ``p_floor`` is the smallest p-value the method can report (Monte
    Carlo: 1/(B+1)); None for an analytic p-value. ``ci`` is the (low, high) interval of ``delta`` where the
    method gives one.
    """

    auc_a: float
    auc_b: float
    delta: float
    ci: tuple[float, float] | None
    p_value: float
    test: str
    n_pos_images: int
    n_pos_patients: int
    n_neg_patients: int
    se: float | None = None
    p_floor: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Metric:
    """A bootstrapped metric: point value, interval (None when not reported), and honesty counts.

    ``n_undefined_replicates``: replicates in which the metric (or, for a macro, one of its classes) was
    undefined, left out of the interval; ``classes``: the fixed class set of a macro average.
    """

    value: float | None  # None: undefined (no finite value)
    ci: tuple[float, float] | None
    n_undefined_replicates: int = 0
    replicates: int = 0
    method: str = "percentile"
    classes: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return asdict(self)
