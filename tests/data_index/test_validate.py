"""Validation: every problem is excluded and listed by reason (or warned about), never silently dropped."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from cxrlab.data.build_index import build_index
from cxrlab.data.validate import check_file
from cxrlab.errors import CxrlabError
from cxrlab.utils import read_json

from .helpers import write_png


def _photo(path):
    rng = np.random.default_rng(0)
    blocks = cv2.resize(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), (32, 32), interpolation=cv2.INTER_NEAREST)
    Image.fromarray(blocks).save(path)


def test_check_file_problems(tmp_path):
    write_png(tmp_path / "ok.png")
    assert check_file(tmp_path / "ok.png")[1] is None
    (tmp_path / "zero.png").write_bytes(b"")
    assert check_file(tmp_path / "zero.png") == (None, "zero-byte file")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[:-20])
    assert check_file(tmp_path / "trunc.png")[1].startswith("truncated")
    assert check_file(tmp_path / "trunc.png", hash_file=False)[1].startswith("truncated")  # ends only
    assert check_file(tmp_path / "ok.png", hash_file=False) == (None, None)
    (tmp_path / "text.png").write_text("hello")
    assert check_file(tmp_path / "text.png")[1].startswith("unreadable")
    _photo(tmp_path / "photo.png")
    assert check_file(tmp_path / "photo.png")[1].startswith("not X-ray-like")
    # a PNG with valid header/trailer but corrupt pixels is only caught by a full decode
    bad = bytearray(data)
    bad[60:80] = b"\x00" * 20
    (tmp_path / "bad.png").write_bytes(bytes(bad))
    assert check_file(tmp_path / "bad.png", check_decode=True)[1].startswith("unreadable")


def test_index_excludes_and_reports(tmp_path):
    for i in range(4):
        write_png(tmp_path / f"{i}.png", i)
    write_png(tmp_path / "copy.png", 0)  # byte-identical to 0.png
    (tmp_path / "zero.png").write_bytes(b"")
    _photo(tmp_path / "photo.png")
    (tmp_path / "labels.csv").write_text(
        "filename,patient_id,label\n0.png,p0,a\n1.png,p1,b\n1.png,p1,b\n2.png,p2,\n3.png,p3,zebra\n"
        "copy.png,p4,a\nzero.png,p5,a\nphoto.png,p6,b\n")
    index, report = build_index(tmp_path, "csv", tmp_path / "out", classes=["a", "b"])
    assert sorted(index.image_ids) == ["0.png", "1.png", "copy.png"]
    ex = report["excluded"]
    assert ex["duplicate image id"] == ["1.png"]
    assert sorted(ex["no label"]) == ["2.png", "3.png"]  # empty label; only an unknown label
    assert ex["zero-byte file"] == ["zero.png"] and ex["not X-ray-like"] == ["photo.png"]
    assert report["unknown_labels"] == {"zebra": 1}
    assert report["duplicate_file_groups"] == [["0.png", "copy.png"]]
    on_disk = read_json(tmp_path / "out" / "validation.json")
    assert on_disk["counts"]["excluded"]["no label"] == 2 and on_disk["ok"] is True
    md = (tmp_path / "out" / "validation.md").read_text()
    assert "zero.png" in md and "identical files: 0.png, copy.png" in md
    assert len(index.frame["sha256"].iloc[0]) == 64


def test_unusable_index_is_an_error_with_report(tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "labels.csv").write_text("filename,label\nzero.png,a\n")
    with pytest.raises(CxrlabError, match="no usable images"):
        build_index(tmp_path, "csv", tmp_path / "out")
    assert read_json(tmp_path / "out" / "validation.json")["ok"] is False
    assert not (tmp_path / "out" / "index.csv").exists()
