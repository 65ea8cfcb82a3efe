"""Cached and file Datasets: items, targets, weights, excluded images, DataLoader workers."""

from __future__ import annotations

import numpy as np
import torch
from split_helpers import make_index
from torch.utils.data import DataLoader

from cxrlab.data.cache import build_cache, open_cache
from cxrlab.data.dataset import CachedImageDataset, FileImageDataset
from cxrlab.data.index import Index, load_index, write_index


def test_cached_and_file_datasets_agree(image_index, tmp_path):
    build_cache(image_index, tmp_path / "cache", size=16, workers=1, progress=False)
    ids = image_index.image_ids[3:9]
    cached = CachedImageDataset(image_index, ids, tmp_path / "cache")
    files = FileImageDataset(image_index, ids, size=16)
    assert len(cached) == len(files) == 6 and cached.n_excluded == 0
    for (xc, yc, ic), (xf, yf, i_f) in zip(cached, files):
        assert xc.dtype == torch.uint8 and xc.shape == (1, 16, 16)
        assert torch.equal(xc, xf) and ic == i_f
        assert yc.dtype == torch.float32 and yc.shape == (3,)
        torch.testing.assert_close(yc, yf, equal_nan=True)
    x, y, image_id = cached[0]
    row = image_index.frame.set_index("image_id").loc[image_id, ["A", "B", "Rare"]].to_numpy(dtype=np.float32)
    np.testing.assert_array_equal(y.numpy(), row)


def test_nan_targets_weights_and_transform(tmp_path):
    index = make_index(tmp_path, n_patients=3, per_patient=1, size=12)
    frame = index.frame.copy()
    frame["A"] = frame["A"].astype(float)
    frame.loc[1, "A"] = np.nan  # unknown label
    frame["weight"] = [1.0, 0.5, 1.0]
    write_index(Index(frame, "multilabel", index.classes, index.root), tmp_path / "index2")
    index = load_index(tmp_path / "index2")
    ds = FileImageDataset(index, index.image_ids, size=8, transform=lambda x: x.float() / 255, return_weight=True)
    x, y, image_id, w = ds[1]
    assert x.dtype == torch.float32 and float(x.max()) <= 1.0
    assert torch.isnan(y[0]) and image_id == index.image_ids[1] and float(w) == 0.5


def test_multiclass_target_is_int64_scalar(tmp_path):
    index = make_index(tmp_path, n_patients=5, per_patient=1, task="multiclass", classes=("n", "b", "v"), size=12)
    build_cache(index, tmp_path / "cache", size=8, workers=1, progress=False)
    ds = CachedImageDataset(index, index.image_ids, open_cache(tmp_path / "cache"))
    _, y, image_id = ds[2]
    assert y.dtype == torch.int64 and y.ndim == 0
    assert int(y) == int(np.argmax(index.frame.loc[2, ["n", "b", "v"]].to_numpy(dtype=float)))


def test_failed_images_excluded_and_dataloader_workers(tmp_path):
    index = make_index(tmp_path, n_patients=5, per_patient=2, size=12)
    index.absolute_paths()[4].write_bytes(b"")  # zero-byte file: fails to cache
    build_cache(index, tmp_path / "cache", size=8, workers=1, progress=False)
    ds = CachedImageDataset(index, index.image_ids, tmp_path / "cache")
    assert len(ds) == 9 and ds.n_excluded == 1 and index.image_ids[4] not in ds.image_ids
    loader = DataLoader(ds, batch_size=4, num_workers=2)
    seen = [i for _, _, ids in loader for i in ids]
    assert seen == ds.image_ids
    x, y, _ = next(iter(DataLoader(ds, batch_size=4)))
    assert x.shape == (4, 1, 8, 8) and y.shape == (4, 3)
