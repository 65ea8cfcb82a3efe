"""Split CSV basics shared by splitting and the audit: split names, patient ids per row, and the one reader
of any split CSV (ours or another tool's). The audit builds on this module, and splitting on the audit."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cxrlab.data.index import Index
from cxrlab.errors import CxrlabError

SPLITS = ("train", "val", "test")
# Names other tools give their splits, mapped to ours.
SPLIT_ALIASES = {"valid": "val", "validation": "val", "dev": "val", "training": "train", "testing": "test"}


def patient_ids(index: Index) -> pd.Series:
    """Patient id per row as str; a row without one is its own patient (the indexer warns about those)."""
    ids = index.frame["image_id"].astype(str)
    return index.frame["patient_id"].astype("string").fillna(ids).astype(str)


def read_split_csv(path: str | Path, missing_hint: str) -> pd.DataFrame:
    """Any split CSV as text columns, with NIH's ``Image Index`` read as ``image_id``; both columns required.

    Shared by ``load_split`` (our own splits, strictly validated) and the audit (other tools' splits too).
    """
    path = Path(path)
    if not path.is_file():
        raise CxrlabError(f"{path} does not exist; {missing_hint}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise CxrlabError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    if "image_id" not in frame.columns and "Image Index" in frame.columns:
        frame = frame.rename(columns={"Image Index": "image_id"})
    missing = [c for c in ("image_id", "split") if c not in frame.columns]
    if missing:
        raise CxrlabError(f"{path} lacks column(s) {', '.join(missing)}; a split CSV needs image_id and split")
    return frame
