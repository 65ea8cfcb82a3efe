"""Labels for the images of a predictions file, in its class order (fitting verbs: ensemble, selective)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxrlab.data.build_index import read_labels
from cxrlab.errors import CxrlabError


def labels_for(labels_path: str | Path, image_ids: list[str], classes: list[str]) -> np.ndarray:
    """(N, C) float labels (NaN unknown) for ``image_ids`` from an index or labels file; only those rows read."""
    index = read_labels(labels_path)
    missing_cls = [c for c in classes if c not in index.classes]
    if missing_cls:
        raise CxrlabError(f"labels {labels_path} lack class(es) {missing_cls}; use labels for the same classes")
    frame = index.frame.drop_duplicates("image_id").set_index("image_id")
    missing = [i for i in image_ids if i not in frame.index]
    if missing:
        raise CxrlabError(
            f"labels {labels_path} have no row for {len(missing)} validation image(s), e.g. {missing[:3]}; "
            "pass the index the predictions were made on"
        )
    return frame.loc[image_ids, classes].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
