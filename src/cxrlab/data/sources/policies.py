"""The CheXpert label convention (CheXpert, MIMIC-CXR-JPG) and the two policies that turn it into labels.

Cells hold ``1`` (positive), ``0`` (negative), ``-1`` (uncertain) or blank (not mentioned in the report).

- ``--uncertain`` maps ``-1``: ``ignore`` (unknown: NaN, masked in the loss and the metrics; the CheXpert
  paper's U-Ignore), ``ones`` (U-Ones) or ``zeros`` (U-Zeros).
- ``--blank`` maps blank: ``negative`` (the CheXpert paper's convention: not mentioned = absent) or
  ``unknown`` (NaN, torchxrayvision's convention).

Any other cell value is an error naming the row and the column: a class is never dropped.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from cxrlab.errors import CxrlabError

UNCERTAIN_POLICIES = {"ignore": np.nan, "ones": 1.0, "zeros": 0.0}
BLANK_POLICIES = {"negative": 0.0, "unknown": np.nan}
DEFAULT_UNCERTAIN = "ignore"
DEFAULT_BLANK = "negative"
_VALUES = {"1": 1.0, "1.0": 1.0, "0": 0.0, "0.0": 0.0, "-1": -1.0, "-1.0": -1.0}


def check_policies(uncertain: str | None, blank: str | None) -> tuple[str, str]:
    """Validated (uncertain, blank) policy names, defaults filled in."""
    uncertain = uncertain or DEFAULT_UNCERTAIN
    blank = blank or DEFAULT_BLANK
    if uncertain not in UNCERTAIN_POLICIES:
        raise CxrlabError(f"--uncertain {uncertain!r} is not one of {', '.join(UNCERTAIN_POLICIES)} "
                          "(ignore: unknown, masked; ones: positive; zeros: negative)")
    if blank not in BLANK_POLICIES:
        raise CxrlabError(f"--blank {blank!r} is not one of {', '.join(BLANK_POLICIES)} "
                          "(negative: CheXpert's convention; unknown: torchxrayvision's)")
    return uncertain, blank


def map_uncertain_labels(raw: pd.DataFrame, classes: list[str], where: Callable[[int], str], uncertain: str,
                         blank: str) -> tuple[pd.DataFrame, dict]:
    """(float frame of ``classes`` with 1/0/NaN, details) under the two policies.

    ``details``: per class the counts of positive, negative, uncertain and blank cells as found, and the
    policies applied. ``where(pos)`` names the file and line of the row at 0-based position ``pos``.
    """
    out = {}
    per_class = {}
    for c in classes:
        text = raw[c].fillna("").astype(str).str.strip()
        mapped = text.map(_VALUES)
        bad = mapped.isna() & (text != "")
        if bad.any():
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            raise CxrlabError(f"{where(pos)}, column {c!r}: value {text.iloc[pos]!r} is not 1, 0, "
                              "-1 or blank; fix the cell (a class is never dropped)")
        values = mapped.to_numpy(dtype=np.float64)
        counts = {"positive": int((values == 1).sum()), "negative": int((values == 0).sum()),
                  "uncertain": int((values == -1).sum()), "blank": int(np.isnan(values).sum())}
        values = np.where(values == -1, UNCERTAIN_POLICIES[uncertain], values)
        values = np.where(text.to_numpy() == "", BLANK_POLICIES[blank], values)
        out[c] = values
        per_class[c] = counts
    details = {"uncertain_policy": uncertain, "blank_policy": blank, "label_cells": per_class,
               "uncertain_total": int(sum(v["uncertain"] for v in per_class.values()))}
    return pd.DataFrame(out, index=raw.index), details
