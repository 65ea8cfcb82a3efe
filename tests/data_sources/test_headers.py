"""The index rejects, at index time and from headers alone, what it cannot use; reasons in plain words."""

from __future__ import annotations

import struct
import time

import pandas as pd

from cxrlab.data.build_index import build_index
from cxrlab.data.headers import image_size

from .helpers import make_rsna, write_dicom, write_image


def _huge_png(path):
    """A PNG whose header says 40000x40000 (the body is a tiny image: nothing may decode it)."""
    write_image(path, seed=3)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", 40000, 40000)
    path.write_bytes(bytes(data))
    return path


def test_sizes_from_headers(tmp_path):
    png = write_image(tmp_path / "a.png", size=20)
    jpg = write_image(tmp_path / "a.jpg", size=30)
    assert image_size(png, png.read_bytes()[:132]) == (20, 20)
    assert image_size(jpg, jpg.read_bytes()[:132]) == (30, 30)


def test_csv_index_reports_huge_png_bad_dicoms_and_decoder_failures(tmp_path):
    root = tmp_path / "ds"
    write_image(root / "ok.png", seed=1)
    _huge_png(root / "huge.png")
    write_dicom(root / "nopix.dcm", pixels=False)
    (root / "fake.dcm").write_text("this is a text file")
    (root / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 200 + b"IEND\xaeB`\x82")
    pd.DataFrame({"filename": ["ok.png", "huge.png", "nopix.dcm", "fake.dcm", "garbage.png"],
                  "A": [1, 0, 1, 0, 1], "B": [0, 1, 0, 1, 1]}).to_csv(root / "labels.csv", index=False)
    start = time.perf_counter()
    index, report = build_index(root, "csv", tmp_path / "idx", check_decode=True)
    assert time.perf_counter() - start < 5  # the 40000x40000 image was never decoded
    assert index.image_ids == ["ok.png"]
    details = report["problem_details"]
    assert details["huge.png"].startswith("too large: 40000x40000 pixels in the header")
    assert details["nopix.dcm"].startswith("no pixel data: a DICOM without an image")
    assert details["fake.dcm"].startswith("not DICOM")
    assert details["garbage.png"].startswith("unreadable")
    assert "error" not in details["garbage.png"].lower() or "assert" not in details["garbage.png"].lower()
    md = (tmp_path / "idx" / "validation.md").read_text()
    assert "huge.png: too large" in md


def test_dicom_sources_pass_header_checks(tmp_path):
    root = make_rsna(tmp_path / "rsna")
    index, report = build_index(root, "rsna", tmp_path / "idx", check_decode=True)
    assert len(index) == 2 and report["problem_details"] == {}
