"""Cache pixel checksums: recorded per chunk at build time, checked once per process (and per DataLoader worker)
as rows are read; a flipped byte is one error naming the file and chunk; old caches warn once and are upgraded
by rerunning the build."""

from __future__ import annotations

import json
import pickle
import warnings
import zlib

import numpy as np
import pytest
from torch.utils.data import DataLoader

from cxrlab.data import cache as cache_mod
from cxrlab.data.cache import CacheDamaged, _sealed, build_cache, open_cache
from cxrlab.data.dataset import CachedImageDataset
from cxrlab.errors import CxrlabError

SIZE = 16  # 256 bytes per image


@pytest.fixture
def built(image_index, tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "CHECK_BYTES", 5 * SIZE * SIZE)  # 5 images per chunk: 24 images, 5 chunks
    build_cache(image_index, tmp_path / "cache", size=SIZE, workers=1, progress=False)
    return tmp_path / "cache"


def _flip(path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1
    path.write_bytes(bytes(data))


def test_the_recorded_checksums_are_the_crc32_of_each_chunk_of_the_file(built):
    meta = json.loads((built / "meta.json").read_text())
    raw = (built / "images.u8").read_bytes()  # computed here from the file's bytes, not through the cache module
    step = 5 * SIZE * SIZE
    assert meta["chunk_rows"] == 5
    assert meta["chunk_crc32"] == [zlib.crc32(raw[i : i + step]) for i in range(0, len(raw), step)]
    cache = open_cache(built)
    assert all(np.array_equal(cache.read(r), cache.images[r]) for r in range(len(cache)))


def test_a_flipped_pixel_byte_stops_reads_of_its_chunk_only(built):
    _flip(built / "images.u8", 7 * SIZE * SIZE + 3)  # image 7: chunk 1 (images 5..9)
    cache = open_cache(built)  # meta.json is intact: opening succeeds, the pixels are checked when read
    cache.read(0)
    cache.read(12)
    with pytest.raises(CacheDamaged, match=r"images\.u8: chunk 1 \(images 5\.\.9\) changed.*--force") as exc:
        cache.read(5)
    assert str(built / "images.u8") in str(exc.value) and "\n" not in str(exc.value)


def test_each_process_checks_for_itself(built):
    cache = open_cache(built)
    cache.read(0)
    assert cache._verified == {0}
    _flip(built / "images.u8", 1)
    cache.read(1)  # this process checked chunk 0 before the flip: not read again
    clone = pickle.loads(pickle.dumps(cache))  # what a spawned DataLoader worker receives
    with pytest.raises(CacheDamaged, match="chunk 0"):
        clone.read(1)


def test_a_damaged_chunk_read_by_a_dataloader_worker_is_one_line(built, image_index):
    _flip(built / "images.u8", 20 * SIZE * SIZE)  # chunk 4
    ds = CachedImageDataset(image_index, image_index.image_ids, built)
    loader = DataLoader(ds, batch_size=4, num_workers=1)
    with pytest.raises(CxrlabError) as exc:
        [x for x, _, _ in loader]
    message = str(exc.value)
    assert "\n" not in message and message.startswith(str(built / "images.u8")) and "chunk 4" in message


def test_a_cache_without_checksums_warns_once_and_a_rerun_adds_them(built, image_index):
    meta = json.loads((built / "meta.json").read_text())
    del meta["chunk_rows"], meta["chunk_crc32"]
    (built / "meta.json").write_text(json.dumps(_sealed(meta)))
    cache_mod._WARNED.discard(str(built))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        open_cache(built).read(3)
        open_cache(built)
    assert len(caught) == 1 and "no pixel checksums" in str(caught[0].message)
    report = build_cache(image_index, built, size=SIZE, workers=1, progress=False)
    assert report["built"] == 0 and len(json.loads((built / "meta.json").read_text())["chunk_crc32"]) == 5


def test_an_unfinished_cache_records_no_checksums(image_index, tmp_path):
    build_cache(image_index, tmp_path / "c", size=SIZE, workers=1, limit=3, progress=False)
    assert "chunk_crc32" not in json.loads((tmp_path / "c" / "meta.json").read_text())
