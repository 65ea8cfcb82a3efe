"""Splits of a merged index (``cxrlab data merge``): stratified per source, official lists, a held-out source.

A merged index has a ``source`` column and patients namespaced by source, so a patient never spans sources.
``source_strata`` adds, per source, an image-count column and one positives column per finding to what the
iterative stratification balances: every split gets its share of each source and of each source's findings
(a finding a source does not label counts nothing for it). ``official_by_source`` honours the official
test list of the members that have one (NIH's ``test_list.txt``, CheXpert's ``valid.csv``) and stratifies
the others; ``hold_out_source_split`` puts one whole source in test (the external-validation design).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from cxrlab.data.index import Index
from cxrlab.errors import CxrlabError


def sources_of(index: Index) -> list[str]:
    """The sources of a merged index (empty for an index without a ``source`` column or with only one)."""
    if "source" not in index.frame.columns:
        return []
    names = sorted(index.frame["source"].dropna().astype(str).unique())
    return names if len(names) > 1 else []


def source_strata(index: Index, labels: np.ndarray) -> np.ndarray:
    """(N, C) labels plus, per source, [is this source, positives of each finding in this source] columns.

    ``labels`` is returned unchanged for an index with fewer than two sources (single-dataset splits stay as
    they were)."""
    names = sources_of(index)
    if not names:
        return labels
    source = index.frame["source"].astype(str).to_numpy()
    blocks = [labels]
    for name in names:
        here = (source == name).astype(labels.dtype)[:, None]  # (N, 1)
        blocks += [here, labels * here]
    return np.hstack(blocks)


def _check_source(index: Index, name: str) -> None:
    names = sources_of(index)
    if not names:
        raise CxrlabError("--hold-out-source needs a merged index with a source column holding two or more "
                          "sources; make one with `cxrlab data merge`")
    if name not in names:
        raise CxrlabError(f"--hold-out-source {name!r} is not a source of this index; sources: {', '.join(names)}")


Splitter = Callable[[Index], pd.DataFrame]  # an index -> DataFrame image_id, split (the makers of data.splits)


def hold_out_source_split(index: Index, name: str, split_rest: Splitter) -> pd.DataFrame:
    """Every image of source ``name`` in test; ``split_rest`` splits the other sources (by patient).

    Returns:
        DataFrame ``image_id, split`` in index order.
    """
    _check_source(index, name)
    held = index.frame["source"].astype(str) == name
    rest = index.subset(index.frame.loc[~held, "image_id"].astype(str).tolist())
    inner = split_rest(rest).set_index("image_id")["split"]
    ids = index.frame["image_id"].astype(str)
    split = np.where(held, "test", ids.map(inner))
    return pd.DataFrame({"image_id": ids.to_numpy(), "split": split})


def _has_official_test(index: Index, rows: pd.Series) -> bool:
    if "official_split" not in index.frame.columns:
        return False
    official = index.frame.loc[rows, "official_split"].astype("string").str.strip().str.lower()
    return bool(official.isin(["train_val", "test"]).all() and (official == "test").any())


def official_by_source(index: Index, official: Splitter, stratified: Splitter) -> tuple[pd.DataFrame, dict[str, str]]:
    """Members with an official test list keep it (``official``: val carved by patient from their train_val);
    the other sources are split by ``stratified``.

    Returns:
        (DataFrame ``image_id, split`` in index order, {source: "official" | "stratified"}).
    """
    source = index.frame["source"].astype(str)
    how = {name: ("official" if _has_official_test(index, source == name) else "stratified")
           for name in sources_of(index)}
    if "official" not in how.values():
        raise CxrlabError("--official: no source of this merged index has an official test list (an "
                          "official_split column with test rows, e.g. NIH's test_list.txt); drop --official")
    parts = []
    for kind, maker in (("official", official), ("stratified", stratified)):
        names = [n for n, k in how.items() if k == kind]
        if names:
            parts.append(maker(index.subset(index.frame.loc[source.isin(names), "image_id"].astype(str).tolist())))
    by_id = pd.concat(parts).set_index("image_id")["split"]
    ids = index.frame["image_id"].astype(str)
    return pd.DataFrame({"image_id": ids.to_numpy(), "split": ids.map(by_id).to_numpy()}), how
