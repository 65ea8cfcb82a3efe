"""Merged data in training: the source of each training row (for ``data.source_weights``) and the validation
metric of each source (``val_metric_<source>`` columns of ``metrics.csv``)."""

from __future__ import annotations

import numpy as np

from cxrlab.data.index import Index
from cxrlab.train.loop import val_metric


def row_sources(index: Index, image_ids: list[str]) -> np.ndarray | None:
    """(N,) source of each of ``image_ids``; None when the index has no ``source`` column."""
    if "source" not in index.frame.columns:
        return None
    by_id = dict(zip(index.frame["image_id"].astype(str), index.frame["source"].astype(str)))
    return np.array([by_id[str(i)] for i in image_ids], dtype=object)


def per_source_metrics(index: Index, result: dict, task: str, num_classes: int) -> dict[str, float]:
    """``{val_metric_<source>: metric}`` over each source's validation rows (the same metric as ``val_metric``:
    classes a source does not label are NaN there and drop out of its average); empty for a one-source index."""
    sources = row_sources(index, result["ids"])
    if sources is None or len(set(sources)) < 2:
        return {}
    out = {}
    for name in sorted(set(sources)):
        rows = sources == name
        out[f"val_metric_{name}"] = val_metric(task, result["probs"][rows], result["targets"][rows], num_classes)
    return out
