"""Preprocessing cache: contents, resume after an interruption, failed images, mismatches, the verb."""

from __future__ import annotations

import numpy as np
import pytest
from split_helpers import make_index

from cxrlab.cli import main
from cxrlab.data.cache import build_cache, open_cache
from cxrlab.data.images import read_image, resize_image
from cxrlab.errors import CxrlabError


def test_cache_rows_match_decoder(image_index, tmp_path):
    report = build_cache(image_index, tmp_path / "cache", size=16, workers=1, progress=False)
    assert report["ok"] == len(image_index) and report["failed"] == 0 and report["complete"]
    cache = open_cache(tmp_path / "cache")
    assert cache.images.shape == (len(image_index), 16, 16) and cache.images.dtype == np.uint8
    assert cache.ok.all() and cache.image_ids == image_index.image_ids
    path = image_index.absolute_paths()[5]
    expected = resize_image(read_image(path), 16, "letterbox")
    np.testing.assert_array_equal(cache.images[cache.row(image_index.image_ids[5])], expected)
    with pytest.raises(CxrlabError, match="not in the cache"):
        cache.row("nope.png")


def test_resume_after_interruption_is_byte_identical(image_index, tmp_path):
    build_cache(image_index, tmp_path / "full", size=16, workers=1, progress=False)
    partial = build_cache(image_index, tmp_path / "resumed", size=16, workers=1, limit=7, progress=False)
    assert partial["built"] == 7 and not partial["complete"]
    with pytest.raises(CxrlabError, match="unfinished .7/24 images.*resume"):
        open_cache(tmp_path / "resumed")
    resumed = build_cache(image_index, tmp_path / "resumed", size=16, workers=2, progress=False)
    assert resumed["reused"] == 7 and resumed["built"] == 17 and resumed["complete"]
    full = (tmp_path / "full" / "images.u8").read_bytes()
    assert (tmp_path / "resumed" / "images.u8").read_bytes() == full
    again = build_cache(image_index, tmp_path / "resumed", size=16, progress=False)
    assert again["built"] == 0 and again["reused"] == 24


def test_failed_image_is_masked_not_fatal(tmp_path):
    index = make_index(tmp_path, n_patients=4, per_patient=2, size=12)
    bad = index.absolute_paths()[3]
    bad.write_bytes(b"not a png at all")
    report = build_cache(index, tmp_path / "cache", size=16, workers=2, progress=False)
    assert report["failed"] == 1 and report["ok"] == 7 and report["complete"]
    assert str(bad) in report["errors"][index.image_ids[3]]
    cache = open_cache(tmp_path / "cache")
    assert cache.ok.tolist() == [i != 3 for i in range(8)]
    assert not cache.images[3].any()
    assert cache.meta["status"][3] != "ok"


def test_cache_of_other_settings_needs_force(image_index, tmp_path):
    build_cache(image_index, tmp_path / "cache", size=16, workers=1, progress=False)
    with pytest.raises(CxrlabError, match="another index/size/policy.*--force"):
        build_cache(image_index, tmp_path / "cache", size=20, workers=1, progress=False)
    report = build_cache(image_index, tmp_path / "cache", size=20, workers=1, force=True, progress=False)
    assert report["built"] == len(image_index) and open_cache(tmp_path / "cache").size == 20


def test_center_crop_policy(tmp_path):
    index = make_index(tmp_path, n_patients=2, per_patient=1, size=12)
    build_cache(index, tmp_path / "cache", size=8, policy="center_crop", workers=1, progress=False)
    cache = open_cache(tmp_path / "cache")
    expected = resize_image(read_image(index.absolute_paths()[1]), 8, "center_crop")
    np.testing.assert_array_equal(cache.images[1], expected)
    assert cache.policy == "center_crop"


def test_cli_cache(image_index, tmp_path, capsys):
    out = tmp_path / "cache"
    assert main(["data", "cache", str(image_index.path), "--out", str(out), "--size", "16", "--workers", "1"]) == 0
    assert "24 images ok, 0 failed" in capsys.readouterr().out
    assert open_cache(out).size == 16
    assert main(["data", "cache", str(image_index.path), "--out", str(out), "--size", "3"]) == 2
    assert "--size: 3 is not a valid image side in pixels (8 to 4096)" in capsys.readouterr().err
    assert main(["data", "cache", str(image_index.path), "--out", str(out), "--size", "32"]) == 2
    assert "--force" in capsys.readouterr().err


def test_resume_after_ctrl_c_mid_build(image_index, tmp_path, monkeypatch):
    """An interruption raised inside the build (like Ctrl-C) leaves finished chunks done; resume completes."""
    import cxrlab.data.cache as cache_mod

    real, calls = cache_mod._cache_chunk, []

    def interrupted(task):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(task)

    build_cache(image_index, tmp_path / "full", size=16, workers=1, progress=False)
    monkeypatch.setattr(cache_mod, "_cache_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_cache(image_index, tmp_path / "cache", size=16, workers=1, progress=False)
    monkeypatch.setattr(cache_mod, "_cache_chunk", real)
    done = np.fromfile(tmp_path / "cache" / "done.u8", dtype=np.uint8)
    assert 0 < done.sum() < len(image_index)  # two chunks finished before the interruption
    report = build_cache(image_index, tmp_path / "cache", size=16, workers=1, progress=False)
    assert report["reused"] == int(done.sum()) and report["complete"]
    assert (tmp_path / "cache" / "images.u8").read_bytes() == (tmp_path / "full" / "images.u8").read_bytes()
