"""How every number in a report reads: one module for p-values, metrics, intervals, seconds and sizes.

Every report (evaluate, compare, study, demo) formats through these functions, so the same p-value never reads
two ways, and no raw float, JSON, ``[]``, ``{}`` or ``None`` reaches a reader.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def headline(result: dict) -> tuple[str, float | None, list | None]:
    """(name, value, ci) of the headline metric: macro AUROC (multi-label) or macro F1 (multi-class)."""
    key = "auroc" if result["task"] == "multilabel" else "f1"
    return f"macro {key.upper() if key == 'auroc' else 'F1'}", result["macro"][key], result["macro"][f"{key}_ci"]


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def fmt_metric(value: float | None, digits: int = 3) -> str:
    """A metric in [0, 1] (AUROC, F1, accuracy): ``0.812``; ``n/a`` when undefined."""
    return "n/a" if _missing(value) else f"{value:.{digits}f}"


def fmt_ci(value: float | None, ci: list | tuple | None, digits: int = 3) -> str:
    """``0.812 [0.790, 0.833]``; the point alone without an interval; ``n/a`` for undefined values."""
    if _missing(value):
        return "n/a"
    if not ci or _missing(ci[0]) or _missing(ci[1]):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def fmt_signed(value: float | None, digits: int = 3) -> str:
    """A difference: ``+0.131``."""
    return "n/a" if _missing(value) else f"{value:+.{digits}f}"


def fmt_p(p: float | None, floor: float | None = None) -> str:
    """The one way a p-value reads: fixed point, never scientific, never below what its method resolves.

    At a Monte Carlo floor (permutation, bootstrap: 1/(B+1) or 2/(B+1)) ``<=0.002``; an analytic p below 1e-4
    ``<0.0001`` (never ``6.28e-25``); otherwise 3 decimals (4 between 1e-4 and 1e-3)."""
    if _missing(p):
        return "n/a"
    if floor is not None and p <= floor * (1 + 1e-9):
        return f"<={floor:.2g}"
    if p < 1e-4:
        return "<0.0001"
    return f"{p:.4f}" if p < 1e-3 else f"{p:.3f}"


def fmt_seconds(s: float | None) -> str:
    """``0.42 s``, ``12.9 s``, ``4.1 min``, ``2.3 h``."""
    if _missing(s):
        return "n/a"
    if s < 1:
        return f"{s:.2f} s"
    if s < 120:
        return f"{s:.1f} s"
    return f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def fmt_count(n: float | None) -> str:
    """A size or count: ``950``, ``22.2M``, ``1.3k``."""
    if _missing(n):
        return "n/a"
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale and abs(n) >= 10_000:
            return f"{n / scale:.1f}{unit}"
    return f"{int(n)}" if float(n).is_integer() else fmt_number(n)


def fmt_number(v: float | None, digits: int = 3) -> str:
    """Any other float to ``digits`` significant digits, never scientific: ``0.00999``, ``35.9``, ``0.0003``."""
    if _missing(v):
        return "n/a"
    if v == 0:
        return "0"
    return np.format_float_positional(v, precision=digits, unique=True, fractional=False, trim="-")


def fmt_value(v: Any) -> str:
    """A recorded value of any kind in plain words: ``none`` for empty lists/maps and None, ``train 177, val 51``
    for a mapping, ``a, b`` for a list, numbers through ``fmt_number``."""
    if v is None or (isinstance(v, (list, tuple, dict)) and not v):
        return "none"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return fmt_number(v, 4)
    if isinstance(v, Mapping):
        return ", ".join(f"{k} {fmt_value(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt_value(x) for x in v)
    return str(v)


def fmt_p_adjusted(p: float | None, p_adjusted: float | None, floor: float | None = None) -> str:
    """A multiplicity-adjusted p-value: an upper bound (``<=0.01``) when the raw p sat at its Monte Carlo floor."""
    at_floor = floor is not None and not _missing(p) and p <= floor * (1 + 1e-9)
    return fmt_p(p_adjusted, p_adjusted if at_floor else None)


def too_few(n_pos_patients: int, n_neg_patients: int, minimum: int) -> str:
    """Why a class gets no interval or significance star: ``n/a: 2 positive patients (fewer than 25)``."""
    kind, n = ("positive", n_pos_patients) if n_pos_patients < minimum else ("negative", n_neg_patients)
    return f"n/a: {n} {kind} patient{'s' if n != 1 else ''} (fewer than {minimum})"


def is_nih(dataset_format: str | None) -> bool:
    """Whether the labels come from NIH ChestX-ray14, as the index recorded it (its ``format``), so the published
    NIH anchors may stand beside our numbers."""
    return dataset_format == "nih"
