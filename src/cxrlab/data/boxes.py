"""Bounding-box tables in NIH ``BBox_List_2017.csv`` layout (NIH's expert boxes and the phantom's planted ones).

NIH's header is odd: ``Image Index,Finding Label,Bbox [x,y,w,h],Unnamed: 6,Unnamed: 7,Unnamed: 8``; the four
numbers x, y, w, h sit in columns 3-6 and rows may carry trailing empty fields. NIH coordinates are in the
1024x1024 image space; the phantom's are in its own size (``boxes_image_size`` in ``index.json``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cxrlab.errors import CxrlabError

BOX_COLUMNS = ["image_id", "label", "x", "y", "w", "h"]
NIH_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],Unnamed: 6,Unnamed: 7,Unnamed: 8"


def read_boxes(path: str | Path) -> pd.DataFrame:
    """Read a boxes table as ``DataFrame[image_id, label, x, y, w, h]`` (x, y, w, h float).

    Accepts NIH's layout (positional: id, label, x, y, w, h) and an already normalised table with those
    column names.
    """
    path = Path(path)
    if not path.exists():
        raise CxrlabError(f"{path}: boxes file not found; pass a BBox_List_2017.csv-style table")
    try:
        raw = pd.read_csv(path, header=0, index_col=False, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CxrlabError(f"{path}: cannot parse boxes table ({exc}); expected NIH BBox_List_2017.csv layout") from None
    if set(BOX_COLUMNS) <= set(raw.columns):
        raw = raw[BOX_COLUMNS]
    elif raw.shape[1] >= 6:
        raw = raw.iloc[:, :6]
        raw.columns = BOX_COLUMNS
    else:
        raise CxrlabError(f"{path}: boxes table needs 6 columns (Image Index, Finding Label, x, y, w, h); "
                          f"found {raw.shape[1]}")
    frame = raw.dropna(subset=["image_id"]).copy()
    for col in ("x", "y", "w", "h"):
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0]) + 2  # 1-based, after the header
            value = frame[col].iloc[row - 2]
            raise CxrlabError(f"{path}: row {row} has a non-numeric {col!r} ({value!r}); fix or drop the row")
        frame[col] = values.astype(float)
    frame["image_id"] = frame["image_id"].str.strip()
    frame["label"] = frame["label"].str.strip()
    return frame.reset_index(drop=True)


def write_boxes(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a ``[image_id, label, x, y, w, h]`` frame in NIH layout (header included)."""
    from cxrlab.utils import atomic_write_text

    lines = [NIH_HEADER]
    for row in frame[BOX_COLUMNS].itertuples(index=False):
        lines.append(",".join([str(row[0]), str(row[1]), *(f"{float(v):.10g}" for v in row[2:])]))
    atomic_write_text(path, "\n".join(lines) + "\n")
    return Path(path)
