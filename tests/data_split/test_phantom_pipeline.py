"""The whole data path on a tiny phantom: index -> split -> audit -> cache -> dataset (skips until it exists)."""

from __future__ import annotations

import pytest
import torch

from cxrlab.cli import main
from cxrlab.data.cache import open_cache
from cxrlab.data.dataset import CachedImageDataset
from cxrlab.data.index import load_index
from cxrlab.data.splits import load_split, split_ids

phantom = pytest.importorskip("cxrlab.data.phantom")


@pytest.mark.parametrize("task", ["multilabel", "multiclass"])
def test_phantom_split_audit_cache_dataset(tmp_path, task):
    phantom.make_phantom_index(tmp_path / "ph", n=60, task=task, size=32, seed=0)
    index_csv = tmp_path / "ph" / "index" / "index.csv"
    split_csv, cache_dir = tmp_path / "split.csv", tmp_path / "cache"
    assert main(["data", "split", str(index_csv), "--out", str(split_csv), "--val", "0.2", "--test", "0.2"]) == 0
    assert main(["data", "audit", str(index_csv), "--split", str(split_csv)]) == 0
    assert main(["data", "cache", str(index_csv), "--out", str(cache_dir), "--size", "32", "--workers", "1"]) == 0
    index, split = load_index(index_csv), load_split(split_csv)
    ds = CachedImageDataset(index, split_ids(split, "val"), open_cache(cache_dir))
    assert len(ds) == (split["split"] == "val").sum() > 0 and ds.n_excluded == 0
    x, y, _ = ds[0]
    assert x.shape == (1, 32, 32) and x.dtype == torch.uint8
    assert y.dtype == (torch.int64 if task == "multiclass" else torch.float32)
